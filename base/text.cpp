#include "base/text.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

namespace heaven {

namespace {

using digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;

} // namespace

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0x0f];
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()),
                bytes.size());
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(bytes.data()),
                           static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text) {
  constexpr std::string_view alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto value = [&](char c) -> int {
    auto at = alphabet.find(c);
    return at == std::string_view::npos ? -1 : static_cast<int>(at);
  };
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (auto c : text) {
    if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    auto v = value(c);
    if (v < 0)
      return {};
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  digest md{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
  return to_hex(md.data(), len);
}

namespace {

/// One thread's HMAC-SHA256 context, keyed with the key it was last used
/// with: a MAC with the same key again (every webhook's signature, with the
/// one secret) is only re-initialised, not fetched and keyed anew, which
/// is most of the cost of OpenSSL 3's one-shot HMAC() for a small body.
struct hmac_context {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  std::string key;
  bool keyed = false;

  hmac_context() {
    mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac != nullptr)
      ctx = EVP_MAC_CTX_new(mac);
  }
  ~hmac_context() {
    forget();
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
  hmac_context(const hmac_context&) = delete;
  hmac_context& operator=(const hmac_context&) = delete;

  void forget() {
    OPENSSL_cleanse(key.data(), key.size());
    key.clear();
    keyed = false;
  }

  /// The MAC of `data` under `key` into `md`; false when OpenSSL failed.
  bool run(std::string_view key_now, std::string_view data, digest& md,
           std::size_t& len) {
    if (ctx == nullptr || key_now.empty())
      return false;
    if (keyed && key == key_now) {
      if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1)
        return false;
    } else {
      forget();
      char digest_name[] = "SHA256";
      OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end()};
      if (EVP_MAC_init(ctx,
                       reinterpret_cast<const unsigned char*>(key_now.data()),
                       key_now.size(), params)
          != 1)
        return false;
      key.assign(key_now);
      keyed = true;
    }
    return EVP_MAC_update(ctx,
                          reinterpret_cast<const unsigned char*>(data.data()),
                          data.size())
             == 1
           && EVP_MAC_final(ctx, md.data(), &len, md.size()) == 1;
  }
};

} // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  thread_local hmac_context cached;
  digest md{};
  std::size_t len = 0;
  if (!cached.run(key, data, md, len)) {
    // An empty key, or OpenSSL could not: the one-shot way.
    unsigned int n = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         md.data(), &n);
    len = n;
  }
  std::string out(reinterpret_cast<const char*>(md.data()), len);
  OPENSSL_cleanse(md.data(), md.size());
  return out;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  auto raw = hmac_sha256(key, data);
  auto out = to_hex(raw);
  OPENSSL_cleanse(raw.data(), raw.size());
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string
replace_chars(std::string_view s,
              std::initializer_list<std::pair<char, std::string_view>> table) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto hit = std::find_if(table.begin(), table.end(),
                            [c](const auto& x) { return x.first == c; });
    if (hit == table.end())
      out += c;
    else
      out += hit->second;
  }
  return out;
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  out += '\'';
  return out;
}

std::string short_sha(std::string_view sha, std::size_t length) {
  return std::string{sha.substr(0, length)};
}

std::string join_url(std::string base, std::string_view path) {
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return base + "/" + std::string{path};
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                      || (c >= '0' && c <= '9') || c == '-' || c == '_'
                      || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0x0f];
    }
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

} // namespace heaven
