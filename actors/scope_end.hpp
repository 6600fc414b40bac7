/// Ending scopes (see actors/scope.hpp): finding every process of a set of
/// scopes, in their cgroups or through /proc, and ending them together.
/// Private to actors/scope*.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "actors/scope.hpp"
#include "actors/scope_records.hpp"

namespace heaven::scope_detail {

/// One scope being ended.
struct target {
  process_scope scope;
  /// The recorded process groups (sessions) and their leaders' start times.
  std::vector<std::pair<pid_t, uint64_t>> groups;
  /// Its cgroup's path relative to the mount, when it has a cgroup.
  std::string cgroup_rel;
  /// Every process signalled so far, by pid and start time.
  std::set<std::pair<pid_t, uint64_t>> termed;
  std::set<std::pair<pid_t, uint64_t>> killed;
  scope_ending result;

  bool in_cgroup() const {
    return !cgroup_rel.empty();
  }
};

/// Where a process of a scope may be: only below heaven (the child
/// subreaper keeps its orphans there), or anywhere (heaven is not a
/// subreaper, or the scope's heaven was killed).
enum class reach { descendants, anywhere };

/// Ends the targets together: SIGTERM, the grace period, SIGKILL, then
/// their cgroups and records go.
void end_targets(std::vector<target>& targets, std::chrono::milliseconds grace,
                 reach where);

/// Makes the target for `scope`: closes its record and reads it.
target make_target(process_scope scope);

/// Makes the target for `scope` from its record, closed already (`rec`:
/// what close_record or try_close_record returned).
target make_target(process_scope scope, record_data rec);

/// True when a fallback target can have no process at all: nothing was
/// ever started in it (no group recorded, no child registered).
bool never_started(const target& t);

/// Ends `t` (its record closed) at once when nothing was ever started in
/// it: no group recorded and no child registered, and no member in its
/// cgroup (without a cgroup: never_started). Then removes its cgroup and
/// record, as end_targets does when it finds nothing, and returns true;
/// otherwise changes nothing and returns false. Never waits (a cgroup that
/// never had a process is never busy).
bool end_if_empty(const target& t);

/// Where a scope's processes may be while heaven runs.
reach default_reach();

/// The targets for every scope recorded in `scopes_dir` or with a cgroup
/// under `cgroup_root`.
std::vector<target> recorded_targets(const std::string& scopes_dir,
                                     const std::string& cgroup_root,
                                     const std::string& instance);

} // namespace heaven::scope_detail
