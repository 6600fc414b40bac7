/// The STATUS_POSTER actor: one per deployment; posts its GitHub statuses in
/// order.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "messages/interfaces.hpp"

namespace heaven {

/// Where and how statuses are posted.
struct github_api {
  /// API base, e.g. "https://api.github.com/" (trailing slash optional).
  std::string endpoint;
  /// Token for `Authorization: token ...`; when empty, statuses are only
  /// logged (heaven's log) and not posted.
  std::string token;
  /// Attempts per status before giving up (at least 1).
  int attempts = 5;
  /// Delay before the first retry; doubles each time.
  std::chrono::milliseconds first_backoff{500};
};

/// State of the STATUS_POSTER actor.
struct status_poster_state {
  static inline const char* name = "status_poster";
  std::deque<github_status> queue;
  int attempt = 0;
  bool in_flight = false;
  /// Set once a terminal status is done: the poster quits when idle.
  bool terminal_done = false;
};

/// The STATUS_POSTER actor. It quits once it has posted (or given up on) a
/// terminal status (success, failure, error) and its queue is empty.
status_poster_actor::behavior_type
status_poster(status_poster_actor::stateful_pointer<status_poster_state> self,
              http_client_actor http, github_api api);

/// The JSON body GitHub expects for `s` (description truncated to 140).
std::string status_body(const github_status& s);

/// True for success, failure and error.
bool terminal_state(const std::string& state);

} // namespace heaven
