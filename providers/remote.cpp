#include "providers/remote.hpp"

#include <cctype>
#include <charconv>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "base/ssh_key.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

using self_ptr = provider_actor::stateful_pointer<remote_state>;

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
         || c == '.';
}

/// "[user@]host[:port]" → host, or "" and `why`.
bool parse_host(const std::string& text, const std::string& default_user,
                remote_host& out, std::string& why) {
  auto rest = text;
  out.user = default_user;
  if (auto at = rest.find('@'); at != std::string::npos) {
    out.user = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  out.port = 22;
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    auto digits = rest.substr(colon + 1);
    int port = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(),
                                   port);
    if (ec != std::errc{} || p != digits.data() + digits.size() || port < 1
        || port > 65535) {
      why = "bad port in host '" + text + "'";
      return false;
    }
    out.port = port;
    rest = rest.substr(0, colon);
  }
  out.host = rest;
  auto ok = [](const std::string& s) {
    if (s.empty() || s.front() == '-')
      return false;
    for (char c : s)
      if (!word_char(c))
        return false;
    return true;
  };
  if (!ok(out.host) || !ok(out.user)) {
    why = "bad host '" + text + "': use [user@]host[:port]";
    return false;
  }
  out.label = out.port == 22 ? out.host
                             : out.host + ":" + std::to_string(out.port);
  return true;
}

} // namespace

bool relative_path(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.back() == '/')
    return false;
  size_t start = 0;
  while (start <= p.size()) {
    auto end = p.find('/', start);
    auto part = p.substr(start, end == std::string::npos ? end : end - start);
    if (part.empty() || part == "." || part == "..")
      return false;
    for (char c : part)
      if (!word_char(c))
        return false;
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return true;
}

std::optional<std::string> read_remote_hosts(const provider_job& job,
                                             bool need_deploy_to,
                                             std::vector<remote_host>& hosts) {
  auto& config = job.config;
  auto& env = job.request.environment;
  if (config.hosts.empty())
    return "payload.config.hosts names no servers for " + env;
  auto check_deploy_to = [](std::string& path) -> std::optional<std::string> {
    while (path.size() > 1 && path.back() == '/')
      path.pop_back();
    if (path.size() < 2 || path.front() != '/'
        || !relative_path(path.substr(1)))
      return "payload.config.deploy_to must be an absolute path without .. "
             "(got '"
             + path + "')";
    return std::nullopt;
  };
  std::string deploy_to;
  if (config.has_deploy_to) {
    deploy_to = config.deploy_to;
    if (auto why = check_deploy_to(deploy_to))
      return why;
  }
  for (auto& h : config.hosts) {
    // "[user@]host[:port]", or {"host": "...", "deploy_to": "..."} for a
    // server whose layout lives elsewhere.
    if (h.address.empty())
      return "payload.config.hosts must hold \"deploy@host:22\" strings or "
             "{\"host\": ..., \"deploy_to\": ...} objects";
    remote_host host;
    std::string why;
    if (!parse_host(h.address, config.user, host, why))
      return why;
    host.deploy_to = deploy_to;
    if (h.has_deploy_to) {
      if (!h.deploy_to_valid)
        return "payload.config.hosts: deploy_to must be a path";
      host.deploy_to = h.deploy_to;
      if (auto bad = check_deploy_to(host.deploy_to))
        return bad;
    }
    if (need_deploy_to && host.deploy_to.empty())
      return "payload.config.deploy_to is missing: where on the servers?";
    hosts.push_back(std::move(host));
  }
  return std::nullopt;
}

std::string on_host(const remote_host& host, const std::string& script) {
  return "HEAVEN_DEPLOY_TO=" + shell_quote(host.deploy_to) + "\n" + script;
}

namespace {

void say(self_ptr self, std::string text) {
  auto& st = self->state;
  if (st.deployment)
    self->send(st.deployment, log_atom::value,
               log_line{stream::heaven, std::move(text)});
}

void finish(self_ptr self, deploy_state state, std::string description) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  if (st.deployment)
    self->send(st.deployment, result_atom::value,
               provider_outcome{state, std::move(description)});
  for (auto& s : st.sessions)
    self->send(s, cancel_atom::value);
  st.sessions.clear();
  self->quit();
}

/// "N host(s)".
std::string count_hosts(size_t n) {
  return std::to_string(n) + " host" + (n == 1 ? "" : "s");
}

