#include "providers/outcome.hpp"

#include <utility>

#include <caf/send.hpp>
#include <spdlog/spdlog.h>

namespace heaven {

void report_end(const deployment_actor& deployment, int64_t id,
                deploy_state state, std::string description) {
  spdlog::info("deployment {} ends with {}: {}", id, to_string(state),
               description);
  // The deployment reads the outcome, not who sent it.
  if (deployment)
    caf::anon_send(deployment, result_atom::value,
                   provider_outcome{state, std::move(description)});
}

} // namespace heaven
