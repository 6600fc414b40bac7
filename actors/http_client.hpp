/// The HTTP_CLIENT actor: libcurl's multi interface on a thread of its own.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include <caf/typed_response_promise.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

class curl_engine; // actors/http_client.cpp

/// State of the HTTP_CLIENT actor.
struct http_client_state {
  static inline const char* name = "http_client";
  std::unique_ptr<curl_engine> engine;
  std::map<uint64_t, caf::typed_response_promise<http_response>> pending;
  uint64_t next_id = 1;
  // Both out of line: curl_engine is complete only in http_client.cpp.
  http_client_state();
  ~http_client_state();
};

/// The HTTP_CLIENT actor. Its curl thread stops when the actor exits.
http_client_actor::behavior_type
http_client(http_client_actor::stateful_pointer<http_client_state> self);

} // namespace heaven
