#include "providers/ansible.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/ssh.hpp"
#include "actors/workspace.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

constexpr auto hosts_file = "ansible/hosts";
constexpr auto site_file = "ansible/site.yml";
constexpr auto key_variable = "DEPLOYMENT_PRIVATE_KEY";

/// Writes `text` to a new 0600 file at `path` (one a killed run left there
/// is replaced); returns false with `why` set.
bool write_private_file(const std::string& path, const std::string& text,
                        std::string& why) {
  auto open_new = [&] {
    return ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  };
  int fd = open_new();
  if (fd < 0 && errno == EEXIST && ::unlink(path.c_str()) == 0)
    fd = open_new();
  if (fd < 0) {
    why = "cannot create the private key file next to the checkout: "
          + std::string{std::strerror(errno)};
    return false;
  }
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      why = "cannot write the private key file: "
            + std::string{std::strerror(errno)};
      ::close(fd);
      ::unlink(path.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return true;
}

/// True when the locale the child would get encodes UTF-8.
bool utf8_locale(const string_pairs& env) {
  for (auto name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    auto value = get_env(env, name);
    if (!value || value->empty())
      continue;
    std::string lower = *value;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return lower.find("utf-8") != std::string::npos
           || lower.find("utf8") != std::string::npos;
  }
  return false;
}

} // namespace

std::optional<std::string> ansible_plan(const provider_job& job,
                                        command_plan& plan) {
  std::string why;
  auto dir = checkout_dir(job, why);
  if (!why.empty())
    return why;
  std::error_code ec;
  for (auto file : {hosts_file, site_file})
    if (!fs::is_regular_file(fs::path{dir} / file, ec))
      return std::string{"no "} + file + " in the repository";
  plan.cwd = dir;
  plan.env = deployment_env(job);
  if (!get_env(plan.env, "ANSIBLE_HOST_KEY_CHECKING"))
    set_env(plan.env, "ANSIBLE_HOST_KEY_CHECKING", "True");
  if (!utf8_locale(plan.env))
    set_env(plan.env, "LC_ALL", "C.UTF-8");
  nlohmann::json vars = {{"heaven_deploy_sha", job.request.sha}};
  auto key = get_env(job.env, key_variable);
  if (key && !key->empty()) {
    // Next to the checkout, never in it: nothing in the repository's tree
    // (which a playbook may copy or print) holds the key. Whatever ends the
    // deployment removes it with the checkout, a restart after kill -9 too.
    auto path = deploy_key_path(dir);
    if (!write_private_file(path, unescape_private_key(*key), why))
      return why;
    plan.cleanup = [path] {
      std::error_code ec;
      fs::remove(path, ec);
    };
    vars["ansible_ssh_private_key_file"] = path;
    erase_env(plan.env, key_variable);
  }
  plan.argv = {"ansible-playbook", "-i",           hosts_file,
               site_file,          "--extra-vars", vars.dump()};
  plan.label = "ansible-playbook";
  plan.announce = std::string{"Running ansible-playbook -i "} + hosts_file + " "
                  + site_file;
  plan.success = deployed_with(job, "ansible-playbook");
  return std::nullopt;
}

provider_factory ansible_provider() {
  return [](caf::actor_system& sys, provider_job job,
            deployment_actor deployment) -> provider_handle {
    return sys.spawn(command_provider, std::move(job), std::move(deployment),
                     command_planner{ansible_plan});
  };
}

} // namespace heaven
