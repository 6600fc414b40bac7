#include "providers/capistrano_native.hpp"

#include <cctype>
#include <charconv>
#include <ctime>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

using json = nlohmann::json;
using self_ptr = provider_actor::stateful_pointer<capistrano_native_state>;

json config_of(const std::string& payload_json) {
  auto payload = json::parse(payload_json, nullptr, false);
  if (!payload.is_object())
    return json::object();
  auto config = payload.find("config");
  if (config == payload.end() || !config->is_object())
    return json::object();
  return *config;
}

/// `hosts` for `environment`: a list, or an object of lists by environment.
json hosts_for(const json& config, const std::string& environment) {
  auto hosts = config.find("hosts");
  if (hosts == config.end())
    return json();
  if (hosts->is_object()) {
    auto env = hosts->find(environment);
    return env == hosts->end() ? json() : *env;
  }
  return *hosts;
}

bool word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
         || c == '.';
}

/// "[user@]host[:port]" → host, or "" and `why`.
bool parse_host(const std::string& text, const std::string& default_user,
                cap_host& out, std::string& why) {
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
    auto [p, ec] = std::from_chars(digits.data(),
                                   digits.data() + digits.size(), port);
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

/// A path relative to the release: no leading '/', no '..', safe names.
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

/// Reads a list of strings at `key` (absent: empty); false when not one.
bool string_list(const json& config, const std::string& key,
                 std::vector<std::string>& out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null())
    return true;
  if (!it->is_array())
    return false;
  for (auto& x : *it) {
    if (!x.is_string())
      return false;
    out.push_back(x.get<std::string>());
  }
  return true;
}

std::string utc_timestamp() {
  auto now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y%m%d%H%M%S", &tm);
  return buf;
}

/// "$D"/'<path>': a path under the deploy_to variable of every script.
std::string under(const std::string& dir, const std::string& path) {
  return "\"$D\"/" + shell_quote(dir + "/" + path);
}

/// Every script starts so: stop at the first failure, $D is deploy_to
/// (filled in per host by run_phase).
std::string script_start(const cap_plan&) {
  return "set -e\nD=\"$HEAVEN_DEPLOY_TO\"\n";
}

/// Each command in a subshell in `dir` (a shell expression), stopping at
/// the first that fails.
std::string commands_in(const std::string& dir,
                        const std::vector<std::string>& commands) {
  std::string out;
  for (auto& c : commands)
    out += "(cd " + dir + " && " + c + ")\n";
  return out;
}

} // namespace

bool capistrano_native_wanted(const std::string& payload_json) {
  auto config = config_of(payload_json);
  auto hosts = config.find("hosts");
  return hosts != config.end() && !hosts->is_null() && !hosts->empty();
}

std::string read_remote_hosts(const provider_job& job, cap_plan& plan,
                              bool need_deploy_to) {
  auto config = config_of(job.request.payload_json);
  auto& env = job.request.environment;
  auto hosts = hosts_for(config, env);
  if (!hosts.is_array() || hosts.empty())
    return "payload.config.hosts names no servers for " + env;
  std::string user = "deploy";
  if (auto u = config.find("user"); u != config.end() && u->is_string())
    user = u->get<std::string>();
  auto check_deploy_to = [](std::string& path) -> std::string {
    while (path.size() > 1 && path.back() == '/')
      path.pop_back();
    if (path.size() < 2 || path.front() != '/'
        || !relative_path(path.substr(1)))
      return "payload.config.deploy_to must be an absolute path without .. "
             "(got '" + path + "')";
    return {};
  };
  auto deploy_to = config.find("deploy_to");
  if (deploy_to != config.end() && deploy_to->is_string()) {
    plan.deploy_to = deploy_to->get<std::string>();
    if (auto why = check_deploy_to(plan.deploy_to); !why.empty())
      return why;
  }
  for (auto& h : hosts) {
    // "[user@]host[:port]", or {"host": "...", "deploy_to": "..."} for a
    // server whose layout lives elsewhere.
    auto text = h.is_string() ? h.get<std::string>()
                : h.is_object() && h.contains("host") && h["host"].is_string()
                  ? h["host"].get<std::string>()
                  : std::string{};
    if (text.empty())
      return "payload.config.hosts must hold \"deploy@host:22\" strings or "
             "{\"host\": ..., \"deploy_to\": ...} objects";
    cap_host host;
    std::string why;
    if (!parse_host(text, user, host, why))
      return why;
    host.deploy_to = plan.deploy_to;
    if (h.is_object() && h.contains("deploy_to")) {
      if (!h["deploy_to"].is_string())
        return "payload.config.hosts: deploy_to must be a path";
      host.deploy_to = h["deploy_to"].get<std::string>();
      if (auto bad = check_deploy_to(host.deploy_to); !bad.empty())
        return bad;
    }
    if (need_deploy_to && host.deploy_to.empty())
      return "payload.config.deploy_to is missing: where on the servers?";
    plan.hosts.push_back(std::move(host));
  }
  return {};
}

