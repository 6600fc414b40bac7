#include "base/delivery.hpp"

#include "base/text.hpp"

namespace heaven {

namespace {

constexpr std::string_view sig_prefix = "sha256=";

} // namespace

bool signature_valid(std::string_view secret, std::string_view body,
                     std::string_view header) {
  // An empty secret would make every forger's job trivial: never accept it.
  if (secret.empty() || header.size() != sig_prefix.size() + 64
      || header.substr(0, sig_prefix.size()) != sig_prefix)
    return false;
  std::string given{header.substr(sig_prefix.size())};
  for (auto& c : given) {
    if (c >= 'A' && c <= 'F')
      c = static_cast<char>(c - 'A' + 'a');
    else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  auto expected = hmac_sha256_hex(secret, body);
  return equal_constant_time(given, expected);
}

std::optional<std::string> form_payload(std::string_view body) {
  while (!body.empty()) {
    auto amp = body.find('&');
    auto pair = body.substr(0, amp);
    body = amp == body.npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.substr(0, 8) != "payload=")
      continue;
    std::string out;
    auto value = pair.substr(8);
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '+') {
        out += ' ';
      } else if (value[i] == '%') {
        if (i + 2 >= value.size())
          return std::nullopt;
        int hi = hex_value(value[i + 1]), lo = hex_value(value[i + 2]);
        if (hi < 0 || lo < 0)
          return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
      } else {
        out += value[i];
      }
    }
    return out;
  }
  return std::nullopt;
}

} // namespace heaven
