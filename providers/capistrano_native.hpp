/// The capistrano provider's native mode: heaven runs Capistrano 3's deploy
/// flow itself, over one SSH actor per host, and leaves exactly the server
/// layout `cap <env> deploy` leaves (repo/, releases/<UTC timestamp>/ with
/// REVISION, shared/ links, current, revisions.log).
///
/// Used when `payload.config.hosts` names the servers; runs on the engine of
/// providers/remote.hpp. The config keys, as a Capistrano user would guess
/// them:
///   hosts          ["[user@]host[:port]", ...], or {"<env>": [...], ...};
///                  an entry may be {"host": "...", "deploy_to": "..."}
///   deploy_to      absolute path on the servers (required)
///   repo_url       what the servers clone (default: repository.clone_url)
///   user           SSH user when a host names none (default "deploy")
///   keep_releases  releases kept by the cleanup (default 5)
///   linked_files   paths in shared/ linked into every release
///   linked_dirs    directories in shared/ linked into every release
///   before_publish commands run in the new release before `current` moves
///   after_publish  commands run in `current` after it moved (a restart)
///   tasks          {"<name>": [commands]}: `deploy:<name>` runs them in
///                  `current` on every host
/// `deploy` runs check → update → publish → finish on all hosts in parallel,
/// each phase on every host before the next; `deploy:rollback` goes back to
/// the previous release as Capistrano does, or to `payload.rollback_release`
/// (Capistrano's ROLLBACK_RELEASE) when the payload names one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "messages/interfaces.hpp"
#include "messages/provider_job.hpp"
#include "providers/remote.hpp"

namespace heaven {

/// The deployment's plan, read from `payload.config`.
struct cap_plan {
  std::vector<remote_host> hosts;
  std::string repo_url;
  int64_t keep_releases = 5;
  std::vector<std::string> linked_files;
  std::vector<std::string> linked_dirs;
  std::vector<std::string> before_publish;
  std::vector<std::string> after_publish;
  /// The commands of `deploy:<name>` (empty for deploy and rollback).
  std::vector<std::string> task_commands;
  /// deploy:rollback's `payload.rollback_release` ("": the release before
  /// the newest); a release_name.
  std::string rollback_release;
};

/// Whether `name` can be a release directory's name in a script: letters,
/// digits, '.', '_' and '-', not starting with '.' or '-' (so no '/', no
/// "..", no option), 1 to 255 bytes.
bool release_name(const std::string& name);

/// Reads and checks the plan of `job`; returns what is wrong, if anything.
std::optional<std::string> read_cap_plan(const provider_job& job,
                                         cap_plan& plan);

/// One phase's script, in the order Capistrano runs its tasks; each starts
/// with `D="$HEAVEN_DEPLOY_TO"`, set per host by `on_host`.
/// `release` is the UTC timestamp of the new release, `user` the name
/// revisions.log records.
std::string cap_check_script(const cap_plan& plan);
std::string cap_update_script(const cap_plan& plan, const std::string& sha,
                              const std::string& release);
std::string cap_publish_script(const cap_plan& plan,
                               const std::string& release);
std::string cap_finish_script(const cap_plan& plan, const std::string& ref,
                              const std::string& sha,
                              const std::string& release,
                              const std::string& user);
/// Rollback, in two phases: the check finds the release to go to on a host
/// (the one before the newest as `ls -xt` orders them, or
/// `plan.rollback_release`) and fails, changing nothing, when there is none
/// ("There are no older releases to rollback to", or "Cannot rollback
/// because release <name> does not exist (releases, newest first: <a>, <b>,
/// ...)"). The rollback finds it again, moves `current` there, runs
/// after_publish, archives and removes the newest release unless it is
/// `current` now, and logs "<user> rolled back to release <name>".
std::string cap_rollback_check_script(const cap_plan& plan);
std::string cap_rollback_script(const cap_plan& plan, const std::string& user);
/// `deploy:<name>`: the task's commands in `current`.
std::string cap_task_script(const cap_plan& plan);

/// capistrano's planner: check, update, publish, finish (or rollback, or a
/// named task).
std::optional<std::string> cap_phases(const provider_job& job,
                                      std::vector<remote_host>& hosts,
                                      remote_phases& phases);

/// The native CAPISTRANO provider actor: remote_steps with cap_phases.
provider_actor::behavior_type
capistrano_native(provider_actor::stateful_pointer<remote_state> self,
                  provider_job job, deployment_actor deployment,
                  remote_config cfg);

} // namespace heaven