std::string read_cap_plan(const provider_job& job, cap_plan& plan) {
  if (auto why = read_remote_hosts(job, plan, true); !why.empty())
    return why;
  auto config = config_of(job.request.payload_json);
  plan.repo_url = job.request.clone_url;
  if (auto r = config.find("repo_url"); r != config.end() && r->is_string())
    plan.repo_url = r->get<std::string>();
  if (!valid_clone_url(plan.repo_url))
    return "invalid repo_url '" + url_without_credentials(plan.repo_url)
           + "'";
  if (auto k = config.find("keep_releases"); k != config.end()) {
    if (!k->is_number_integer() || k->get<int64_t>() < 1)
      return "payload.config.keep_releases must be a whole number of at "
             "least 1";
    plan.keep_releases = k->get<int64_t>();
  }
  for (auto key : {"linked_files", "linked_dirs"}) {
    auto& list = std::string{key} == "linked_files" ? plan.linked_files
                                                    : plan.linked_dirs;
    if (!string_list(config, key, list))
      return std::string{"payload.config."} + key + " must be a list of paths";
    for (auto& p : list)
      if (!relative_path(p))
        return std::string{"payload.config."} + key + ": '" + p
               + "' must be a relative path without ..";
  }
  if (!string_list(config, "before_publish", plan.before_publish)
      || !string_list(config, "after_publish", plan.after_publish))
    return "payload.config.before_publish and after_publish must be lists "
           "of commands";
  auto& task = job.request.task;
  if (task != "deploy" && task != "deploy:rollback") {
    auto name = task.substr(task.find(':') + 1);
    auto tasks = config.find("tasks");
    auto it = tasks != config.end() && tasks->is_object() ? tasks->find(name)
                                                          : config.end();
    if (tasks == config.end() || !tasks->is_object() || it == tasks->end()) {
      std::string known;
      if (tasks != config.end() && tasks->is_object())
        for (auto& [k, v] : tasks->items())
          known += (known.empty() ? "" : ", ") + ("deploy:" + k);
      return "unknown task " + task + " (payload.config.tasks names: "
             + (known.empty() ? "none" : known)
             + "; deploy and deploy:rollback are built in)";
    }
    if (!string_list(*tasks, name, plan.task_commands)
        || plan.task_commands.empty())
      return "payload.config.tasks." + name + " must be a list of commands";
  }
  return {};
}

std::string cap_check_script(const cap_plan& plan) {
  auto s = script_start(plan);
  auto repo = shell_quote(plan.repo_url);
  s += "git ls-remote " + repo + " HEAD >/dev/null || { echo \"git cannot "
       "reach the repository from $(hostname)\" >&2; exit 1; }\n";
  s += "mkdir -p \"$D/shared\" \"$D/releases\"\n";
  for (auto& d : plan.linked_dirs)
    s += "mkdir -p " + under("shared", d) + "\n";
  for (auto& f : plan.linked_files) {
    s += "mkdir -p \"$(dirname " + under("shared", f) + ")\"\n";
    s += "[ -f " + under("shared", f) + " ] || { echo \"linked file $D/shared/"
         + f + " does not exist on $(hostname)\" >&2; exit 1; }\n";
  }
  return s;
}

