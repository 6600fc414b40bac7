/// The RECEIVER actor: applies heaven's rules to accepted events.
#pragma once

#include <map>
#include <string>

#include "actors/context.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// State of the RECEIVER actor.
struct receiver_state {
  static inline const char* name = "receiver";
  context_ptr ctx;
  /// Deployments in flight by app+environment key.
  std::map<std::string, deployment_actor> running;
};

/// "lock" when `task` is `<prefix>:lock`, "unlock" for `<prefix>:unlock`,
/// else "".
std::string lock_action(const std::string& prefix, const std::string& task);

/// The RECEIVER actor. Rules, in order: a disabled repository's events are
/// ignored (202); a lock or unlock task is carried out by the store and
/// answered with `success`; a deployment to a locked environment ends with
/// `error` naming the locker; one deployment per app+environment at a time.
/// `status` events go to auto_deploy, `deployment_status` events to notify.
/// At start it asks the store for deployments an earlier
/// run left unfinished: those never started run now; those that were
/// running end with `error`, since nobody knows how far they got.
receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx);

} // namespace heaven
