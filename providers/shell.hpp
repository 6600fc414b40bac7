/// The shell provider: runs `payload.config.deploy_script` from the
/// repository, as a command provider (providers/command.hpp).
#pragma once

#include "messages/interfaces.hpp"
#include "messages/provider_job.hpp"
#include "messages/registry.hpp"
#include "providers/command.hpp"

namespace heaven {

/// State of the SHELL provider (the tool provider state).
using shell_state = command_state;

/// The SHELL provider actor. Checks the script (shape, inside the checkout,
/// exists, executable: else `error`), runs it with BRANCH, SHA, DEPLOY_ENV and
/// DEPLOY_TASK on top of `job.env`, and reports `success` on exit 0, else
/// `failure` naming the exit status.
process_provider_actor::behavior_type
shell(process_provider_actor::stateful_pointer<shell_state> self,
      provider_job job, deployment_actor deployment);

/// The factory that spawns one SHELL provider actor per deployment (needs
/// the checkout).
provider_factory shell_provider();

} // namespace heaven
