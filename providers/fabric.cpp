#include "providers/fabric.hpp"

#include <filesystem>
#include <system_error>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/validate.hpp"

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
              + std::string{name}
              + "} (known: environment, task, ref, sha)";
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

std::string fabfile_plan(const provider_job& job, command_plan& plan) {
  auto& req = job.request;
  // Native mode (named command lists run over the ssh actor on every host)
  // will take these deployments; until it exists they are refused.
  if (config_names(job, "hosts"))
    return "fabric's native mode (payload.config.hosts) is not available in "
           "this heaven yet: remove hosts to use the repository's fabfile";
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
    return {};
  }
  if (!valid_task(req.task))
    return "task " + req.task + " is not a deploy task";
  auto task = fabric_task(req.task);
  plan.argv = {"fab", task, "--branch-name=" + req.ref};
  plan.label = "fab " + task;
  plan.announce = "Running fab " + task + " --branch-name=" + req.ref;
  return {};
}

provider_factory fabric_provider() {
  return [](caf::actor_system& sys, provider_job job,
            caf::actor deployment) -> provider_actor {
    // The native mode's actor will be chosen here when payload.config.hosts
    // names the hosts; for now fabfile_plan refuses such a deployment.
    return sys.spawn(command_provider, std::move(job), std::move(deployment),
                     command_planner{fabfile_plan});
  };
}

} // namespace heaven
