/// A real HTTP/2 server for the tests of heaven's HTTP client: Debian's
/// `nghttpd` (package nghttp2-server) on 127.0.0.1, over TLS with a
/// throwaway self-signed certificate that `openssl req` makes in a
/// temporary directory of its own. And a TCP relay in front of it that
/// counts the connections it accepts and can hold back the server's bytes.
///
/// Failures (openssl or nghttpd cannot start) throw std::runtime_error,
/// which fails the running test case.
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace heaven::test {

/// One running nghttpd: it serves the files of its directory (`serve`),
/// answers POST and PUT with their body (--echo-upload, with the header
/// `nghttpd-response: echo`) and speaks HTTP/2 only (ALPN h2). Its frames go
/// to a log (-v) the tests read. Starts on construction (waiting until it
/// listens); stops on destruction, and its directory is removed.
class h2_server {
public:
  h2_server();
  ~h2_server();

  h2_server(const h2_server&) = delete;
  h2_server& operator=(const h2_server&) = delete;

  /// The port it listens on, on 127.0.0.1.
  int port() const;

  /// Its certificate (PEM), issued to IP 127.0.0.1 and signed by itself:
  /// the only authority a client needs to trust it.
  std::filesystem::path cert_file() const;

  /// Makes `/name` answer `body` (a file of its document root).
  void serve(const std::string& name, const std::string& body) const;

  /// What nghttpd printed so far.
  std::string log() const;

  /// The requests it received so far (streams a client opened: each has
  /// one `:method` header in the log).
  size_t requests() const;

  /// The protocol each TLS connection negotiated, in order ("h2").
  std::vector<std::string> negotiated() const;

private:
  bool start(int port);

  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

/// A TCP relay on 127.0.0.1 to 127.0.0.1:`target_port`, on a thread of its
/// own: each connection it accepts gets one to the target, and bytes pass
/// both ways unchanged. Stops on destruction.
class tcp_relay {
public:
  explicit tcp_relay(int target_port);
  ~tcp_relay();

  tcp_relay(const tcp_relay&) = delete;
  tcp_relay& operator=(const tcp_relay&) = delete;

  /// The port it listens on.
  int port() const;

  /// The connections it accepted so far.
  size_t accepted() const;

  /// Stops passing on what the target sends (the bytes wait in the
  /// kernel's buffers); the client's bytes still go through.
  void hold();

  /// Passes the target's bytes on again, those held back first.
  void release();

private:
  void run();
  void wake();

  int target_port_;
  int listener_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::atomic<size_t> accepted_{0};
  std::atomic<bool> held_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace heaven::test
