/// The TIMER actor: the one seam through which deadlines pass, so tests can
/// advance time instead of waiting.
#pragma once

#include <caf/timespan.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

/// State of the TIMER actor.
struct timer_state {
  static inline const char* name = "timer";
};

/// Sends `timeout` to `target` once `delay` has passed, then quits.
timer_actor::behavior_type
timer(timer_actor::stateful_pointer<timer_state> self, deployment_actor target,
      caf::timespan delay);

} // namespace heaven
