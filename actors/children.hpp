/// Every child process heaven starts, and the one reaper of the orphans
/// re-parented to it. Blocking: use only from detached actors.
///
/// heaven waits for a child only through the registry here: a child is
/// registered before anything can reap it, and every reap happens under the
/// registry's lock, so the reaper (which reaps whatever exits: orphans that
/// left their deployment's process group and were re-parented to heaven,
/// the child subreaper) never takes an exit status from the code waiting
/// for it — it hands the status over instead.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "messages/types.hpp"

namespace heaven {

/// How to start one child process.
struct child_options {
  /// The program's path (no PATH search here).
  std::string exe;
  std::vector<std::string> argv;
  /// The complete environment; HEAVEN_SCOPE=<scope.cookie> is added when
  /// the scope has a cookie.
  string_pairs env;
  /// Where it starts ("" keeps heaven's working directory).
  std::string cwd;
  /// The descriptors that become its stdin, stdout and stderr (-1:
  /// /dev/null). heaven's own stay open; the child gets none of them.
  int stdio[3] = {-1, -1, -1};
  /// The signal it gets when the heaven thread that started it ends —
  /// heaven dying, even by SIGKILL, included (0: none).
  int death_signal = SIGKILL;
  /// The deployment it belongs to.
  process_scope scope;
};

/// A child heaven started and waits for. Only its owner learns how it
/// ended; dropping it unreaped leaves it to the reaper.
class child_process {
public:
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();

  pid_t pid() const {
    return pid_;
  }

  /// Its start time in clock ticks since boot (field 22 of /proc/pid/stat):
  /// with the pid, it names this process and no later one.
  uint64_t start_time() const;

  /// A descriptor that becomes readable once the child has exited (a
  /// pidfd), or -1 where the kernel has none: then poll try_wait.
  int exit_fd() const {
    return pidfd_;
  }

  /// Its wait status once it has ended (reaping it if nobody has), else
  /// nullopt. Never blocks. -1 when the status is lost: something outside
  /// this registry reaped the child.
  std::optional<int> try_wait();

  /// Waits until it ended and returns its wait status (see try_wait).
  int wait();

  /// Waits at most `timeout` for its end.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);

  struct slot;
  child_process(pid_t pid, int pidfd, std::shared_ptr<slot> s);

private:
  pid_t pid_;
  int pidfd_;
  std::shared_ptr<slot> slot_;
};

/// Starts a child: in a session (and process group) of its own, every
/// signal at its default and unblocked, only the descriptors of `stdio`,
/// the death signal set and its parent checked before it runs anything, in
/// `opts.scope` — its cgroup joined before exec, its pid and start time
/// added to the scope's record. Returns nullptr and sets `error` (e.g. "No
/// such file or directory", or that the scope has ended: nothing more
/// starts in an ended scope) when it could not start.
std::unique_ptr<child_process> start_child(const child_options& opts,
                                           std::string& error);

/// Makes heaven the child subreaper of everything it starts and starts the
/// thread that reaps what is re-parented to it. Call once at start; calling
/// it again does nothing. Afterwards nothing in the process may wait for a
/// child except through child_process.
void start_reaper();

/// The live (not yet reaped) children started in the scope `cookie`, with
/// their start times.
std::vector<std::pair<pid_t, uint64_t>>
children_in_scope(const std::string& cookie);

/// A child heaven started and has not reaped yet.
struct registered_child {
  pid_t pid = 0;
  uint64_t start = 0;
  /// Its scope's cookie ("" when unscoped).
  std::string cookie;
};

/// Every child heaven started and has not reaped yet.
std::vector<registered_child> registered_children();

/// How many orphans the reaper has reaped so far.
uint64_t orphans_reaped();

/// The start time of `pid` (see child_process::start_time), or 0 when it
/// does not exist.
uint64_t process_start_time(pid_t pid);

/// A pidfd for `pid` (pidfd_open(2)), or -1 with errno set (ENOSYS on old
/// kernels).
int open_pidfd(pid_t pid);

} // namespace heaven
