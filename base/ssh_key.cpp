#include "base/ssh_key.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/text.hpp"

namespace heaven {

namespace {

/// Reads SSH wire-format fields from a buffer.
struct wire_reader {
  std::string_view rest;
  bool ok = true;

  uint32_t u32() {
    if (rest.size() < 4) {
      ok = false;
      return 0;
    }
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i)
      x = (x << 8) | static_cast<unsigned char>(rest[static_cast<size_t>(i)]);
    rest.remove_prefix(4);
    return x;
  }

  std::string_view str() {
    auto len = u32();
    if (!ok || rest.size() < len) {
      ok = false;
      return {};
    }
    auto x = rest.substr(0, len);
    rest.remove_prefix(len);
    return x;
  }
};

/// The base64 body between `-----BEGIN <label>-----` and its END line.
std::string pem_body(const std::string& text, const std::string& label) {
  auto begin = "-----BEGIN " + label + "-----";
  auto end = "-----END " + label + "-----";
  auto from = text.find(begin);
  auto to = text.find(end);
  if (from == std::string::npos || to == std::string::npos || to < from)
    return {};
  from += begin.size();
  return text.substr(from, to - from);
}

/// The problem of an OpenSSH-format private key ("" when none).
std::string openssh_key_problem(const std::string& text) {
  auto blob = base64_decode(pem_body(text, "OPENSSH PRIVATE KEY"));
  constexpr std::string_view magic{"openssh-key-v1\0", 15};
  if (blob.compare(0, magic.size(), magic) != 0)
    return "the deploy key is not a readable OpenSSH private key";
  wire_reader in{std::string_view{blob}.substr(magic.size())};
  auto cipher = in.str();
  in.str(); // kdf name
  in.str(); // kdf options
  auto keys = in.u32();
  wire_reader public_key{in.str()};
  auto type = public_key.str();
  if (!in.ok || !public_key.ok || keys < 1)
    return "the deploy key is not a readable OpenSSH private key";
  if (type == "ssh-rsa")
    return std::string{rsa_key_error};
  if (cipher != "none")
    return "the deploy key is protected by a passphrase: heaven needs a key "
           "without one";
  return {};
}

/// The problem of a PKCS#8 `BEGIN PRIVATE KEY` key ("" when none).
std::string pkcs8_key_problem(const std::string& text) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio{
    BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), BIO_free};
  if (!bio)
    return "the deploy key cannot be read";
  // An empty passphrase keeps OpenSSL from prompting on a terminal.
  char empty[] = "";
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{
    PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, empty), EVP_PKEY_free};
  if (!key)
    return "the deploy key is not a readable private key";
  if (EVP_PKEY_base_id(key.get()) == EVP_PKEY_RSA)
    return std::string{rsa_key_error};
  return {};
}

} // namespace

std::string unescape_private_key(std::string text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      if (text[i + 1] == 'n') {
        out.push_back('\n');
        ++i;
        continue;
      }
      if (text[i + 1] == 'r' && i + 3 < text.size() && text[i + 2] == '\\'
          && text[i + 3] == 'n') {
        out.push_back('\n');
        i += 3;
        continue;
      }
    }
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
      continue;
    out.push_back(text[i]);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n'))
    out.pop_back();
  size_t start = 0;
  while (start < out.size() && (out[start] == ' ' || out[start] == '\n'))
    ++start;
  out.erase(0, start);
  if (!out.empty())
    out.push_back('\n');
  return out;
}

std::string private_key_problem(const std::string& private_key) {
  if (private_key.find_first_not_of(" \r\n\t") == std::string::npos)
    return "no deploy key is configured (DEPLOYMENT_PRIVATE_KEY)";
  if (private_key.find("-----BEGIN RSA PRIVATE KEY-----") != std::string::npos)
    return std::string{rsa_key_error};
  if (private_key.find("-----BEGIN OPENSSH PRIVATE KEY-----")
      != std::string::npos)
    return openssh_key_problem(private_key);
  if (private_key.find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        != std::string::npos
      || private_key.find("Proc-Type: 4,ENCRYPTED") != std::string::npos)
    return "the deploy key is protected by a passphrase: heaven needs a key "
           "without one";
  if (private_key.find("-----BEGIN PRIVATE KEY-----") != std::string::npos)
    return pkcs8_key_problem(private_key);
  if (private_key.find("-----BEGIN EC PRIVATE KEY-----") != std::string::npos)
    return {};
  if (private_key.find("PRIVATE KEY-----") != std::string::npos)
    return "the deploy key has a kind libssh2 cannot use: use an ed25519 or "
           "ECDSA deploy key";
  return "the deploy key is not a private key (expected -----BEGIN OPENSSH "
         "PRIVATE KEY-----)";
}

std::string known_host_name(const std::string& host, int port) {
  return port == 22 ? host : "[" + host + "]:" + std::to_string(port);
}

std::string host_key_methods(const std::vector<std::string>& known) {
  if (known.empty())
    return {};
  std::vector<std::string> types;
  auto add = [&](const std::string& x) {
    if (std::find(types.begin(), types.end(), x) == types.end())
      types.push_back(x);
  };
  for (auto& x : known)
    add(x);
  for (auto x :
       {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"})
    add(x);
  std::string methods;
  for (auto& x : types)
    methods += (methods.empty() ? "" : ",") + x;
  return methods;
}

std::string host_key_fingerprint(const std::string& type_name,
                                 const unsigned char* sha256) {
  if (sha256 == nullptr)
    return type_name + " SHA256:?";
  std::string out(4 * ((32 + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), sha256,
                           32);
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  return type_name + " SHA256:" + out;
}

} // namespace heaven
