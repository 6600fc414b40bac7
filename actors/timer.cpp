#include "actors/timer.hpp"

#include <caf/all.hpp>

namespace heaven {

timer_actor::behavior_type
timer(timer_actor::stateful_pointer<timer_state> self, deployment_actor target,
      caf::timespan delay) {
  self->delayed_send(self, delay, timeout_atom::value);
  return {
    [=](timeout_atom) {
      self->send(target, timeout_atom::value);
      self->quit();
    },
  };
}

} // namespace heaven
