#include "actors/process.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "messages/atoms.hpp"
#include "messages/errors.hpp"

namespace heaven {

namespace {

/// Closes a file descriptor once.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int x) : fd(x) {
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    reset();
  }
  void reset(int x = -1) {
    if (fd >= 0)
      ::close(fd);
    fd = x;
  }
};

std::string lookup(const string_pairs& env, const std::string& key) {
  for (auto& [k, v] : env)
    if (k == key)
      return v;
  return {};
}

/// Finds argv[0] the way execvp would, but on the child's PATH (not ours).
/// Returns the path or why there is none (ec::cannot_start).
caf::expected<std::string> resolve(const std::string& name,
                                   const string_pairs& env) {
  if (name.empty())
    return make_error(ec::cannot_start, "cannot run an empty command");
  if (name.find('/') != std::string::npos)
    return name;
  auto path = lookup(env, "PATH");
  if (path.empty())
    path = "/usr/local/bin:/usr/bin:/bin";
  bool denied = false;
  size_t pos = 0;
  while (pos <= path.size()) {
    auto end = path.find(':', pos);
    if (end == std::string::npos)
      end = path.size();
    auto dir = path.substr(pos, end - pos);
    if (dir.empty())
      dir = ".";
    auto candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0)
        return candidate;
      denied = true;
    }
    pos = end + 1;
  }
  return make_error(ec::cannot_start,
                    "cannot run " + name + ": "
                      + (denied ? "permission denied" : "command not found"));
}

} // namespace

