/// The DEPLOYMENT actor: runs one queued deployment, writing each transition
/// to the store before acting on it, and ends it exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <caf/actor_addr.hpp>
#include <caf/fwd.hpp>

#include "actors/deployment_context.hpp"
#include "base/log_format.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// Where a deployment is in its life.
enum class phase : uint8_t {
  /// Waiting for its private checkout.
  preparing,
  /// Asking the store to record it running (and retrying while it cannot).
  starting,
  /// Its provider runs.
  running,
  /// Its outcome is decided: its processes are being ended, then the end
  /// is recorded (retried until the store takes it).
  ending,
  /// Recorded; only a checkout still being made keeps it.
  finished,
};

/// State of the DEPLOYMENT actor.
struct deployment_state {
  static inline const char* name = "deployment";

  // -- what it deploys ------------------------------------------------------
  context_ptr ctx;
  int64_t id = 0;
  deployment_request req;
  /// When the store recorded it running (for its duration metric).
  std::optional<std::chrono::steady_clock::time_point> began;
  /// Its id, repository and environment, set as the log context of every
  /// handler: heaven's lines written meanwhile carry them (JSON log).
  log_context log;

  // -- helpers it supervises --------------------------------------------------
  timer_actor timer;
  provider_actor provider;
  /// The same provider when it runs processes (else null).
  process_provider_actor processes;

  // -- progress ---------------------------------------------------------------
  phase at = phase::preparing;
  /// Where every process it starts lives, to be ended with it.
  process_scope scope;
  std::string workspace;
  /// The checkout being made (invalid when none, or when a test's maker
  /// gave none): told `cancel` when the deployment no longer needs it.
  workspace_actor checkout;
  /// Set when the deadline passed: output after it is dropped and the log
  /// ends with the timeout line.
  bool timed_out = false;
  /// Set while a checkout is being made: the actor stays until `prepared`
  /// arrives (the workspace's last word), to remove it.
  bool checkout_requested = false;
  /// Set when a timeout left the processes running on purpose
  /// (TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0): their checkout stays.
  bool children_left = false;
  /// Set when heaven is stopping: the reason given.
  std::string shutdown_reason;
  /// Set when heaven stops before the provider started: the deployment
  /// leaves without a trace, queued for the next start.
  bool shelved = false;
  /// Set while the GitHub App's thread fetches the repository's token:
  /// the next `retry` says it tried, and the deployment goes on (unless it
  /// ended meanwhile).
  bool awaiting_token = false;
  /// The outcome, once decided (phase ending and later).
  std::optional<provider_outcome> outcome;
  /// Failed attempts to write the current transition (start or end).
  int write_failures = 0;
};

/// The DEPLOYMENT actor for heaven's local deployment `id`, which the store
/// has recorded as queued (its `queued` status is in the outbox). It makes
/// the checkout (API providers need none), has the store record it running
/// with its `in_progress` status, and only then starts the provider. When
/// the provider reports, fails, crashes or times out, or heaven stops it,
/// it ends every process the deployment started and has the store record
/// the terminal state with its status, retrying a write that fails until it
/// works; a deployment is never started twice and never ends twice. When
/// heaven stops before the provider started (`shelve`), it removes its
/// checkout and quits, leaving the deployment queued.
deployment_actor::behavior_type
deployment(deployment_actor::stateful_pointer<deployment_state> self,
           context_ptr ctx, int64_t id, deployment_request req);

/// Ends deployment `id` for a deployment actor that died without recording
/// its end (a bug threw inside it): ends every process it started, removes
/// its checkout, then records `error` with `why`, retrying until the store
/// takes it. The store keeps a deployment's first end, so this changes
/// nothing for one that had recorded its end. Returns the actor doing it,
/// which ends once the end is recorded (the receiver keeps the
/// deployment's app+environment in use until then).
caf::actor_addr take_over(caf::actor_system& sys, context_ptr ctx, int64_t id,
                          std::string why);

/// The first rule `req` breaks that the receiver checks before storing it
/// (provider, ref, task, sha, clone URL); none when it may run.
std::optional<std::string> refusal(const deployment_context& ctx,
                                   const deployment_request& req);

} // namespace heaven
