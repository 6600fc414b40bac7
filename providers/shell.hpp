/// The shell provider: runs `payload.config.deploy_script` from the
/// repository.
#pragma once

#include <cstdint>
#include <optional>

#include "messages/interfaces.hpp"

namespace heaven {

/// State of the SHELL provider.
struct shell_state {
  static inline const char* name = "shell";
  provider_job job;
  caf::actor deployment;
  /// The script's process group, once started (0 before).
  int32_t pgid = 0;
  bool cancelled = false;
  /// Set once SIGKILL is due: a group that starts later is killed at once.
  bool killing = false;
  /// How the script ended, kept while what is left of its group gets the
  /// rest of its grace period.
  std::optional<exit_info> ended;
};

/// The SHELL provider actor. Checks the script (shape, inside the checkout,
/// exists, executable: else `error`), runs it with BRANCH, SHA, DEPLOY_ENV and
/// DEPLOY_TASK on top of `job.env`, and reports `success` on exit 0, else
/// `failure` naming the exit status.
provider_actor::behavior_type
shell(provider_actor::stateful_pointer<shell_state> self, provider_job job,
      caf::actor deployment);

} // namespace heaven
