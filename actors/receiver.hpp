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

/// The RECEIVER actor. At start it asks the store for deployments an earlier
/// run left unfinished: those never started run now; those that were
/// running end with `error`, since nobody knows how far they got.
receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx);

} // namespace heaven
