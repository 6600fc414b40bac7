#include "providers/shell.hpp"

#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "base/validate.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// True when `path` is `root` or lies below it (both canonical).
bool inside(const fs::path& root, const fs::path& path) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    // A trailing separator leaves an empty last element.
    if (r->empty() && std::next(r) == root.end())
      break;
    if (p == path.end() || *r != *p)
      return false;
  }
  return true;
}

/// Checks the script and returns its absolute path, or sets `why`.
fs::path check_script(const provider_job& job, const std::string& script,
                      std::string& why) {
  if (script.empty()) {
    why = "payload.config.deploy_script is missing";
    return {};
  }
  auto outside = "deploy script " + script + " is outside the repository";
  if (!valid_script_path(script)) {
    why = outside;
    return {};
  }
  std::error_code ec;
  auto root = fs::weakly_canonical(job.workspace, ec);
  if (ec) {
    why = "the workspace " + job.workspace + " is gone";
    return {};
  }
  // weakly_canonical follows symlinks, so a link pointing out of the
  // checkout resolves outside and is refused.
  auto target = fs::weakly_canonical(root / script, ec);
  if (ec || !inside(root, target)) {
    why = outside;
    return {};
  }
  if (!fs::exists(target, ec)) {
    why = "deploy script " + script + " not found at "
          + job.request.sha.substr(0, 7);
    return {};
  }
  if (!fs::is_regular_file(target, ec) || ::access(target.c_str(), X_OK) != 0) {
    why = "deploy script " + script + " is not executable";
    return {};
  }
  return target;
}

/// The shell provider's plan: the checked script, run as it is.
std::optional<std::string> shell_plan(const provider_job& job,
                                      command_plan& plan) {
  auto& script = job.config.deploy_script;
  std::string why;
  auto path = check_script(job, script, why);
  if (!why.empty())
    return why;
  plan.argv = {path.string()};
  plan.cwd = checkout_dir(job, why);
  if (!why.empty())
    return why;
  plan.env = deployment_env(job);
  plan.label = script;
  plan.announce = "Running " + script;
  plan.success = deployed_with(job, script);
  return std::nullopt;
}

} // namespace

process_provider_actor::behavior_type
shell(process_provider_actor::stateful_pointer<shell_state> self,
      provider_job job, deployment_actor deployment) {
  return command_provider(self, std::move(job), std::move(deployment),
                          shell_plan);
}

provider_factory shell_provider() {
  return [](caf::actor_system& sys, provider_job job,
            deployment_actor deployment) -> provider_handle {
    return sys.spawn(shell, std::move(job), std::move(deployment));
  };
}

} // namespace heaven
