/// Phases on every host over SSH: the engine of capistrano's and fabric's
/// native modes. A planner reads the job into scripts ("phases"); the
/// engine opens one SSH actor per host of `payload.config.hosts` and runs
/// each phase on all hosts at once, the next only when every host is done.
///
/// The host settings, shared by both modes:
///   hosts      ["[user@]host[:port]", ...], or {"<env>": [...], ...}; an
///              entry may be {"host": "...", "deploy_to": "..."}
///   user       SSH user when a host names none (default "deploy")
///   deploy_to  absolute path on the servers
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "actors/ssh.hpp"
#include "messages/interfaces.hpp"
#include "messages/provider_job.hpp"
#include "messages/registry.hpp"
#include "providers/command.hpp"

namespace heaven {

/// Makes the SSH actor of one host (replaceable in tests); its output goes
/// to the given sink.
using ssh_spawner
  = std::function<ssh_actor(caf::actor_system&, ssh_options, line_sink)>;

/// What the engine needs besides the job.
struct remote_config {
  /// known_hosts file every server's host key must be in.
  std::string known_hosts;
  /// The deploy key's text (real newlines); from DEPLOYMENT_PRIVATE_KEY.
  std::string private_key;
  int64_t connect_timeout_ms = 10000;
  ssh_spawner spawn = spawn_ssh;
};

/// One server of a deployment.
struct remote_host {
  std::string user;
  std::string host;
  int port = 22;
  /// "host" or "host:port": what its output lines start with.
  std::string label;
  /// Where the deployment lives on this server (payload.config.deploy_to,
  /// or the host's own).
  std::string deploy_to;
};

/// Scripts to run on every host, phase after phase, with their names.
using remote_phases = std::vector<std::pair<std::string, std::string>>;

/// A path relative to a directory: no leading '/', no '..', no empty
/// parts, only [A-Za-z0-9_.-] in names.
bool relative_path(const std::string& path);

/// Reads `payload.config.hosts` (and `user`, `deploy_to`) for the job's
/// environment into `hosts`; returns what is wrong, if anything. With
/// `need_deploy_to`, a host without deploy_to is wrong.
std::optional<std::string> read_remote_hosts(const provider_job& job,
                                             bool need_deploy_to,
                                             std::vector<remote_host>& hosts);

/// `script` for `host`: HEAVEN_DEPLOY_TO set to its (quoted) deploy_to.
std::string on_host(const remote_host& host, const std::string& script);

/// Reads a job into its hosts and phases; returns why it can't run, if it
/// can't.
using remote_planner = std::function<std::optional<std::string>(
  const provider_job&, std::vector<remote_host>&, remote_phases&)>;

/// State of a provider running phases on every host.
struct remote_state {
  static inline const char* name = "remote_steps";
  provider_job job;
  deployment_actor deployment;
  std::vector<remote_host> hosts;
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
/// naming the first host and phase that failed. An `error` before any
/// connection when the planner refuses, the key is unusable or there is no
/// known_hosts file.
provider_actor::behavior_type
remote_steps(provider_actor::stateful_pointer<remote_state> self,
             provider_job job, deployment_actor deployment, remote_config cfg,
             remote_planner planner);

/// The factory of a tool with a native mode (capistrano, fabric): when the
/// job's config names hosts, remote_steps with `remote` (and the key of the
/// job's DEPLOYMENT_PRIVATE_KEY, when set, instead of `native.private_key`),
/// else a command provider with `local`, in the checkout.
provider_factory native_or_command_provider(remote_config native,
                                            remote_planner remote,
                                            command_planner local);

} // namespace heaven
