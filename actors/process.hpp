/// Running child processes in their own process group, streaming their
/// output line by line. Blocking: use only from detached actors.
#pragma once

#include <cstddef>
#include <functional>

#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

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

/// Spawns an actor that runs `spec` with run_process (`owner` hears
/// `started`) and then sends `exited_atom, exit_info` to `owner`. Detached
/// unless `detach` is false.
void spawn_process(caf::actor_system& sys, process_spec spec, line_sink lines,
                   process_owner owner, bool detach = true);

/// Sends `sig` to the process group `pgid` (ignoring a group already gone).
void kill_group(int32_t pgid, int sig);

/// True while any process of group `pgid` exists.
bool group_alive(int32_t pgid);

} // namespace heaven
