#include "providers/capistrano.hpp"

#include <cctype>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "base/validate.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// The names `cap` looks for (it is Rake with Capfile instead of Rakefile).
constexpr std::string_view capfile_names[] = {"Capfile", "capfile",
                                              "Capfile.rb", "capfile.rb"};

} // namespace

bool has_capfile(const std::string& dir) {
  std::error_code ec;
  for (auto name : capfile_names)
    if (fs::is_regular_file(fs::path{dir} / name, ec))
      return true;
  return false;
}

bool safe_stage(std::string_view text) {
  if (text.empty() || text.front() == '-')
    return false;
  for (unsigned char c : text)
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-')
      return false;
  return true;
}

std::optional<std::string> capfile_plan(const provider_job& job,
                                        command_plan& plan) {
  auto& req = job.request;
  if (job.config.names_servers)
    return "payload.config.servers is not a capistrano setting of heaven: "
           "name the servers in payload.config.hosts";
  std::string why;
  auto dir = checkout_dir(job, why);
  if (!why.empty())
    return why;
  if (!has_capfile(dir))
    return "no Capfile in the repository and payload.config names no hosts";
  if (!safe_stage(req.environment))
    return "environment " + req.environment
           + " is not a Capistrano stage name ([A-Za-z0-9_.-]+)";
  if (!valid_task(req.task))
    return "task " + req.task + " is not a deploy task";
  plan.argv = {"cap", req.environment, req.task};
  plan.cwd = dir;
  plan.env = deployment_env(job);
  plan.label = "cap " + req.environment + " " + req.task;
  plan.announce = "Running " + plan.label;
  plan.success = deployed_with(job, "cap");
  return use_deploy_key_agent(plan);
}

provider_factory capistrano_provider(remote_config native) {
  return native_or_command_provider(std::move(native), cap_phases,
                                    capfile_plan);
}

} // namespace heaven
