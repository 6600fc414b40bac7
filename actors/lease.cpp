#include "actors/lease.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

namespace heaven {

namespace {

struct lease_state {
  static inline const char* name = "lease";
  lease_setup setup;
  /// When the last renewal that worked was asked for: the lease held until
  /// at least then.
  std::chrono::steady_clock::time_point held_since;
  bool renewing = false;
  bool gone = false;
};

using lease_ptr = caf::stateful_actor<lease_state>*;

void lose(lease_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.gone)
    return;
  st.gone = true;
  spdlog::critical("this heaven instance lost its lease: {}; it stops what "
                   "it runs without posting anything more",
                   why);
  if (st.setup.lost)
    st.setup.lost(why);
  self->quit();
}

void renew(lease_ptr self) {
  auto& st = self->state;
  if (st.gone)
    return;
  auto now = std::chrono::steady_clock::now();
  if (now - st.held_since >= st.setup.lease) {
    lose(self, "no renewal worked for " + std::to_string(st.setup.lease.count())
                 + " s");
    return;
  }
  if (st.renewing)
    return; // The store is slow: the deadline above still counts.
  st.renewing = true;
  auto asked = now;
  self->request(st.setup.store, st.setup.lease, lease_atom::value)
    .then(
      [=](const lease_report& r) {
        auto& st = self->state;
        st.renewing = false;
        if (!r.held) {
          lose(self, "another instance took its lease over");
          return;
        }
        st.held_since = asked;
        // Renewed: look for work (a safety net for a missed NOTIFY, and
        // what a taken-over instance gave back).
        self->send(st.setup.receiver, wake_atom::value);
      },
      [=](caf::error& err) {
        self->state.renewing = false;
        spdlog::error("heaven could not renew its lease: {}",
                      self->system().render(err));
      });
}

caf::behavior lease_actor(lease_ptr self, lease_setup setup) {
  auto& st = self->state;
  st.setup = std::move(setup);
  st.held_since = std::chrono::steady_clock::now();
  auto period = std::max<std::chrono::milliseconds>(
    std::chrono::milliseconds(200),
    std::chrono::duration_cast<std::chrono::milliseconds>(st.setup.lease) / 3);
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      renew(self);
      self->delayed_send(self, period, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_lease(caf::actor_system& sys, lease_setup setup) {
  return sys.spawn(lease_actor, std::move(setup));
}

} // namespace heaven
