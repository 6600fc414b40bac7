/// The newcomer's tour: a bundled example repository deployed by a signed
/// sample event sent to the running server.
#pragma once

#include <cstdint>
#include <string>

#include "base/config.hpp"

namespace heaven {

/// Makes the example repository under `<data>/demo`, sends a signed
/// deployment event for it to heaven on `port`, and prints the deployment's
/// live log until it ends. Returns false (after saying why) on failure.
bool run_demo(const settings& cfg, uint16_t port);

} // namespace heaven
