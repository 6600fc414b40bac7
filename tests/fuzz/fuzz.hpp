/// Shared by the libFuzzer targets: what a target checks besides "no crash".
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace heaven::fuzz {

/// Stops the run with `what` when a property heaven promises does not hold;
/// libFuzzer then keeps the input as a crash.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "heaven fuzz property violated: %s\n", what);
    std::abort();
  }
}

/// The input as text.
inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Splits `in` at the first `sep`: what comes before (all of `in` when
/// there is no `sep`), and `in` is left with what follows.
inline std::string_view take_until(std::string_view& in, char sep) {
  auto at = in.find(sep);
  auto head = in.substr(0, at);
  in = at == std::string_view::npos ? std::string_view{} : in.substr(at + 1);
  return head;
}

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, at most
/// U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80           ? 0
               : (c >> 5) == 0x6  ? 1
               : (c >> 4) == 0xE  ? 2
               : (c >> 3) == 0x1E ? 3
                                  : 9;
    if (n == 9 || (n == 1 && c < 0xC2) || s.size() - i <= n)
      return false;
    uint32_t cp = n == 0 ? c : c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
        || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

} // namespace heaven::fuzz