/// Runs phase `st.phase` on every host at once; the next starts when all
/// have ended, the deployment fails at the end of a phase any host failed.
void run_phase(self_ptr self) {
  auto& st = self->state;
  if (st.done)
    return;
  if (st.phase == st.phases.size()) {
    auto& req = st.job.request;
    auto what = req.task == "deploy:rollback"
                  ? "Rolled back " + req.environment + " on "
                : req.task == "deploy"
                  ? "Deployed " + req.ref + " (" + req.sha.substr(0, 7)
                      + ") to " + req.environment + " on "
                  : "Ran " + req.task + " on " + req.environment + " on ";
    finish(self, deploy_state::success, what + count_hosts(st.hosts.size()));
    return;
  }
  auto& [name, script] = st.phases[st.phase];
  // Every mode's phases are announced so, fabric's too: the log's wording
  // predates the engine's split from the capistrano provider.
  say(self, "capistrano " + name + " on " + count_hosts(st.hosts.size()));
  st.waiting = st.sessions.size();
  st.failure.clear();
  for (size_t i = 0; i < st.sessions.size(); ++i) {
    auto label = st.hosts[i].label;
    auto phase_name = name;
    self
      ->request(st.sessions[i], caf::infinite,
                ssh_command{on_host(st.hosts[i], script), 0})
      .then(
        [self, label, phase_name](ssh_result& r) {
          auto& st = self->state;
          std::string problem;
          if (!r.error.empty())
            problem = r.error;
          else if (!r.exit_signal.empty())
            problem = "killed by SIG" + r.exit_signal;
          else if (r.exit_code != 0)
            problem = "exit status " + std::to_string(r.exit_code);
          if (!problem.empty() && st.failure.empty())
            st.failure = phase_name + " failed on " + label + ": " + problem;
          if (--st.waiting > 0)
            return;
          if (!st.failure.empty()) {
            finish(self, deploy_state::failure, st.failure);
            return;
          }
          ++st.phase;
          run_phase(self);
        },
        [self, label, phase_name](caf::error& err) {
          auto& st = self->state;
          if (st.failure.empty())
            st.failure = phase_name + " failed on " + label + ": "
                         + self->system().render(err);
          if (--st.waiting == 0)
            finish(self, deploy_state::failure, st.failure);
        });
  }
}

} // namespace

provider_actor::behavior_type
remote_steps(provider_actor::stateful_pointer<remote_state> self,
             provider_job job, deployment_actor deployment, remote_config cfg,
             remote_planner planner) {
  auto& st = self->state;
  st.job = std::move(job);
  st.deployment = std::move(deployment);
  auto why = planner(st.job, st.hosts, st.phases);
  if (!why) {
    if (auto key = private_key_problem(cfg.private_key); !key.empty())
      why = std::move(key);
    else if (cfg.known_hosts.empty())
      why = "HEAVEN_KNOWN_HOSTS names no known_hosts file: heaven verifies "
            "every server's host key";
  }
  if (why) {
    finish(self, deploy_state::error, std::move(*why));
    return provider_actor::behavior_type::make_empty_behavior();
  }
  for (auto& h : st.hosts) {
    ssh_options opts;
    opts.host = h.host;
    opts.port = h.port;
    opts.user = h.user;
    opts.private_key = cfg.private_key;
    opts.known_hosts = cfg.known_hosts;
    opts.connect_timeout_ms = cfg.connect_timeout_ms;
    opts.label = h.label;
    opts.about = {st.job.id, st.job.request.repo, st.job.request.environment};
    st.sessions.push_back(
      cfg.spawn(self->system(), std::move(opts), st.deployment));
  }
  run_phase(self);
  return {
    [self](cancel_atom) {
      say(self, "Closing the SSH sessions");
      finish(self, deploy_state::failure, "cancelled");
    },
  };
}

provider_factory native_or_command_provider(remote_config native,
                                            remote_planner remote,
                                            command_planner local) {
  return
    [native, remote, local](caf::actor_system& sys, provider_job job,
                            deployment_actor deployment) -> provider_handle {
      if (!job.config.names_hosts)
        return sys.spawn(command_provider, std::move(job),
                         std::move(deployment), local);
      auto cfg = native;
      if (auto key = get_env(job.env, "DEPLOYMENT_PRIVATE_KEY"))
        cfg.private_key = unescape_private_key(*key);
      return sys.spawn(remote_steps, std::move(job), std::move(deployment),
                       std::move(cfg), remote);
    };
}

} // namespace heaven
