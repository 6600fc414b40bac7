#include "actors/scope.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "actors/process.hpp"
#include "actors/scope_cgroup.hpp"
#include "actors/scope_end.hpp"
#include "actors/scope_records.hpp"
#include "base/text.hpp"

namespace fs = std::filesystem;

namespace heaven {

using namespace scope_detail;

// -- process_scopes -----------------------------------------------------------

process_scopes::process_scopes(const std::string& data_dir, bool use_cgroups) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  auto canonical = fs::weakly_canonical(fs::absolute(data_dir), ec);
  data_dir_ = canonical.string();
  instance_ = sha256_hex(data_dir_).substr(0, 12);
  scopes_dir_ = (canonical / "scopes").string();
  fs::create_directories(scopes_dir_, ec);
  if (!use_cgroups) {
    without_cgroups_ = "HEAVEN_CGROUPS=off";
    return;
  }
  if (auto why = make_cgroup_root(instance_, cgroup_root_); !why.empty())
    without_cgroups_ = std::move(why);
}

process_scope process_scopes::open(int64_t id) const {
  process_scope scope;
  scope.id = id;
  scope.cookie = instance_ + ":" + std::to_string(id);
  scope.record = scopes_dir_ + "/" + std::to_string(id);
  if (!cgroup_root_.empty()) {
    auto dir = cgroup_root_ + "/d" + std::to_string(id);
    // heaven's stop removes the instance's cgroup: make it again.
    ::mkdir(cgroup_root_.c_str(), 0755);
    if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST)
      scope.cgroup = dir;
    else
      spdlog::warn("deployment {} runs without a cgroup of its own (cannot "
                   "create {}: {}): heaven tracks its processes instead",
                   id, dir, std::strerror(errno));
  }
  int fd = ::open(scope.record.c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    spdlog::error("heaven cannot record deployment {}'s processes in {}: {}",
                  id, scope.record, std::strerror(errno));
    scope.record.clear();
    return scope;
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size == 0) {
    auto header = "scope " + scope.cookie + "\n";
    if (!scope.cgroup.empty())
      header += "cgroup " + scope.cgroup + "\n";
    if (::write(fd, header.data(), header.size()) < 0)
      spdlog::warn("heaven could not write {}: {}", scope.record,
                   std::strerror(errno));
  }
  ::close(fd);
  return scope;
}

std::map<int64_t, scope_ending>
process_scopes::end_leftovers(std::chrono::milliseconds grace) const {
  auto targets = recorded_targets(scopes_dir_, cgroup_root_, instance_);
  // Processes carrying this instance's cookie for a scope nobody recorded
  // (its record lost): they are ended too.
  std::set<int64_t> known;
  for (auto& t : targets)
    known.insert(t.scope.id);
  auto prefix = instance_ + ":";
  auto self = ::getpid();
  for (auto& p : snapshot()) {
    if (p.pid == self || p.dead())
      continue;
    auto cookie = cookie_of(p.pid);
    if (cookie.compare(0, prefix.size(), prefix) != 0)
      continue;
    auto digits = cookie.substr(prefix.size());
    if (digits.empty()
        || digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto id = std::stoll(digits);
    if (known.insert(id).second) {
      process_scope s;
      s.id = id;
      s.cookie = cookie;
      targets.push_back(make_target(s));
    }
  }
  // The heaven that started them is gone: they may be anywhere.
  end_targets(targets, grace, reach::anywhere);
  std::map<int64_t, scope_ending> result;
  for (auto& t : targets)
    result[t.scope.id] = t.result;
  return result;
}

scope_ending process_scopes::end_all(std::chrono::milliseconds grace) const {
  auto targets = recorded_targets(scopes_dir_, cgroup_root_, instance_);
  end_targets(targets, grace, default_reach());
  scope_ending total;
  for (auto& t : targets) {
    total.ended += t.result.ended;
    total.killed += t.result.killed;
    total.left += t.result.left;
  }
  if (!cgroup_root_.empty() && total.left == 0)
    ::rmdir(cgroup_root_.c_str());
  return total;
}

scope_ending end_scope(const process_scope& scope,
                       std::chrono::milliseconds grace) {
  if (scope.id == 0 && scope.cookie.empty() && scope.cgroup.empty()
      && scope.record.empty())
    return {};
  std::vector<target> targets;
  targets.push_back(make_target(scope));
  if (never_started(targets.front())) {
    // The common case of a scope nothing ever ran in: no scan needed.
    if (!scope.record.empty()) {
      ::unlink((scope.record + ".ending").c_str());
      ::unlink(scope.record.c_str());
    }
    if (!scope.cgroup.empty())
      remove_cgroup(scope.cgroup);
    return {};
  }
  end_targets(targets, grace, default_reach());
  return targets.front().result;
}

void end_scope_async(caf::actor_system& sys, process_scope scope,
                     std::chrono::milliseconds grace,
                     std::function<void(scope_ending)> done, bool detach) {
  run_blocking(
    sys,
    [scope = std::move(scope), grace, done = std::move(done)] {
      auto result = end_scope(scope, grace);
      if (done)
        done(result);
    },
    detach);
}

} // namespace heaven
