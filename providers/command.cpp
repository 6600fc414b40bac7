#include "providers/command.hpp"
#include "providers/outcome.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "actors/process.hpp"
#include "actors/ssh.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// Starts the current step of the plan (a `before` step or the command).
void run_step(process_provider_actor::stateful_pointer<command_state> self) {
  auto& st = self->state;
  auto& plan = st.plan;
  bool command = st.step >= plan.before.size();
  auto& announce = command ? plan.announce : plan.before[st.step].announce;
  if (st.deployment && !announce.empty())
    self->send(st.deployment, log_atom::value,
               log_line{stream::heaven, announce});
  process_spec spec;
  spec.argv = command ? plan.argv : plan.before[st.step].argv;
  spec.cwd = plan.cwd;
  spec.env = plan.env;
  spec.scope = st.job.scope;
  if (!command)
    for (auto& [key, value] : plan.before[st.step].extra_env)
      set_env(spec.env, key, value);
  spdlog::info("deployment {} runs {} in {}", st.job.id,
               command ? plan.label : plan.before[st.step].label, spec.cwd);
  st.pgid = 0;
  spawn_process(self->system(), std::move(spec), st.deployment,
                process_owner{self});
}

} // namespace

void command_state::clean_up() {
  if (!plan.cleanup)
    return;
  auto fn = std::move(plan.cleanup);
  plan.cleanup = nullptr;
  fn();
}

string_pairs deployment_env(const provider_job& job) {
  auto env = job.env;
  auto& req = job.request;
  set_env(env, "BRANCH", req.ref);
  set_env(env, "SHA", req.sha);
  set_env(env, "DEPLOY_ENV", req.environment);
  set_env(env, "DEPLOY_TASK", req.task);
  return env;
}

void erase_env(string_pairs& env, std::string_view key) {
  env.erase(std::remove_if(env.begin(), env.end(),
                           [&](auto& kvp) { return kvp.first == key; }),
            env.end());
}

