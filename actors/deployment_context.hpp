/// The DEPLOYMENT actor's support: what the receiver hands every deployment
/// it starts (settings, the log book, the handles of the long-lived actors)
/// and the seams deterministic tests replace (checkouts, scopes, sweeps).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "base/config.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class github_app;
class health_board;
class log_book;
class provider_registry;
struct workspace_plan;

/// Starts the WORKSPACE actor that makes a checkout and reports `prepared`
/// to the deployment (see spawn_workspace); replaceable in tests, where it
/// may answer an invalid handle (nothing to cancel).
using workspace_maker = std::function<workspace_actor(
  caf::actor_system&, workspace_plan, checkout_client deployment)>;

/// Deletes a checkout (see spawn_cleanup); replaceable in tests.
using workspace_remover
  = std::function<void(caf::actor_system&, std::string path)>;

/// Opens deployment `id`'s process scope (see process_scopes::open).
using scope_opener = std::function<process_scope(int64_t id)>;

/// Ends every process of `scope` (see end_scope), then sends `(swept_atom,
/// int32_t ended)` to `reply_to`; replaceable in tests.
using process_sweeper = std::function<void(
  caf::actor_system&, process_scope scope, sweep_client reply_to)>;

/// Shared by every deployment, read-only after start-up.
struct deployment_context {
  settings cfg;
  std::shared_ptr<log_book> logs;
  /// What /healthz reports (may be null in tests).
  std::shared_ptr<health_board> health;
  store_actor store;
  http_client_actor http;
  std::shared_ptr<const provider_registry> providers;
  /// Hears `status` events (absent: no auto-deployment).
  auto_deploy_actor auto_deploy;
  /// The environment deployment processes start from.
  string_pairs child_env;
  /// heaven as a GitHub App (null: GITHUB_TOKEN for everything): clones
  /// and deploy scripts get their repository's installation token.
  std::shared_ptr<heaven::github_app> github_app;
  /// Key for log tokens.
  std::string log_key;
  /// Several instances share the store (PostgreSQL): queued deployments are
  /// claimed from it (see receiver), not handed out by this instance alone.
  bool shared = false;
  workspace_maker make_workspace;
  workspace_remover remove_workspace;
  /// Gives a deployment the scope its processes start in (absent: no
  /// scope).
  scope_opener open_scope;
  /// Ends a deployment's processes before its end is recorded (absent:
  /// nothing to end).
  process_sweeper sweep;
  /// How many attempts auto-deploy's GitHub requests make and how long they
  /// first wait.
  int status_attempts = 5;
  int64_t status_backoff_ms = 1000;
  /// The first wait before a deployment writes a transition the store
  /// refused (a full disk) again; doubles up to 30 s.
  int64_t store_retry_ms = 1000;
};

using context_ptr = std::shared_ptr<const deployment_context>;

} // namespace heaven
