/// heaven under systemd (conf/heaven.service, Type=notify): telling the
/// service manager that heaven is ready, what it does and that it stops, and
/// feeding its watchdog, through libsystemd's sd_notify. Without
/// NOTIFY_SOCKET in the environment every call here does nothing.
#pragma once

#include <chrono>
#include <string>

#include <caf/fwd.hpp>

#include "base/config.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// Sends `state` ("READY=1", "STATUS=...", several joined by newlines) to
/// the service manager; false when there is none or it could not be told.
bool notify_service(const std::string& state);

/// The watchdog's timeout systemd set (WATCHDOG_USEC, for heaven's pid when
/// WATCHDOG_PID is set), or zero when there is no watchdog.
std::chrono::microseconds watchdog_timeout();

/// Starts the actor that feeds the watchdog (WATCHDOG=1) every half
/// `timeout`, each time after `store` answered a read; returns it, to be
/// ended with heaven's other actors.
caf::actor start_watchdog(caf::actor_system& sys, store_actor store,
                          std::chrono::microseconds timeout);

/// Removes the variables through which systemd talks to heaven
/// (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID) from `env`: they are
/// heaven's, not its deploy scripts'.
void drop_service_variables(string_pairs& env);

} // namespace heaven
