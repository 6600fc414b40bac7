// Fuzz target: the config file (NAME=value lines) and the environment,
// through load_settings, then secret_values and child_environment. The
// input is the file's text, then a NUL byte and NAME=value lines that are
// the environment.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include <sys/mman.h>
#include <unistd.h>

#include "base/config.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

namespace {

/// The config file: a memory file rewritten for each input.
int config_fd() {
  static int fd = memfd_create("heaven-fuzz.conf", 0);
  return fd;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = text(data, size);
  auto file = take_until(in, '\0');
  string_pairs env;
  while (!in.empty()) {
    auto line = take_until(in, '\n');
    auto eq = line.find('=');
    if (eq != std::string_view::npos)
      env.emplace_back(std::string{line.substr(0, eq)},
                       std::string{line.substr(eq + 1)});
  }
  int fd = config_fd();
  require(fd >= 0, "memfd_create failed");
  require(ftruncate(fd, 0) == 0
            && pwrite(fd, file.data(), file.size(), 0)
                 == static_cast<ssize_t>(file.size()),
          "cannot write the config file");
  auto path = "/proc/self/fd/" + std::to_string(fd);
  auto loaded = load_settings({"--config", path}, env);
  auto* s = std::get_if<settings>(&loaded);
  if (!s) {
    require(!std::get<std::string>(loaded).empty(),
            "load_settings failed without saying why");
    return 0;
  }
  require(s->public_url.empty() || s->public_url.back() != '/',
          "public_url kept a trailing slash");
  require(s->deployment_timeout >= 1 && s->poll_interval_ms >= 1
            && s->status_retries >= 1,
          "a setting that must be positive is not");
  for (auto& secret : secret_values(*s, env))
    require(!secret.empty(), "secret_values holds an empty secret");
  for (auto& [name, value] : child_environment(*s, env))
    require(name != "GITHUB_WEBHOOK_SECRET",
            "the webhook secret reached a deployment's environment");
  return 0;
}
