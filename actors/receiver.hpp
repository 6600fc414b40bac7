/// The RECEIVER actor: has the store record and judge every event, and
/// runs the deployments that may run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <caf/response_promise.hpp>

#include "actors/deployment_context.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// State of the RECEIVER actor.
struct receiver_state {
  static inline const char* name = "receiver";
  context_ptr ctx;
  /// Deployment actors alive, with heaven's id of their deployment.
  std::map<caf::actor_addr, int64_t> running;
  /// Set once heaven stops: nothing more starts.
  bool draining = false;
  /// Answered once no deployment actor is left after `drain`.
  std::optional<caf::typed_response_promise<bool>> drained;
  /// Failed attempts in a row to read the unfinished deployments.
  int pending_failures = 0;
};

/// The RECEIVER actor. Every event goes to the store, which records it and
/// decides the rules in one transaction (a disabled repository's events are
/// ignored; lock and unlock tasks; a locked environment; one
/// deployment per app+environment; the refusals the receiver found: an
/// unknown provider, an invalid ref, task, sha or clone URL); only then is
/// the webhook answered, with an `event_receipt` saying how the event was
/// taken. A deployment recorded as queued gets a deployment
/// actor; one the rules ended gets only its log line (its status is in the
/// outbox). `status` events go to auto_deploy, `deployment_status` events to
/// notify. At start it asks the store for deployments an earlier run left
/// unfinished: those never started run now, in order; those that were
/// running end with `error`, since nobody knows how far they got. A
/// deployment actor that dies without recording its end (a bug threw in it)
/// is ended by `take_over`.
receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx);

} // namespace heaven