std::string cap_update_script(const cap_plan& plan, const std::string& sha,
                              const std::string& release) {
  auto s = script_start(plan);
  auto repo = shell_quote(plan.repo_url);
  // git:clone or git:update: a bare mirror, kept up to date.
  s += "if [ -f \"$D/repo/HEAD\" ]; then\n"
       "  cd \"$D/repo\" && git remote set-url origin " + repo
       + " && git remote update --prune\n"
         "else\n"
         "  git clone --mirror " + repo + " \"$D/repo\"\n"
         "fi\n"
         "cd \"$D/repo\"\n";
  // heaven deploys the deployment's exact sha, never what a branch moved to.
  s += "git cat-file -e " + sha + "^{commit} 2>/dev/null || { echo \"" + sha
       + " is not in the repository's mirror on $(hostname)\" >&2; exit 1; }\n";
  s += "R=\"$D/releases/" + release + "\"\n"
       "[ ! -e \"$R\" ] || { echo \"release " + release
       + " already exists on $(hostname)\" >&2; exit 1; }\n"
         "mkdir -p \"$R\"\n"
         "git archive " + sha + " | tar -x -f - -C \"$R\"\n"
         "echo " + sha + " > \"$R/REVISION\"\n";
  // deploy:symlink:linked_files, then linked_dirs, as Capistrano orders them.
  auto link = [&](const std::string& p, bool dir) {
    auto target = "\"$R\"/" + shell_quote(p);
    auto source = under("shared", p);
    s += "mkdir -p \"$(dirname " + target + ")\"\n";
    s += "if [ ! -L " + target + " ]; then ";
    s += dir ? "if [ -d " + target + " ]; then rm -rf " + target + "; fi; "
             : "if [ -f " + target + " ]; then rm " + target + "; fi; ";
    s += "ln -s " + source + " " + target + "; fi\n";
  };
  for (auto& f : plan.linked_files)
    link(f, false);
  for (auto& d : plan.linked_dirs)
    link(d, true);
  s += commands_in("\"$R\"", plan.before_publish);
  return s;
}

std::string cap_publish_script(const cap_plan& plan,
                               const std::string& release) {
  auto s = script_start(plan);
  // deploy:symlink:release: a new link renamed over `current` at once.
  s += "ln -s \"$D/releases/" + release + "\" \"$D/releases/current\"\n"
       "mv \"$D/releases/current\" \"$D\"\n";
  s += commands_in("\"$D/current\"", plan.after_publish);
  return s;
}

std::string cap_finish_script(const cap_plan& plan, const std::string& ref,
                              const std::string& sha,
                              const std::string& release,
                              const std::string& user) {
  auto s = script_start(plan);
  // deploy:cleanup: keep the newest keep_releases, never the current one.
  s += "cur=$(readlink \"$D/current\" || true)\n"
       "n=$(ls -1 \"$D/releases\" | grep -cE '^[0-9]{14}$' || true)\n"
       "if [ \"$n\" -ge " + std::to_string(plan.keep_releases) + " ]; then\n"
       "  ls -1 \"$D/releases\" | grep -E '^[0-9]{14}$' | sort | head -n -"
       + std::to_string(plan.keep_releases) + " | while read -r r; do\n"
         "    [ \"$D/releases/$r\" = \"$cur\" ] || rm -rf \"$D/releases/$r\"\n"
         "  done\n"
         "fi\n";
  auto line = "Branch " + ref + " (at " + sha + ") deployed as release "
              + release + " by " + user;
  s += "printf '%s\\n' " + shell_quote(line) + " >> \"$D/revisions.log\"\n";
  return s;
}

std::string cap_rollback_script(const cap_plan& plan,
                                const std::string& user) {
  auto s = script_start(plan);
  // deploy:rollback_release_path: the second newest by mtime.
  s += "set -- $(ls -t \"$D/releases\")\n"
       "if [ $# -lt 2 ]; then echo \"There are no older releases to "
       "rollback to\" >&2; exit 1; fi\n"
       "last=$1\nback=$2\n"
       "ln -s \"$D/releases/$back\" \"$D/releases/current\"\n"
       "mv \"$D/releases/current\" \"$D\"\n";
  s += commands_in("\"$D/current\"", plan.after_publish);
  // deploy:cleanup_rollback: archive and remove the release left behind.
  s += "if [ \"$(readlink \"$D/current\")\" != \"$D/releases/$last\" ]; then\n"
       "  tar -czf \"$D/rolled-back-release-$last.tar.gz\" "
       "\"$D/releases/$last\" 2>/dev/null\n"
       "  rm -rf \"$D/releases/$last\"\n"
       "fi\n";
  s += "printf '%s rolled back to release %s\\n' " + shell_quote(user)
       + " \"$back\" >> \"$D/revisions.log\"\n"
         "echo \"rolled back to release $back\"\n";
  return s;
}

