/// The DEPLOYMENT actor: owns one deployment's whole life and always ends it
/// with exactly one terminal status.
#pragma once

#include <cstdint>
#include <string>

#include "actors/context.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// Where a deployment is in its life.
enum class phase : uint8_t {
  /// Waiting for its private checkout.
  preparing,
  /// Its provider runs.
  running,
  /// It has its terminal status; nothing changes any more.
  finished,
};

/// State of the DEPLOYMENT actor.
struct deployment_state {
  static inline const char* name = "deployment";

  // -- what it deploys ------------------------------------------------------
  context_ptr ctx;
  int64_t id = 0;
  deployment_request req;
  /// The app+environment key it holds at the receiver ("" holds none).
  std::string key;
  receiver_actor receiver;

  // -- helpers it supervises --------------------------------------------------
  status_poster_actor poster;
  timer_actor timer;
  provider_actor provider;

  // -- progress ---------------------------------------------------------------
  phase at = phase::preparing;
  std::string workspace;
  /// The git process group running while preparing (0 when none).
  int32_t prep_pgid = 0;
  /// Set when the deadline passed: output after it is dropped and the log
  /// ends with the timeout line.
  bool timed_out = false;
  /// Set once the checkout was asked for: the deployment then stays until
  /// `prepared` arrives, to remove it.
  bool checkout_requested = false;
  /// Set when a timeout left the processes running on purpose
  /// (TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0): their checkout stays.
  bool children_left = false;
  /// Set when heaven is shutting down: the reason given.
  std::string shutdown_reason;
};

/// The DEPLOYMENT actor for heaven's local deployment `id`. When `verdict`
/// has a state the deployment ends at once with it and no provider runs:
/// `error` for "Already deploying.", a locked environment or a restart,
/// `success` for a lock or unlock task the store has carried out. `key` is
/// the app+environment key this deployment holds at `receiver` (released
/// when it ends), or "".
deployment_actor::behavior_type
deployment(deployment_actor::stateful_pointer<deployment_state> self,
           context_ptr ctx, int64_t id, deployment_request req,
           receiver_actor receiver, std::string key,
           provider_outcome verdict);

/// The key of the concurrency rule: one deployment at a time per
/// app (payload.name, else the repository's name) and environment.
std::string deployment_key(const deployment_request& req);

} // namespace heaven
