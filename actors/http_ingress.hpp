/// The HTTP ingress: Boost.Beast on its own thread, handing typed messages to
/// actors. Beast stays inside http_ingress.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

class health_board;
class log_book;
struct sign_in_setup; // actors/ingress_answers.hpp

/// What the ingress needs to know.
struct ingress_options {
  /// "host:port"; port 0 picks a free one.
  std::string listen = "127.0.0.1:8080";
  /// Webhook secret; empty only with `insecure`.
  std::string secret;
  bool insecure = false;
  /// Largest accepted body in bytes (413 above).
  std::size_t max_body = 25 * 1024 * 1024;
  /// Events handed on and not yet answered (waiting for the store's
  /// commit) beyond which `/events` answers 503 with `Retry-After` instead
  /// of queueing more; their bodies are bounded too, to 4 x max_body (one
  /// event always fits).
  std::size_t max_pending_events = 1000;
  /// An event the receiver has not answered after this long is answered
  /// 503 (GitHub gives up on a webhook after 10 s); its late answer is
  /// dropped.
  std::chrono::milliseconds event_deadline{9000};
  std::shared_ptr<log_book> logs;
  /// What `GET /healthz` reports (null: always ok).
  std::shared_ptr<health_board> health;
  /// Key for the tokens of log pages and `GET /locks` (see log_token,
  /// locks_token).
  std::string log_key;
  /// HEAVEN_API_TOKEN: the bearer token of GET /metrics, /deployments and
  /// /locks.
  std::string api_token;
  /// Serve only /metrics (without a token) and /healthz
  /// (HEAVEN_METRICS_LISTEN).
  bool metrics_only = false;
  /// OCTOKIT_WEB_ENDPOINT: where the pages link to GitHub.
  std::string github_web = "https://github.com/";
  /// Sign-in with GitHub (null: off): its sessions read /deployments and
  /// /locks.
  std::shared_ptr<const sign_in_setup> sign_in;
  /// Told the repository and `installation.id` of each verified event that
  /// names its GitHub App installation (null: nobody is).
  std::function<void(const std::string& repo, int64_t installation)>
    installation_seen;
};

/// A running HTTP server. Destroying it stops it.
class ingress_server {
public:
  virtual ~ingress_server() = default;
  /// The TCP port it listens on.
  virtual uint16_t port() const = 0;
  /// Stops accepting and joins the server thread.
  virtual void stop() = 0;
};

/// Binds and starts serving; throws std::runtime_error when it can't bind.
std::unique_ptr<ingress_server>
start_ingress(caf::actor_system& sys, ingress_options opts,
              receiver_actor receiver, store_actor store);

} // namespace heaven