std::string cap_task_script(const cap_plan& plan) {
  auto s = script_start(plan);
  s += "[ -d \"$D/current\" ] || { echo \"$D/current does not exist on "
       "$(hostname): deploy first\" >&2; exit 1; }\n";
  s += commands_in("\"$D/current\"", plan.task_commands);
  return s;
}

std::string on_host(const cap_host& host, const std::string& script) {
  return "HEAVEN_DEPLOY_TO=" + shell_quote(host.deploy_to) + "\n" + script;
}

namespace {

void say(self_ptr self, std::string text) {
  auto& st = self->state;
  if (st.deployment)
    self->send(caf::actor_cast<deployment_actor>(st.deployment),
               log_atom::value, log_line{stream::heaven, std::move(text)});
}

void finish(self_ptr self, std::string state, std::string description) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  if (st.deployment)
    self->send(caf::actor_cast<deployment_actor>(st.deployment),
               result_atom::value,
               provider_outcome{std::move(state), std::move(description)});
  for (auto& s : st.sessions)
    self->send(s, cancel_atom::value);
  st.sessions.clear();
  self->quit();
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
    finish(self, "success",
           what + std::to_string(st.plan.hosts.size()) + " host"
             + (st.plan.hosts.size() == 1 ? "" : "s"));
    return;
  }
  auto& [name, script] = st.phases[st.phase];
  say(self, "capistrano " + name + " on "
              + std::to_string(st.plan.hosts.size()) + " host"
              + (st.plan.hosts.size() == 1 ? "" : "s"));
  st.waiting = st.sessions.size();
  st.failure.clear();
  for (size_t i = 0; i < st.sessions.size(); ++i) {
    auto label = st.plan.hosts[i].label;
    auto phase_name = name;
    self->request(st.sessions[i], caf::infinite,
                  ssh_command{on_host(st.plan.hosts[i], script), 0})
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
            finish(self, "failure", st.failure);
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
            finish(self, "failure", st.failure);
        });
  }
}

} // namespace

std::string cap_phases(const provider_job& job, cap_plan& plan,
                       remote_phases& phases) {
  if (auto why = read_cap_plan(job, plan); !why.empty())
    return why;
  auto& req = job.request;
  auto release = utc_timestamp();
  auto user = req.actor.empty() ? std::string{"heaven"} : req.actor;
  if (req.task == "deploy") {
    phases = {
      {"check", cap_check_script(plan)},
      {"update (release " + release + ")",
       cap_update_script(plan, req.sha, release)},
      {"publish", cap_publish_script(plan, release)},
      {"finish", cap_finish_script(plan, req.ref, req.sha, release, user)},
    };
  } else if (req.task == "deploy:rollback") {
    phases = {{"rollback", cap_rollback_script(plan, user)}};
  } else {
    phases = {{req.task, cap_task_script(plan)}};
  }
  return {};
}

provider_actor::behavior_type remote_steps(
  provider_actor::stateful_pointer<capistrano_native_state> self,
  provider_job job, caf::actor deployment, capistrano_native_config cfg,
  remote_planner planner) {
  auto& st = self->state;
  st.job = std::move(job);
  st.deployment = std::move(deployment);
  auto why = planner(st.job, st.plan, st.phases);
  if (why.empty())
    why = private_key_problem(cfg.private_key);
  if (why.empty() && cfg.known_hosts.empty())
    why = "HEAVEN_KNOWN_HOSTS names no known_hosts file: heaven verifies "
          "every server's host key";
  if (!why.empty()) {
    finish(self, "error", why);
    return provider_actor::behavior_type::make_empty_behavior();
  }
  for (auto& h : st.plan.hosts) {
    ssh_options opts;
    opts.host = h.host;
    opts.port = h.port;
    opts.user = h.user;
    opts.private_key = cfg.private_key;
    opts.known_hosts = cfg.known_hosts;
    opts.connect_timeout_ms = cfg.connect_timeout_ms;
    opts.label = h.label;
    st.sessions.push_back(cfg.spawn(self->system(), std::move(opts),
                                    st.deployment));
  }
  run_phase(self);
  return {
    [self](cancel_atom) {
      say(self, "Closing the SSH sessions");
      finish(self, "failure", "cancelled");
    },
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

provider_actor::behavior_type capistrano_native(
  provider_actor::stateful_pointer<capistrano_native_state> self,
  provider_job job, caf::actor deployment, capistrano_native_config cfg) {
  return remote_steps(self, std::move(job), std::move(deployment),
                      std::move(cfg), cap_phases);
}

} // namespace heaven
