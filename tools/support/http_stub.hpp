/// A local stand-in for a remote HTTP API (GitHub, ...): records every
/// request and answers with a programmable handler. Real HTTP over a socket
/// on 127.0.0.1.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "messages/types.hpp"

namespace heaven::test {

/// One request the stub received.
struct recorded_request {
  std::string method;
  /// The request target: path and query.
  std::string target;
  /// Header names lower-cased.
  string_pairs headers;
  std::string body;
  /// The value of header `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

/// Sends one piece of a streamed body; false once the client is gone.
using chunk_writer = std::function<bool(std::string_view)>;

/// What the stub answers.
struct stub_response {
  stub_response() = default;
  stub_response(int status, string_pairs headers, std::string body)
    : status(status), headers(std::move(headers)), body(std::move(body)) {
  }

  int status = 201;
  string_pairs headers = {{"Content-Type", "application/json"}};
  std::string body = "{}";
  /// When set, the body is streamed instead (chunked transfer encoding):
  /// the function writes the pieces, as slowly as it likes, and returns when
  /// the body is complete.
  std::function<void(const chunk_writer&)> stream;
  /// When set, the request is recorded but never answered: the stub closes
  /// the connection, as a server or proxy that fails after reading it does.
  bool drop = false;
  /// When set, the stub closes the connection right after this answer,
  /// without saying so in a `Connection: close` header, as a server whose
  /// idle keep-alive timeout ran out does.
  bool close_after = false;
};

/// The HTTP stand-in. Starts listening on construction, stops on destruction.
class http_stub {
public:
  using handler = std::function<stub_response(const recorded_request&)>;

  /// Answers every request with `201 {}` until `respond_with` changes it.
  http_stub();
  ~http_stub();

  /// "http://127.0.0.1:<port>/".
  std::string base_url() const;
  uint16_t port() const;

  /// Replaces the handler (thread-safe).
  void respond_with(handler h);

  /// A copy of every request so far, in arrival order (thread-safe).
  std::vector<recorded_request> requests() const;

  /// How many connections the stub has accepted so far (thread-safe).
  std::size_t connections() const;

  /// Waits up to `timeout_ms` until at least `n` requests arrived; returns
  /// whether they did.
  bool wait_for(std::size_t n, int timeout_ms = 20000) const;

  /// Waits up to `timeout_ms` until no connection is open or waiting to be
  /// accepted; returns whether that happened. Once the client processes
  /// are gone (observed exited), this means that the stub has recorded
  /// every request they sent: nothing more can arrive.
  bool wait_idle(int timeout_ms = 20000) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The segments of a request target's path: "/a/b/c?x" as {"a", "b", "c"}.
std::vector<std::string> path_segments(std::string_view target);

} // namespace heaven::test
