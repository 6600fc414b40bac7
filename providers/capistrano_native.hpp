/// The capistrano provider's native mode: heaven runs Capistrano 3's deploy
/// flow itself, over one SSH actor per host, and leaves exactly the server
/// layout `cap <env> deploy` leaves (repo/, releases/<UTC timestamp>/ with
/// REVISION, shared/ links, current, revisions.log).
///
/// Used when `payload.config.hosts` names the servers. The config keys, as a
/// Capistrano user would guess them:
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
/// the previous release as Capistrano does.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/ssh.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// Makes the SSH actor of one host (replaceable in tests).
using ssh_spawner
  = std::function<ssh_actor(caf::actor_system&, ssh_options, caf::actor)>;

/// What the native mode needs besides the job.
struct capistrano_native_config {
  /// known_hosts file every server's host key must be in.
  std::string known_hosts;
  /// The deploy key's text (real newlines); from DEPLOYMENT_PRIVATE_KEY.
  std::string private_key;
  int64_t connect_timeout_ms = 10000;
  ssh_spawner spawn = spawn_ssh;
};

/// One server of a deployment.
struct cap_host {
  std::string user;
  std::string host;
  int port = 22;
  /// "host" or "host:port": what its output lines start with.
  std::string label;
  /// Where the layout lives on this server (payload.config.deploy_to, or
  /// the host's own).
  std::string deploy_to;
};

/// The deployment's plan, read from `payload.config`.
struct cap_plan {
  std::vector<cap_host> hosts;
  std::string deploy_to;
  std::string repo_url;
  int64_t keep_releases = 5;
  std::vector<std::string> linked_files;
  std::vector<std::string> linked_dirs;
  std::vector<std::string> before_publish;
  std::vector<std::string> after_publish;
  /// The commands of `deploy:<name>` (empty for deploy and rollback).
  std::vector<std::string> task_commands;
};

/// True when `payload_json`'s config names servers (`hosts`): the
/// capistrano and fabric providers then run natively, over SSH.
bool capistrano_native_wanted(const std::string& payload_json);

/// Scripts to run on every host, phase after phase, with their names.
using remote_phases = std::vector<std::pair<std::string, std::string>>;

/// Reads `payload.config.hosts` (and `user`, `deploy_to`) for the job's
/// environment into `plan.hosts`; returns "" or what is wrong.
std::string read_remote_hosts(const provider_job& job, cap_plan& plan,
                              bool need_deploy_to);

/// Reads and checks the plan of `job`; returns "" or what is wrong.
std::string read_cap_plan(const provider_job& job, cap_plan& plan);

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
/// Rollback: picks the release before the newest (as `ls -xt` orders them),
/// moves `current` there, runs after_publish, archives and removes the
/// release it left, and logs "<user> rolled back to release <ts>".
std::string cap_rollback_script(const cap_plan& plan, const std::string& user);
/// `deploy:<name>`: the task's commands in `current`.
std::string cap_task_script(const cap_plan& plan);

/// `script` for `host`: HEAVEN_DEPLOY_TO set to its (quoted) deploy_to.
std::string on_host(const cap_host& host, const std::string& script);

/// Reads a job into its hosts and phases; returns "" or why it can't run.
using remote_planner = std::function<std::string(
  const provider_job&, cap_plan&, remote_phases&)>;

/// capistrano's planner: check, update, publish, finish (or rollback, or a
/// named task).
std::string cap_phases(const provider_job& job, cap_plan& plan,
                       remote_phases& phases);

/// State of the native CAPISTRANO provider.
struct capistrano_native_state {
  static inline const char* name = "capistrano";
  provider_job job;
  caf::actor deployment;
  cap_plan plan;
  std::vector<ssh_actor> sessions;
  /// Scripts of the phases, in order, with their names.
  remote_phases phases;
  size_t phase = 0;
  /// Hosts still running the current phase, and the first failure in it.
  size_t waiting = 0;
  std::string failure;
  bool done = false;
};

/// A provider that runs `planner`'s phases on every host over SSH, all
/// hosts at once, each phase on all of them before the next; `failure`
/// naming the first host and phase that failed. Used by capistrano's and
/// fabric's native modes.
provider_actor::behavior_type remote_steps(
  provider_actor::stateful_pointer<capistrano_native_state> self,
  provider_job job, caf::actor deployment, capistrano_native_config cfg,
  remote_planner planner);

/// The native CAPISTRANO provider actor.
provider_actor::behavior_type capistrano_native(
  provider_actor::stateful_pointer<capistrano_native_state> self,
  provider_job job, caf::actor deployment, capistrano_native_config cfg);

} // namespace heaven