namespace process_detail {

bool child_options_for(const process_spec& spec, child_options& opts,
                       std::string& error) {
  if (spec.argv.empty()) {
    error = "cannot run an empty command";
    return false;
  }
  auto exe = resolve(spec.argv[0], spec.env);
  if (!exe) {
    error = describe(exe.error());
    return false;
  }
  if (!spec.cwd.empty()) {
    struct stat st;
    if (::stat(spec.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      error = "cannot run " + spec.argv[0] + ": no directory " + spec.cwd;
      return false;
    }
  }
  opts.exe = *exe;
  opts.argv = spec.argv;
  opts.env = spec.env;
  opts.cwd = spec.cwd;
  opts.scope = spec.scope;
  return true;
}

exit_info decode(int status) {
  exit_info result;
  if (status == -1) // Reaped outside the registry: the status is lost.
    return result;
  if (WIFEXITED(status))
    result.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.signal = WTERMSIG(status);
  return result;
}

} // namespace process_detail

using namespace process_detail;

exit_info run_process(const process_spec& spec,
                      const std::function<void(log_line)>& on_line,
                      const process_watcher& watcher) {
  exit_info result;
  child_options opts;
  if (!child_options_for(spec, opts, result.error))
    return result;
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    result.error = std::string{"pipe: "} + std::strerror(errno);
    return result;
  }
  fd_guard out_r{out[0]}, out_w{out[1]};
  if (::pipe2(err, O_CLOEXEC) != 0) {
    result.error = std::string{"pipe: "} + std::strerror(errno);
    return result;
  }
  fd_guard err_r{err[0]}, err_w{err[1]};
  opts.stdio[1] = out[1];
  opts.stdio[2] = err[1];
  // The runner thread (this one) waits for the child until it is reaped:
  // the death signal, tied to the thread, fires only when heaven dies.
  opts.death_signal = SIGKILL;
  auto child = start_child(opts, result.error);
  if (!child) {
    spdlog::warn("heaven could not start {}: {}", spec.argv[0], result.error);
    result.error = "cannot run " + spec.argv[0] + ": " + result.error;
    return result;
  }
  auto pid = child->pid();
  if (watcher)
    caf::anon_send(watcher, started_atom::value, static_cast<int32_t>(pid));
  out_w.reset();
  err_w.reset();
  ::fcntl(out_r.fd, F_SETFL, ::fcntl(out_r.fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_r.fd, F_SETFL, ::fcntl(err_r.fd, F_GETFL) | O_NONBLOCK);
  int exit_fd = child->exit_fd();
  stream_lines splitters[2] = {{stream::out, {}}, {stream::err, {}}};
  fd_guard* pipes[2] = {&out_r, &err_r};
  auto emit = [&](log_line line) {
    if (on_line)
      on_line(std::move(line));
  };
  bool reaped = false;
  int status = 0;
  auto try_reap = [&] {
    if (reaped)
      return;
    if (auto s = child->try_wait()) {
      status = *s;
      reaped = true;
    }
  };
  using clock = std::chrono::steady_clock;
  clock::time_point reaped_at;
  clock::time_point last_data = clock::now();
  std::vector<char> chunk(64 * 1024);
  for (;;) {
    if (pipes[0]->fd < 0 && pipes[1]->fd < 0)
      break;
    if (reaped) {
      auto now = clock::now();
      if (now - last_data >= drain_quiet || now - reaped_at >= drain_max)
        break;
    }
    pollfd fds[3];
    int n = 0;
    int index[3];
    for (int i = 0; i < 2; ++i)
      if (pipes[i]->fd >= 0) {
        fds[n] = pollfd{pipes[i]->fd, POLLIN, 0};
        index[n++] = i;
      }
    if (!reaped && exit_fd >= 0) {
      fds[n] = pollfd{exit_fd, POLLIN, 0};
      index[n++] = 2;
    }
    // Without a pidfd (old kernels) the child is checked on a short tick.
    int timeout = reaped ? 50 : (exit_fd >= 0 ? -1 : 100);
    auto ready = ::poll(fds, n, timeout);
    if (ready < 0) {
      if (errno == EINTR)
        continue;
      spdlog::error("poll failed while running {}: {}", spec.argv[0],
                    std::strerror(errno));
      break;
    }
    for (int j = 0; j < n; ++j) {
      if (fds[j].revents == 0)
        continue;
      if (index[j] == 2) {
        try_reap();
        if (reaped)
          reaped_at = last_data = clock::now();
        continue;
      }
      auto i = index[j];
      for (;;) {
        auto got = ::read(pipes[i]->fd, chunk.data(), chunk.size());
        if (got > 0) {
          last_data = clock::now();
          splitters[i].feed(chunk.data(), static_cast<size_t>(got), emit);
          // Give the other pipe its turn: fairness keeps both flowing.
          if (static_cast<size_t>(got) == chunk.size())
            break;
          continue;
        }
        if (got == 0) {
          pipes[i]->reset();
        } else if (errno == EINTR) {
          continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          pipes[i]->reset();
        }
        break;
      }
    }
    if (exit_fd < 0 && !reaped) {
      try_reap();
      if (reaped)
        reaped_at = last_data = clock::now();
    }
  }
  for (auto& s : splitters)
    s.finish(emit);
  if (!reaped)
    status = child->wait();
  return decode(status);
}

exit_info run_process(const process_spec& spec, const line_sink& lines,
                      const process_watcher& watcher) {
  std::function<void(log_line)> on_line;
  if (lines)
    on_line = [&](log_line line) {
      caf::anon_send(lines, log_atom::value, std::move(line));
    };
  return run_process(spec, on_line, watcher);
}

void run_blocking(caf::actor_system& sys, std::function<void()> work,
                  bool detach) {
  auto fn = [work = std::move(work)](caf::event_based_actor* self) {
    work();
    self->quit();
    return caf::behavior{};
  };
  if (detach)
    sys.spawn<caf::detached>(std::move(fn));
  else
    sys.spawn(std::move(fn));
}

void kill_group(int32_t pgid, int sig) {
  if (pgid <= 0)
    return;
  if (::kill(-pgid, sig) != 0 && errno != ESRCH)
    spdlog::warn("could not send signal {} to process group {}: {}", sig, pgid,
                 std::strerror(errno));
}

bool group_alive(int32_t pgid) {
  return pgid > 0 && ::kill(-pgid, 0) == 0;
}

} // namespace heaven
