/// Scopes' cgroup v2 backend (see actors/scope.hpp): finding the mount and
/// a process's cgroup, making heaven's cgroup root, listing and removing a
/// scope's cgroup. Private to actors/scope*.cpp.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace heaven::scope_detail {

/// Undoes mountinfo's octal escapes (a space is "\040").
std::string unescape_mount(const std::string& text);

/// Where cgroup v2 is mounted and which cgroup that mount shows as its root.
struct cgroup2_mount {
  std::string point;
  std::string root;
};

/// The cgroup v2 mount (empty fields when there is none).
cgroup2_mount find_cgroup2();

/// The cgroup v2 path of `pid` ("/..." relative to the namespace's root),
/// or "" ("self" for heaven itself).
std::string cgroup_of(const std::string& pid);

/// A cgroup directory's path relative to the cgroup2 mount ("/a/b"), or "".
std::string relative_cgroup(const std::string& dir);

/// The pids in cgroup `dir` and the cgroups below it.
void cgroup_members(const std::string& dir, std::vector<pid_t>& out);

/// Removes cgroup `dir` and those a script made below it, deepest first.
bool remove_cgroup(const std::string& dir);

/// Makes `<heaven's cgroup>/heaven-<instance>` and checks that a process
/// can be started in a cgroup below it. Sets `root` and returns "", or
/// returns why scopes cannot be cgroups.
std::string make_cgroup_root(const std::string& instance, std::string& root);

} // namespace heaven::scope_detail
