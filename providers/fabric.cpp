#include "providers/fabric.hpp"

#include <filesystem>
#include <system_error>

#include "base/text.hpp"
#include "base/validate.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// True when the checkout at `dir` has a fabfile `fab` would load.
bool has_fabfile(const std::string& dir) {
  std::error_code ec;
  fs::path root{dir};
  return fs::is_regular_file(root / "fabfile.py", ec)
         || fs::is_regular_file(root / "fabfile" / "__init__.py", ec);
}

/// The value substituted for placeholder `name`, or nullptr when unknown.
const std::string* placeholder(std::string_view name,
                               const deployment_request& req) {
  if (name == "environment")
    return &req.environment;
  if (name == "task")
    return &req.task;
  if (name == "ref")
    return &req.ref;
  if (name == "sha")
    return &req.sha;
  return nullptr;
}

} // namespace

std::string fabric_task(std::string_view task) {
  std::string result{task};
  for (auto& c : result)
    if (c == ':')
      c = '.';
    else if (c == '_')
      c = '-';
  return result;
}

std::string expand_command_format(std::string_view format,
                                  const deployment_request& req,
                                  std::string& why) {
  std::string result;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c != '%' || i + 1 == format.size()) {
      result += c;
    } else if (format[i + 1] == '%') {
      result += '%';
      ++i;
    } else if (format[i + 1] == '{') {
      auto close = format.find('}', i + 2);
      if (close == std::string_view::npos) {
        why = "DEPLOY_COMMAND_FORMAT has an unclosed %{";
        return {};
      }
      auto name = format.substr(i + 2, close - i - 2);
      auto value = placeholder(name, req);
      if (value == nullptr) {
        why = "DEPLOY_COMMAND_FORMAT names an unknown placeholder %{"
              + std::string{name} + "} (known: environment, task, ref, sha)";
        return {};
      }
      result += shell_quote(*value);
      i = close;
    } else {
      result += c;
    }
  }
  return result;
}

std::optional<std::string> fabfile_plan(const provider_job& job,
                                        command_plan& plan) {
  auto& req = job.request;
  std::string why;
  auto dir = checkout_dir(job, why);
  if (!why.empty())
    return why;
  if (!has_fabfile(dir))
    return "no fabfile.py (or fabfile/ package) in the repository and "
           "payload.config names no hosts";
  plan.cwd = dir;
  plan.env = deployment_env(job);
  plan.success = deployed_with(job, "fab");
  auto format = get_env(job.env, "DEPLOY_COMMAND_FORMAT");
  if (format && !format->empty()) {
    auto command = expand_command_format(*format, req, why);
    if (!why.empty())
      return why;
    plan.argv = {"/bin/sh", "-c", command};
    // The operator's command may hold what the log must not: not shown.
    plan.label = "DEPLOY_COMMAND_FORMAT command";
    plan.announce = "Running the DEPLOY_COMMAND_FORMAT command";
    return use_deploy_key_agent(plan);
  }
  if (!valid_task(req.task))
    return "task " + req.task + " is not a deploy task";
  auto task = fabric_task(req.task);
  plan.argv = {"fab", task, "--branch-name=" + req.ref};
  plan.label = "fab " + task;
  plan.announce = "Running fab " + task + " --branch-name=" + req.ref;
  return use_deploy_key_agent(plan);
}

std::optional<std::string> fabric_native_phases(const provider_job& job,
                                                std::vector<remote_host>& hosts,
                                                remote_phases& phases) {
  if (auto why = read_remote_hosts(job, false, hosts))
    return why;
  auto& req = job.request;
  auto& tasks = job.config.tasks;
  auto name = req.task == "deploy" ? req.task
                                   : req.task.substr(req.task.find(':') + 1);
  auto it = tasks.find(name);
  if (it == tasks.end()) {
    std::string known;
    for (auto& [k, v] : tasks)
      known += (known.empty() ? "" : ", ") + k;
    return "unknown fabric task " + name + " (payload.config.tasks names: "
           + (known.empty() ? "none" : known) + ")";
  }
  auto& list = it->second;
  if (list.items.empty())
    return "payload.config.tasks." + name + " must be a list of commands";
  // The deployment's values as quoted words: %{ref} etc. in a command, and
  // the variables the shell provider sets.
  std::string script = "set -e\n";
  script += "BRANCH=" + shell_quote(req.ref) + "; SHA=" + shell_quote(req.sha)
            + "; DEPLOY_ENV=" + shell_quote(req.environment)
            + "; DEPLOY_TASK=" + shell_quote(req.task) + "\n"
            + "export BRANCH SHA DEPLOY_ENV DEPLOY_TASK\n";
  for (auto& c : list.items) {
    std::string why;
    auto command = expand_command_format(c, req, why);
    if (!why.empty())
      return "payload.config.tasks." + name + ": " + why;
    script += "(" + command + ")\n";
  }
  // The entries after a command that is no string.
  if (!list.valid)
    return "payload.config.tasks." + name + " must be a list of commands";
  phases = {{"fabric " + name, script}};
  return std::nullopt;
}

provider_factory fabric_provider(remote_config native) {
  return native_or_command_provider(std::move(native), fabric_native_phases,
                                    fabfile_plan);
}

} // namespace heaven
