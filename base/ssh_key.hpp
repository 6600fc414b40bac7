/// What heaven reads from a deploy key's text before any connection: apart
/// from the SSH actor, so it builds (and is fuzzed) without libssh2 or CAF.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace heaven {

/// The error every command answers when the private key is an RSA key.
inline constexpr std::string_view rsa_key_error
  = "RSA keys cannot sign in to OpenSSH 9 through libssh2 1.10 (it only "
    "signs ssh-rsa with SHA-1): use an ed25519 or ECDSA deploy key";

/// Turns Heaven's one-line DEPLOYMENT_PRIVATE_KEY, with literal `\n` (and
/// `\r\n`) escapes, into the key's text with real newlines, ending with a
/// newline. Text that already has real newlines stays as it is.
std::string unescape_private_key(std::string text);

/// Why `private_key` cannot sign in through libssh2, or "" when it may:
/// empty, an RSA key (rsa_key_error), protected by a passphrase, or not a
/// private key at all. Decided from the text alone, before any connection.
std::string private_key_problem(const std::string& private_key);

/// The name of `host` in a known_hosts file: "host", or "[host]:port" off
/// port 22.
std::string known_host_name(const std::string& host, int port);

/// The host key methods to ask a server for, comma-separated: `known` (the
/// types known_hosts has for the host) in its order without repeats, then
/// every other type, so a host whose key type the file does not know still
/// shows its key (and is refused as not known). "" when `known` is empty:
/// libssh2's own order then.
std::string host_key_methods(const std::vector<std::string>& known);

/// How a host key is shown, as OpenSSH does: "<type> SHA256:<base64 of the
/// 32-byte `sha256`, unpadded>" ("?" for a missing hash).
std::string host_key_fingerprint(const std::string& type_name,
                                 const unsigned char* sha256);

} // namespace heaven
