/// The command provider: what every process-running ("tool") provider
/// shares — shell, capistrano's Capfile mode, fabric's fabfile mode,
/// ansible, bundler_capistrano's tools: one command run in the checkout,
/// streamed, cancelled by the kill rules, judged by its exit status.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/config.hpp"
#include "base/log_format.hpp"
#include "messages/interfaces.hpp"
#include "messages/provider_job.hpp"

namespace heaven {

/// A preparatory process a tool provider runs before its command (loading
/// the deploy key into an agent, unpacking a tarball, `bundle install`).
struct command_step {
  std::vector<std::string> argv;
  /// How outcomes name it: "<label> exited with status 3".
  std::string label;
  /// The heaven line logged right before it starts ("Running ..."); may be
  /// empty.
  std::string announce;
  /// Variables added to the plan's environment for this step only (the key
  /// `ssh-add` reads, ...).
  string_pairs extra_env;
  /// When set, a non-zero exit is heaven's setup failing, not the
  /// deployment: the outcome is `error` with this description.
  std::string error_when_failed;
};

/// What a tool provider runs in the checkout: the `before` steps in order,
/// then its command; the first that fails ends the deployment.
struct command_plan {
  /// Runs first, one after the other, in the same cwd and environment.
  std::vector<command_step> before;
  /// What to run: argv[0] is found on the child's PATH. No shell unless the
  /// provider asks for one (`/bin/sh -c` with every value shell_quote'd).
  std::vector<std::string> argv;
  /// The child's complete environment.
  string_pairs env;
  /// Where it runs (the canonical checkout).
  std::string cwd;
  /// How outcomes name it: "<label> exited with status 3".
  std::string label;
  /// The heaven line logged right before it starts ("Running ...").
  std::string announce;
  /// The description of a success (exit status 0).
  std::string success;
  /// Runs once when the provider ends, before it reports its outcome
  /// (removes a key file, ...). May be empty.
  std::function<void()> cleanup;
  /// The deployment's scope (set from the job before the planner runs):
  /// every process of the plan, the ssh-agent included, starts in it.
  process_scope scope;
};

/// Turns a job into a plan: fills `plan` and returns none, or returns why
/// the deployment is an `error` (then nothing runs).
using command_planner = std::function<std::optional<std::string>(
  const provider_job& job, command_plan& plan)>;

/// State of a tool provider (shell, capistrano, fabric, ansible).
struct command_state {
  static inline const char* name = "command_provider";
  provider_job job;
  deployment_actor deployment;
  command_plan plan;
  /// The deployment's id, repository and environment: the log context of
  /// every handler.
  log_context log;
  /// Which process runs: an index into `plan.before`, or its size for the
  /// command itself.
  std::size_t step = 0;
  /// The running process's group, once started (0 before).
  int32_t pgid = 0;
  bool cancelled = false;
  /// Set once SIGKILL is due: a group that starts later is killed at once.
  bool killing = false;
  /// How the command ended, kept while what is left of its group gets the
  /// rest of its grace period.
  std::optional<exit_info> ended;

  /// Runs `plan.cleanup` unless it already ran.
  void clean_up();

  ~command_state() {
    clean_up();
  }
};

/// A tool provider actor: asks `planner` for its plan (an answer of why not
/// ends the deployment in `error`), then runs the plan's `before` steps and
/// its command one after the other, each announced and in its own process
/// group, streaming stdout/stderr to `deployment`. Reports `success`
/// (plan.success) when the command exits 0, else `failure` naming the first
/// process that exited non-zero or was killed, and its status or signal.
/// `cancel` sends SIGTERM to the group, SIGKILL after `job.kill_grace_ms`, and
/// reports `failure` "cancelled" (with `job.terminate_children` false it leaves
/// the group running and reports at once).
process_provider_actor::behavior_type
command_provider(process_provider_actor::stateful_pointer<command_state> self,
                 provider_job job, deployment_actor deployment,
                 command_planner planner);

/// `job.env` plus BRANCH (ref), SHA, DEPLOY_ENV (environment) and
/// DEPLOY_TASK (task), which win over the same names in `job.env`.
string_pairs deployment_env(const provider_job& job);

/// The canonical path of the job's checkout, or "" (with `why` set) when it
/// is gone.
std::string checkout_dir(const provider_job& job, std::string& why);

/// Hands DEPLOYMENT_PRIVATE_KEY to a tool that signs in with an SSH agent
/// (cap's net-ssh, Fabric's paramiko, ssh itself): when `plan.env` has the
/// key, starts a private `ssh-agent` for this deployment (socket in a 0700
/// directory of its own), makes loading the key into it (`ssh-add -`, the key
/// on its stdin) the plan's first step, and gives the tool SSH_AUTH_SOCK
/// instead of the key: the tool's environment no longer holds it, and the
/// key is never in a file or an argv. `plan.cleanup` then stops the agent.
/// Returns why it could not, if it could not (none also when there is no
/// key: the tool then uses what the operator's ~/.ssh provides).
std::optional<std::string> use_deploy_key_agent(command_plan& plan);

/// Removes `key` from `env`.
void erase_env(string_pairs& env, std::string_view key);

/// "Deployed <ref> (<short sha>) to <environment> with <tool>".
std::string deployed_with(const provider_job& job, std::string_view tool);

} // namespace heaven
