/// How a provider reports its end: one log line and one result message.
#pragma once

#include <cstdint>
#include <string>

#include "messages/interfaces.hpp"

namespace heaven {

/// Logs "deployment <id> ends with <state>: <description>" and tells
/// `deployment` (when there is one) how the deployment ended.
void report_end(const deployment_actor& deployment, int64_t id,
                deploy_state state, std::string description);

} // namespace heaven
