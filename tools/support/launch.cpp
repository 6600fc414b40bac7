#include "tools/support/launch.hpp"

#include <stdexcept>
#include <string_view>

#include <csignal>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace heaven::test {

namespace {

/// Reads `fd` until the line "heaven is ready on port N"; returns N, or 0
/// when the stream ends first.
uint16_t read_ready_port(int fd) {
  constexpr std::string_view ready = "heaven is ready on port ";
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (line.rfind(ready, 0) == 0)
      return static_cast<uint16_t>(std::stoi(line.substr(ready.size())));
    line.clear();
  }
  return 0;
}

} // namespace

launched_heaven
launch_heaven(const std::string& binary, const std::vector<std::string>& env,
              const std::filesystem::path& stderr_file, bool die_with_us) {
  // Everything the child needs is made before fork: it only execs.
  std::vector<std::string> env_copy = env;
  std::vector<char*> envp;
  for (auto& e : env_copy)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string bin = binary;
  char* argv[] = {bin.data(), const_cast<char*>("serve"), nullptr};
  auto err_path = stderr_file.string();
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  launched_heaven h;
  auto parent = getpid();
  h.pid = fork();
  if (h.pid < 0) {
    close(out[0]);
    close(out[1]);
    throw std::runtime_error("fork failed");
  }
  if (h.pid == 0) {
    // If we died between fork and prctl, the signal would never come.
    if (die_with_us
        && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent))
      _exit(127);
    dup2(out[1], 1);
    dup2(open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
    // Nothing else of ours goes along: a stand-in's listening socket (or
    // Asio's descriptors) need not be close-on-exec.
    close_range(3, ~0U, 0);
    execve(bin.c_str(), argv, envp.data());
    _exit(127);
  }
  close(out[1]);
  h.port = read_ready_port(out[0]);
  h.stdout_fd = out[0];
  return h;
}

} // namespace heaven::test
