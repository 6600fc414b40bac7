/// Running child processes in their own process group, streaming their
/// output line by line: run_process blocks (use it only from detached
/// actors); spawn_process runs them from heaven's process reactor.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include <caf/fwd.hpp>

#include "base/line_splitter.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

struct child_options;

/// Starts `spec` in a new session/process group (pgid = pid), with stdin
/// from /dev/null, in `spec.scope` (see start_child in actors/children.hpp:
/// its cgroup joined before exec, recorded, marked with the scope's
/// cookie), with SIGKILL as its parent death signal: the calling thread
/// waits here until the child is reaped, so the signal fires only when
/// heaven dies. Sends `started_atom, pid` to `watcher` right after the
/// start, then each stdout/stderr line as `log_atom, log_line` to `lines`
/// as it comes (stdout and stderr read together, never deadlocking on
/// either), and returns how it ended once it has exited and both pipes are
/// closed. Either handle may be invalid. A scope that has ended starts
/// nothing: `error` then says so.
exit_info run_process(const process_spec& spec, const line_sink& lines,
                      const process_watcher& watcher);

/// Like the other run_process, but hands each output line to `on_line` (on
/// the calling thread) instead of sending it to an actor.
exit_info run_process(const process_spec& spec,
                      const std::function<void(log_line)>& on_line,
                      const process_watcher& watcher);

/// Runs `work()` once in an actor of its own that then quits: detached (a
/// thread of its own, for blocking work) unless `detach` is false, as in
/// deterministic tests.
void run_blocking(caf::actor_system& sys, std::function<void()> work,
                  bool detach = true);

/// Runs `spec` from heaven's process reactor: one thread, started on first
/// use and living as long as heaven, that starts every such child (so the
/// parent death signal fires only when heaven dies) and reads all their
/// output with epoll; a running child costs its descriptors and a small
/// record, not a thread. The child starts as in run_process. `owner` hears
/// `started_atom, pid` right after the start and `exited_atom, exit_info`
/// once the child has exited, both pipes are closed and every batch of its
/// output is answered. Its lines go to `lines` in order as
/// `log_atom, std::vector<log_line>` requests (see output_sink): the
/// reactor stops reading the child while more than output_window bytes of
/// its lines are unanswered, so a child writing without pause runs at the
/// speed of its log. Either handle may be invalid (output is then dropped).
void spawn_process(caf::actor_system& sys, process_spec spec, output_sink lines,
                   process_owner owner);

/// How many bytes of a child's lines spawn_process lets be unanswered.
inline constexpr std::size_t output_window = 256 * 1024;

/// How many bytes of lines a batch of spawn_process holds at most (roughly:
/// a batch closes at the first line that reaches this).
inline constexpr std::size_t output_batch = 64 * 1024;

/// Sends `sig` to the process group `pgid` (ignoring a group already gone).
void kill_group(int32_t pgid, int sig);

/// True while any process of group `pgid` exists.
bool group_alive(int32_t pgid);

namespace process_detail {

/// How long run_process and the reactor keep reading after the child was
/// reaped when a grandchild still holds the pipes open: output that is
/// already written arrives well within this, and a daemon left behind must
/// not hold the deployment.
inline constexpr auto drain_quiet = std::chrono::milliseconds(250);
inline constexpr auto drain_max = std::chrono::seconds(2);

/// Checks `spec` (a command, found on the child's PATH; its directory) and
/// fills in what start_child needs of it but the descriptors. False with
/// `error` (the text of exit_info::error) when it cannot start.
bool child_options_for(const process_spec& spec, child_options& opts,
                       std::string& error);

/// Splits one of a child's streams into log lines.
struct stream_lines {
  stream source;
  line_splitter lines;

  template <class F>
  void feed(const char* data, size_t n, F&& emit) {
    lines.feed(std::string_view{data, n}, [&](std::string_view text) {
      emit(log_line{source, std::string{text}});
    });
  }

  template <class F>
  void finish(F&& emit) {
    lines.finish([&](std::string_view text) {
      emit(log_line{source, std::string{text}});
    });
  }
};

/// How a wait status ended a child.
exit_info decode(int status);

} // namespace process_detail

} // namespace heaven
