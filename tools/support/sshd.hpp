/// A real OpenSSH server for tests: `/usr/sbin/sshd` on 127.0.0.1 and a
/// free high port, with host and client keys made on the fly by ssh-keygen
/// in a temporary directory of its own.
///
/// Failures (ssh-keygen or sshd cannot start) throw std::runtime_error,
/// which fails the running test case.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace heaven::test {

/// A key pair made by ssh-keygen (no passphrase).
struct ssh_key_pair {
  /// The ssh-keygen type: "ed25519", "ecdsa", "rsa".
  std::string type;
  /// The private key file's text, with real newlines.
  std::string private_key;
  /// The public key line without its newline: "ssh-ed25519 AAAA... comment".
  std::string public_key;
};

/// Makes a fresh key pair of `type` ("ed25519", "ecdsa", "rsa"). The private
/// key is in OpenSSH format, or in the old PEM format when `pem` is set
/// (`BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`).
ssh_key_pair make_key(const std::string& type, bool pem = false);

/// "SHA256:..." of a public key line ("ssh-ed25519 AAAA..."), as
/// `ssh-keygen -l` prints it.
std::string key_fingerprint(const std::string& public_key);

/// `private_key` the way Heaven's operators set DEPLOYMENT_PRIVATE_KEY: one
/// line, each newline written as the two characters `\n`.
std::string one_line_key(const std::string& private_key);

/// Writes a known_hosts file made of `lines` (one entry each).
void write_known_hosts(const std::filesystem::path& file,
                       const std::vector<std::string>& lines);

/// The name of the user this process runs as (root on the test machine);
/// the user the server lets in with the client key.
std::string current_user();

/// One running sshd. Starts on construction (waiting until it accepts
/// connections); stops on destruction, and its directory is removed.
class sshd_server {
public:
  /// Starts a server whose host key has type `host_key_type` ("ed25519",
  /// "ecdsa", "rsa") and which lets `current_user()` in with a fresh
  /// ed25519 client key.
  explicit sshd_server(const std::string& host_key_type = "ed25519");
  ~sshd_server();

  sshd_server(const sshd_server&) = delete;
  sshd_server& operator=(const sshd_server&) = delete;

  /// "127.0.0.1".
  std::string host() const;

  /// The port it listens on.
  int port() const;

  /// The user to sign in as (`current_user()`).
  std::string user() const;

  /// The host's public key line: "ssh-ed25519 AAAA...".
  std::string host_public_key() const;

  /// The known_hosts entry of this server:
  /// "[127.0.0.1]:PORT ssh-ed25519 AAAA...".
  std::string host_key_line() const;

  /// "SHA256:..." of the host key.
  std::string host_fingerprint() const;

  /// The client key pair `user()` may sign in with.
  const ssh_key_pair& client_key() const;

  /// Lets a further public key sign in (appends it to authorized_keys).
  void authorize(const std::string& public_key);

  /// Writes `dir()/known_hosts` holding exactly this server's entry and
  /// returns its path.
  std::filesystem::path write_known_hosts() const;

  /// The server's temporary directory (keys, config, log).
  const std::filesystem::path& dir() const;

  /// The sshd log (`-E`).
  std::filesystem::path log_path() const;

  /// The whole sshd log so far.
  std::string log() const;

private:
  /// Starts sshd on `port`; true once it accepts, false when it exited
  /// (the port was taken meanwhile).
  bool start(int port);

  std::filesystem::path dir_;
  std::string host_key_public_;
  ssh_key_pair client_;
  int port_ = 0;
  pid_t pid_ = -1;
};

} // namespace heaven::test
