/// Scopes: everything heaven starts for one deployment, found again and
/// ended with it. Blocking: use only from detached actors (or at start and
/// stop, before and after the actors run).
///
/// A scope is a cgroup v2 of its own where the machine gives heaven one
/// (`<heaven's cgroup>/heaven-<instance>/d<id>`, joined by every process
/// before it execs, ended with `cgroup.kill`), and otherwise what the child
/// subreaper can track: the process groups and sessions started in it
/// (recorded with their start times in `<data>/scopes/<id>`), the processes
/// carrying its HEAVEN_SCOPE cookie, and every descendant of those.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <caf/fwd.hpp>

#include "messages/types.hpp"

namespace heaven {

/// How ending a scope went.
struct scope_ending {
  /// The processes it had to end: alive (not zombies) when it looked.
  std::size_t ended = 0;
  /// Of those, how many outlived the grace period and got SIGKILL.
  std::size_t killed = 0;
  /// How many were still there when it gave up waiting after SIGKILL
  /// (unkillable: stuck in the kernel). Their scope stays recorded.
  std::size_t left = 0;
};

/// The scopes of one heaven, that is of one data directory: several heavens
/// on one machine (each with its own data directory) never touch each
/// other's processes.
class process_scopes {
public:
  /// Scopes for `data_dir`. With `use_cgroups` (HEAVEN_CGROUPS=auto) they
  /// are cgroups when heaven can make them and move a process into one
  /// (checked here, once); otherwise, or with `use_cgroups` false
  /// (HEAVEN_CGROUPS=off), the fallback.
  explicit process_scopes(const std::string& data_dir, bool use_cgroups = true);

  /// A short, stable name of the data directory (a hash of its canonical
  /// path): the scopes' cookies and cgroups carry it.
  const std::string& instance() const {
    return instance_;
  }

  /// True when scopes are cgroups.
  bool uses_cgroups() const {
    return !cgroup_root_.empty();
  }

  /// The cgroup the scopes' cgroups are made in
  /// (`<mount><heaven's cgroup>/heaven-<instance>`), or "".
  const std::string& cgroup_root() const {
    return cgroup_root_;
  }

  /// Why scopes are not cgroups, for the log ("" when they are).
  const std::string& without_cgroups() const {
    return without_cgroups_;
  }

  /// Opens deployment `id`'s scope: its record, and its cgroup when scopes
  /// are cgroups (a cgroup that cannot be made leaves this scope to the
  /// fallback, with a warning). Pass the result in process_spec,
  /// provider_job and workspace_plan; end it with end_scope.
  process_scope open(int64_t id) const;

  /// Ends everything a previous heaven of this data directory left running
  /// (killed, so it could not end its scopes): its recorded scopes, the
  /// cgroups under heaven-<instance>, and the processes carrying its
  /// cookie — recorded process groups only after a check against pid reuse.
  /// Returns how each deployment's scope ended, by deployment id (also
  /// scopes that had nothing left: `ended` is then 0). Call at start,
  /// before opening any scope.
  std::map<int64_t, scope_ending>
  end_leftovers(std::chrono::milliseconds grace) const;

  /// Ends every scope of this data directory still open (heaven stops:
  /// nothing it started may outlive it, not even what a timeout spared),
  /// all at once, within one grace period. Returns the totals.
  scope_ending end_all(std::chrono::milliseconds grace) const;

private:
  std::string data_dir_;
  std::string scopes_dir_;
  std::string instance_;
  std::string cgroup_root_;
  std::string without_cgroups_;
};

/// Ends `scope`: SIGTERM (and SIGCONT) to every process in it, waits up to
/// `grace` (returning as soon as none is left; processes it starts
/// meanwhile get SIGTERM too), SIGKILL (`cgroup.kill`) to what is left,
/// waits until they are gone (bounded), then removes the cgroup and the
/// record — after which nothing more can start in the scope. Cheap when the
/// scope is empty. Ending a scope twice, or a default (empty) scope, does
/// nothing the second time.
scope_ending end_scope(const process_scope& scope,
                       std::chrono::milliseconds grace);

/// Ends `scope` as end_scope does and then calls `done` with how it went,
/// never with a thread per scope: a scope nothing was ever started in (an
/// API deployment's) ends here and now, and `done` runs before this
/// returns; any other goes to a FIFO that at most scope_ending_threads()
/// detached actors (threads) of `sys` work through, and `done` runs on
/// one of them. The actor system's end waits for every ending queued.
/// With `detach` false (deterministic tests) the ending runs in an actor
/// of its own on the scheduler instead.
void end_scope_async(caf::actor_system& sys, process_scope scope,
                     std::chrono::milliseconds grace,
                     std::function<void(scope_ending)> done,
                     bool detach = true);

/// How many threads end scopes at most at once: max(2, cores).
std::size_t scope_ending_threads();

} // namespace heaven
