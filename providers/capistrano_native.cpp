#include "providers/capistrano_native.hpp"

#include <cctype>
#include <ctime>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

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

std::optional<std::string> read_cap_plan(const provider_job& job,
                                         cap_plan& plan) {
  if (auto why = read_remote_hosts(job, true, plan.hosts))
    return why;
  auto& config = job.config;
  plan.repo_url = config.repo_url;
  if (!valid_clone_url(plan.repo_url))
    return "invalid repo_url '" + url_without_credentials(plan.repo_url) + "'";
  if (config.has_keep_releases) {
    if (config.keep_releases < 1)
      return "payload.config.keep_releases must be a whole number of at "
             "least 1";
    plan.keep_releases = config.keep_releases;
  }
  for (auto key : {"linked_files", "linked_dirs"}) {
    bool files = std::string{key} == "linked_files";
    auto& list = files ? config.linked_files : config.linked_dirs;
    if (!list.valid)
      return std::string{"payload.config."} + key + " must be a list of paths";
    for (auto& p : list.items)
      if (!relative_path(p))
        return std::string{"payload.config."} + key + ": '" + p
               + "' must be a relative path without ..";
    (files ? plan.linked_files : plan.linked_dirs) = list.items;
  }
  if (!config.before_publish.valid || !config.after_publish.valid)
    return "payload.config.before_publish and after_publish must be lists "
           "of commands";
  plan.before_publish = config.before_publish.items;
  plan.after_publish = config.after_publish.items;
  auto& task = job.request.task;
  if (task != "deploy" && task != "deploy:rollback") {
    auto name = task.substr(task.find(':') + 1);
    auto it = config.tasks.find(name);
    if (it == config.tasks.end()) {
      std::string known;
      for (auto& [k, v] : config.tasks)
        known += (known.empty() ? "" : ", ") + ("deploy:" + k);
      return "unknown task " + task + " (payload.config.tasks names: "
             + (known.empty() ? "none" : known)
             + "; deploy and deploy:rollback are built in)";
    }
    if (!it->second.valid || it->second.items.empty())
      return "payload.config.tasks." + name + " must be a list of commands";
    plan.task_commands = it->second.items;
  }
  if (task == "deploy:rollback" && config.has_rollback_release) {
    if (!release_name(config.rollback_release))
      return "payload.rollback_release must name a release in releases/ "
             "(letters, digits, '.', '_' and '-', not starting with '.' or "
             "'-')";
    plan.rollback_release = config.rollback_release;
  }
  return std::nullopt;
}

std::string cap_check_script(const cap_plan& plan) {
  auto s = script_start(plan);
  auto repo = shell_quote(plan.repo_url);
  s += "git ls-remote " + repo
       + " HEAD >/dev/null || { echo \"git cannot "
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
       "  cd \"$D/repo\" && git remote set-url origin "
       + repo
       + " && git remote update --prune\n"
         "else\n"
         "  git clone --mirror "
       + repo
       + " \"$D/repo\"\n"
         "fi\n"
         "cd \"$D/repo\"\n";
  // heaven deploys the deployment's exact sha, never what a branch moved to.
  s += "git cat-file -e " + sha + "^{commit} 2>/dev/null || { echo \"" + sha
       + " is not in the repository's mirror on $(hostname)\" >&2; exit 1; }\n";
  s += "R=\"$D/releases/" + release
       + "\"\n"
         "[ ! -e \"$R\" ] || { echo \"release "
       + release
       + " already exists on $(hostname)\" >&2; exit 1; }\n"
         "mkdir -p \"$R\"\n"
         "git archive "
       + sha
       + " | tar -x -f - -C \"$R\"\n"
         "echo "
       + sha + " > \"$R/REVISION\"\n";
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
  s += "ln -s \"$D/releases/" + release
       + "\" \"$D/releases/current\"\n"
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
       "if [ \"$n\" -ge "
       + std::to_string(plan.keep_releases)
       + " ]; then\n"
         "  ls -1 \"$D/releases\" | grep -E '^[0-9]{14}$' | sort | head -n -"
       + std::to_string(plan.keep_releases)
       + " | while read -r r; do\n"
         "    [ \"$D/releases/$r\" = \"$cur\" ] || rm -rf \"$D/releases/$r\"\n"
         "  done\n"
         "fi\n";
  auto line = "Branch " + ref + " (at " + sha + ") deployed as release "
              + release + " by " + user;
  s += "printf '%s\\n' " + shell_quote(line) + " >> \"$D/revisions.log\"\n";
  return s;
}

namespace {

/// deploy:rollback_release_path on one host: $1... are the releases as
/// `ls -xt` orders them (newest first), $last the newest and $back the
/// release to go to — the one before the newest, or `plan.rollback_release`
/// when it names one of them; else the script stops, changing nothing.
std::string rollback_choice(const cap_plan& plan) {
  std::string s = "set -- $(ls -t \"$D/releases\")\n"
                  "if [ $# -lt 2 ]; then echo \"There are no older releases "
                  "to rollback to\" >&2; exit 1; fi\n"
                  "last=$1\n";
  if (plan.rollback_release.empty())
    return s + "back=$2\n";
  // A plain release name (release_name), quoted all the same.
  s += "want=" + shell_quote(plan.rollback_release)
       + "\n"
         "back=\n"
         "for r in \"$@\"; do [ \"$r\" != \"$want\" ] || back=$r; done\n"
         "if [ -z \"$back\" ]; then\n"
         "  list=\n"
         "  for r in \"$@\"; do list=\"${list:+$list, }$r\"; done\n"
         "  echo \"Cannot rollback because release $want does not exist "
         "(releases, newest first: $list)\" >&2\n"
         "  exit 1\n"
         "fi\n";
  return s;
}

} // namespace

bool release_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name.front() == '.'
      || name.front() == '-')
    return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

std::string cap_rollback_check_script(const cap_plan& plan) {
  return script_start(plan) + rollback_choice(plan);
}

std::string cap_rollback_script(const cap_plan& plan, const std::string& user) {
  auto s = script_start(plan) + rollback_choice(plan);
  // deploy:symlink:release to the chosen one, then the publish hooks.
  s += "ln -s \"$D/releases/$back\" \"$D/releases/current\"\n"
       "mv \"$D/releases/current\" \"$D\"\n";
  s += commands_in("\"$D/current\"", plan.after_publish);
  // deploy:cleanup_rollback: archive and remove the newest release (by
  // mtime, looked at again as Capistrano does) unless it is current now.
  // Releases between it and a named older one stay.
  s += "set -- $(ls -t \"$D/releases\")\n"
       "last=$1\n"
       "if [ \"$(readlink \"$D/current\")\" != \"$D/releases/$last\" ]; then\n"
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

std::optional<std::string> cap_phases(const provider_job& job,
                                      std::vector<remote_host>& hosts,
                                      remote_phases& phases) {
  cap_plan plan;
  if (auto why = read_cap_plan(job, plan))
    return why;
  hosts = plan.hosts;
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
    // Every host finds its release before any host moves `current`, as
    // Capistrano's reverting runs before its publishing.
    phases = {{"rollback", cap_rollback_check_script(plan)},
              {"rollback publish", cap_rollback_script(plan, user)}};
  } else {
    phases = {{req.task, cap_task_script(plan)}};
  }
  return std::nullopt;
}

provider_actor::behavior_type
capistrano_native(provider_actor::stateful_pointer<remote_state> self,
                  provider_job job, deployment_actor deployment,
                  remote_config cfg) {
  return remote_steps(self, std::move(job), std::move(deployment),
                      std::move(cfg), cap_phases);
}

} // namespace heaven
