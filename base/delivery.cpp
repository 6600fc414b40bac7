#include "base/delivery.hpp"

#include <array>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/validate.hpp"

namespace heaven {

namespace {

constexpr std::string_view sig_prefix = "sha256=";

} // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       md.data(), &len);
  return to_hex(md.data(), len);
}

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
  return CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::optional<std::string> form_payload(std::string_view body) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
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
        int hi = hex(value[i + 1]), lo = hex(value[i + 2]);
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
