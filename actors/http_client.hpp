/// The HTTP_CLIENT actor: libcurl's multi interface on a thread of its own.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <caf/typed_response_promise.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

class curl_engine; // actors/http_client.cpp

/// How many connections and streams the HTTP_CLIENT holds at once, and
/// whom it trusts over TLS.
struct http_limits {
  /// Requests to one host (scheme, name, port) in flight at once, so
  /// connections to it too; more requests wait, in order, and their timeout
  /// starts when they leave. HEAVEN_HTTP_MAX_HOST_CONNECTIONS.
  int64_t max_host_connections = 32;
  /// Connections for ordinary requests to all hosts together, idle ones
  /// kept for reuse included. HEAVEN_HTTP_MAX_CONNECTIONS.
  int64_t max_connections = 256;
  /// Streamed bodies (a build's output) transferred at once; further
  /// streams wait, in order, until one ends. Streams have connections of
  /// their own, so they never hold up ordinary requests.
  /// HEAVEN_HTTP_MAX_STREAMS.
  int64_t max_streams = 1024;
  /// PEM file of the certificate authorities HTTPS servers must be signed
  /// by, instead of the system's (/etc/ssl/certs); "": the system's.
  /// HEAVEN_CA_FILE.
  std::string ca_file;
};

/// State of the HTTP_CLIENT actor.
struct http_client_state {
  static inline const char* name = "http_client";
  /// Ordinary requests, and streamed bodies: one thread and one pool of
  /// connections each.
  std::unique_ptr<curl_engine> requests;
  std::unique_ptr<curl_engine> streams;
  std::map<uint64_t, caf::typed_response_promise<http_response>> pending;
  uint64_t next_id = 1;
  // Both out of line: curl_engine is complete only in http_client.cpp.
  http_client_state();
  ~http_client_state();
};

/// The HTTP_CLIENT actor with `limits`. Its curl threads stop when the
/// actor exits.
http_client_actor::behavior_type
bounded_http_client(http_client_actor::stateful_pointer<http_client_state> self,
                    http_limits limits);

/// The HTTP_CLIENT actor with the default limits.
http_client_actor::behavior_type
http_client(http_client_actor::stateful_pointer<http_client_state> self);

} // namespace heaven
