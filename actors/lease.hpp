/// The LEASE actor (several instances on PostgreSQL): renews this
/// instance's lease every third of HEAVEN_LEASE_SECONDS, which also takes
/// over lost instances, and wakes the receiver to claim work. When the
/// lease is gone — another instance took it over, or no renewal worked for
/// a whole lease period (so others will take it over after two) — it calls
/// `lost` once: this instance must stop everything without posting more.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

/// What the LEASE actor works with.
struct lease_setup {
  store_actor store;
  receiver_actor receiver;
  std::chrono::seconds lease{30};
  /// Called once, with why, when the lease is lost (from the actor's
  /// thread).
  std::function<void(const std::string& why)> lost;
};

/// Spawns the LEASE actor; it renews at once, then every lease / 3.
caf::actor spawn_lease(caf::actor_system& sys, lease_setup setup);

} // namespace heaven