namespace {

/// The path of `name` on the PATH of `env`, or "".
std::string find_program(const std::string& name, const string_pairs& env) {
  auto path = get_env(env, "PATH").value_or("/usr/local/bin:/usr/bin:/bin");
  size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find(':', start);
    if (end == path.npos)
      end = path.size();
    auto dir = path.substr(start, end - start);
    auto candidate = (dir.empty() ? std::string{"."} : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return {};
}

/// Keeps `ssh-agent -D -a <socket>` running until it gets SIGTERM, then
/// stops the agent, waits for it and removes the socket's directory. A
/// shell in between, because Debian's ssh-agent is set-group-ID: exec'ing it
/// would clear the parent death signal, and the shell keeps it.
constexpr auto agent_keeper
  = "trap 'kill $agent 2>/dev/null; wait $agent; rm -f \"$1\"; "
    "rmdir \"${1%/*}\"; exit 0' TERM INT HUP; "
    "ssh-agent -D -a \"$1\" & agent=$!; wait $agent";

/// Starts the agent (through agent_keeper) in the deployment's scope, in a
/// session of its own with /dev/null for stdin, stdout and stderr; returns
/// the keeper, or nullptr with `why`. The keeper gets SIGTERM when heaven
/// dies, even by SIGKILL (the parent death signal: it is started from an
/// actor's scheduler thread, which lives as long as heaven): a key never
/// outlives heaven in a forgotten agent.
std::shared_ptr<child_process>
start_agent(const std::string& socket, const string_pairs& env,
            const process_scope& scope, std::string& why) {
  if (find_program("ssh-agent", env).empty()) {
    why = "ssh-agent is not installed (needed for DEPLOYMENT_PRIVATE_KEY)";
    return nullptr;
  }
  child_options opts;
  opts.exe = "/bin/sh";
  opts.argv = {opts.exe, "-c", agent_keeper, "heaven-ssh-agent", socket};
  opts.env = env;
  opts.death_signal = SIGTERM;
  opts.scope = scope;
  std::string error;
  auto keeper = start_child(opts, error);
  if (!keeper) {
    why = "cannot start ssh-agent for DEPLOYMENT_PRIVATE_KEY: " + error;
    return nullptr;
  }
  return keeper;
}

/// Stops the keeper and its agent (one process group) and reaps the
/// keeper: SIGTERM, then SIGKILL if they are still there after a second
/// (they exit in milliseconds: this rarely waits at all).
void stop_agent(child_process& keeper) {
  ::kill(-keeper.pid(), SIGTERM);
  if (keeper.wait_for(std::chrono::seconds(1)))
    return;
  ::kill(-keeper.pid(), SIGKILL);
  keeper.wait();
}

} // namespace

std::optional<std::string> use_deploy_key_agent(command_plan& plan) {
  constexpr auto variable = "DEPLOYMENT_PRIVATE_KEY";
  auto key = get_env(plan.env, variable);
  erase_env(plan.env, variable);
  if (!key || key->empty())
    return std::nullopt;
  // A socket path must fit in 108 bytes: a short directory under /tmp.
  std::string dir = "/tmp/heaven-agent-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr)
    return "cannot create a directory for this deployment's ssh-agent: "
           + std::string{std::strerror(errno)};
  auto socket = dir + "/agent.sock";
  std::string why;
  auto keeper = start_agent(socket, plan.env, plan.scope, why);
  if (!keeper) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    return why;
  }
  erase_env(plan.env, "SSH_AGENT_PID");
  set_env(plan.env, "SSH_AUTH_SOCK", socket);
  // The agent creates its socket right after it starts: wait for it (5 s
  // at most), then hand the key over on ssh-add's stdin.
  command_step load;
  load.argv = {"/bin/sh", "-c",
               "i=0; while [ ! -S \"$SSH_AUTH_SOCK\" ] && [ $i -lt 100 ]; "
               "do sleep 0.05; i=$((i+1)); done; "
               "printf '%s' \"$HEAVEN_DEPLOY_KEY\" | ssh-add -q -"};
  load.label = "ssh-add (loading DEPLOYMENT_PRIVATE_KEY)";
  load.error_when_failed = "ssh-add could not load DEPLOYMENT_PRIVATE_KEY "
                           "(see the log): is it a whole private key without "
                           "a passphrase?";
  load.announce = "Loading DEPLOYMENT_PRIVATE_KEY into this deployment's "
                  "ssh-agent";
  load.extra_env = {{"HEAVEN_DEPLOY_KEY", unescape_private_key(*key)}};
  plan.before.insert(plan.before.begin(), std::move(load));
  auto previous = std::move(plan.cleanup);
  plan.cleanup = [keeper, dir, previous] {
    if (previous)
      previous();
    stop_agent(*keeper);
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  return std::nullopt;
}

std::string checkout_dir(const provider_job& job, std::string& why) {
  std::error_code ec;
  auto root = fs::weakly_canonical(job.workspace, ec);
  if (ec || !fs::is_directory(root, ec)) {
    why = "the workspace " + job.workspace + " is gone";
    return {};
  }
  return root.string();
}

std::string deployed_with(const provider_job& job, std::string_view tool) {
  auto& req = job.request;
  return "Deployed " + req.ref + " (" + req.sha.substr(0, 7) + ") to "
         + req.environment + " with " + std::string{tool};
}

process_provider_actor::behavior_type
command_provider(process_provider_actor::stateful_pointer<command_state> self,
                 provider_job job, deployment_actor deployment,
                 command_planner planner) {
  self->state.job = std::move(job);
  self->state.deployment = std::move(deployment);
  auto& st = self->state;
  st.log = log_context{st.job.id, st.job.request.repo,
                       st.job.request.environment};
  log_scope in{st.log};
  // Cleans up, tells the deployment how it ended, quits.
  auto finish = [self](deploy_state state, std::string description) {
    auto& st = self->state;
    st.clean_up();
    report_end(st.deployment, st.job.id, state, std::move(description));
    self->quit();
  };
  st.plan.scope = st.job.scope;
  if (auto why = planner(st.job, st.plan)) {
    finish(deploy_state::error, std::move(*why));
    return process_provider_actor::behavior_type::make_empty_behavior();
  }
  run_step(self);
  auto terminate = [self] {
    auto& st = self->state;
    spdlog::info("deployment {} sends SIGTERM to process group {}", st.job.id,
                 st.pgid);
    kill_group(st.pgid, SIGTERM);
    self->delayed_send(self, std::chrono::milliseconds(st.job.kill_grace_ms),
                       kill_atom::value);
  };
  return {
    [self, terminate, finish](cancel_atom) {
      log_scope in{self->state.log};
      auto& st = self->state;
      if (st.cancelled)
        return;
      st.cancelled = true;
      // Already SIGKILLed (heaven is stopping): just wait for `exited`.
      if (st.killing)
        return;
      if (!st.job.terminate_children) {
        spdlog::info("deployment {} leaves process group {} running", st.job.id,
                     st.pgid);
        finish(deploy_state::failure, "cancelled");
        return;
      }
      // Before `started` there is no group yet: it is killed on arrival.
      if (st.pgid != 0)
        terminate();
    },
    [self, terminate](started_atom, int32_t pid) {
      log_scope in{self->state.log};
      auto& st = self->state;
      st.pgid = pid;
      if (st.killing)
        kill_group(pid, SIGKILL);
      else if (st.cancelled)
        terminate();
    },
    [self, finish](exited_atom, exit_info info) {
      log_scope in{self->state.log};
      auto& st = self->state;
      if (st.cancelled && st.pgid > 0 && !st.killing && group_alive(st.pgid)) {
        // The command is gone but some of its group ignored SIGTERM: they
        // get SIGKILL when the grace period ends, then we report.
        st.ended = info;
        return;
      }
      bool command = st.step >= st.plan.before.size();
      auto& label = command ? st.plan.label : st.plan.before[st.step].label;
      if (!command && !st.cancelled && info.error.empty() && info.signal == 0
          && info.code == 0) {
        ++st.step;
        run_step(self);
        return;
      }
      if (st.cancelled)
        finish(deploy_state::failure, "cancelled");
      else if (!command && !st.plan.before[st.step].error_when_failed.empty())
        finish(deploy_state::error, st.plan.before[st.step].error_when_failed);
      else if (!info.error.empty())
        finish(deploy_state::error, info.error);
      else if (info.signal != 0)
        finish(deploy_state::failure,
               label + " was killed by signal " + std::to_string(info.signal));
      else if (info.code != 0)
        finish(deploy_state::failure,
               label + " exited with status " + std::to_string(info.code));
      else
        finish(deploy_state::success, st.plan.success);
    },
    [self, finish](kill_atom) {
      log_scope in{self->state.log};
      auto& st = self->state;
      st.killing = true;
      if (st.pgid > 0 && group_alive(st.pgid)) {
        spdlog::warn("deployment {} sends SIGKILL to process group {}",
                     st.job.id, st.pgid);
        kill_group(st.pgid, SIGKILL);
      }
      if (st.ended)
        finish(deploy_state::failure, "cancelled");
    },
  };
}

} // namespace heaven
