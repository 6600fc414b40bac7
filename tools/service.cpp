#include "tools/service.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace heaven {

bool notify_service(const std::string& state) {
  // 0: keep NOTIFY_SOCKET, heaven tells systemd more than once.
  return sd_notify(0, state.c_str()) > 0;
}

std::chrono::microseconds watchdog_timeout() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0)
    return std::chrono::microseconds{0};
  return std::chrono::microseconds{usec};
}

namespace {

/// The watchdog's feeder. What it proves alive is the STORE actor, the
/// one part every event and every deployment goes through and the one
/// that blocks (SQLite on its own thread): each round it asks the store
/// for the newest deployment (the read heaven's start checks the database
/// with, which rides in the store's next group commit like any request)
/// and feeds the watchdog only once that is answered. A store stuck on a
/// hung disk or in a loop thus stops the pings, and systemd restarts
/// heaven. An error answer still counts: the store is alive and the
/// problem is /healthz's and the log's to report; a restart would not
/// mend a broken database. No answer within half the timeout: no ping,
/// and the store is asked again.
caf::behavior feed_watchdog(caf::event_based_actor* self, store_actor store,
                            std::chrono::microseconds every) {
  self->send(self, tick_atom::value);
  auto ping = [self, every] {
    notify_service("WATCHDOG=1");
    self->delayed_send(self, every, tick_atom::value);
  };
  return {
    [=](tick_atom) {
      self->request(store, every, list_atom::value, int32_t{1})
        .then([=](std::vector<deployment_row>&) { ping(); },
              [=](caf::error& err) {
                if (err != caf::sec::request_timeout) {
                  ping();
                  return;
                }
                spdlog::warn("heaven's store did not answer within {} ms: "
                             "the systemd watchdog is not fed",
                             every.count() / 1000);
                self->send(self, tick_atom::value);
              });
    },
  };
}

} // namespace

caf::actor start_watchdog(caf::actor_system& sys, store_actor store,
                          std::chrono::microseconds timeout) {
  auto every = timeout / 2;
  spdlog::info("heaven feeds systemd's watchdog every {} ms while its store "
               "answers",
               every.count() / 1000);
  return sys.spawn(feed_watchdog, std::move(store), every);
}

void drop_service_variables(string_pairs& env) {
  std::erase_if(env, [](const auto& kv) {
    return kv.first == "NOTIFY_SOCKET" || kv.first == "WATCHDOG_USEC"
           || kv.first == "WATCHDOG_PID";
  });
}

} // namespace heaven
