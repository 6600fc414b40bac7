#include "actors/scope_end.hpp"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "actors/scope_cgroup.hpp"
#include "actors/scope_records.hpp"

namespace fs = std::filesystem;

namespace heaven::scope_detail {

namespace {

/// How long to wait after SIGKILL before giving up on a process.
constexpr auto kill_wait = std::chrono::seconds(10);

/// Sends `sig` to the process `pid` only while it is the one `is_it` says
/// it is: the check runs after a pidfd pins the process, so a pid reused
/// in between can never receive the signal.
template <class Check>
bool signal_pinned(pid_t pid, int sig, Check is_it) {
  int fd = open_pidfd(pid);
  if (fd < 0) {
    // Without pidfds (old kernels) the window is as small as it gets.
    return is_it() && ::kill(pid, sig) == 0;
  }
  bool sent = false;
  if (is_it()) {
#ifdef SYS_pidfd_send_signal
    sent = ::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) == 0;
#else
    sent = ::kill(pid, sig) == 0;
#endif
  }
  ::close(fd);
  return sent;
}

/// Finds the processes of the scopes, again and again while they end.
class finder {
public:
  finder(std::vector<target>& targets, reach where)
    : targets_(targets), where_(where) {
    for (size_t i = 0; i < targets_.size(); ++i)
      if (!targets_[i].scope.cookie.empty())
        by_cookie_[targets_[i].scope.cookie] = i;
    // Never heaven itself, nor what it runs under.
    auto self = ::getpid();
    protected_.insert(1);
    protected_.insert(self);
    auto pid = self;
    for (int depth = 0; depth < 64 && pid > 1; ++depth) {
      proc_entry e;
      if (!parse_stat(slurp("/proc/" + std::to_string(pid) + "/stat"), e))
        break;
      protected_.insert(e.ppid);
      pid = e.ppid;
    }
  }

  /// True when the last find met a process whose environment could not be
  /// read yet (in the middle of an exec): it may be a scope's.
  bool uncertain() const {
    return uncertain_;
  }

  /// The live processes of each target, by pid and start time.
  std::vector<std::vector<std::pair<pid_t, uint64_t>>> find() {
    uncertain_ = false;
    std::vector<std::vector<std::pair<pid_t, uint64_t>>> result(
      targets_.size());
    bool need_scan = false;
    for (size_t i = 0; i < targets_.size(); ++i) {
      auto& t = targets_[i];
      if (t.in_cgroup()) {
        std::vector<pid_t> pids;
        cgroup_members(t.scope.cgroup, pids);
        for (auto pid : pids) {
          auto start = process_start_time(pid);
          if (start != 0 && protected_.count(pid) == 0)
            result[i].emplace_back(pid, start);
        }
      } else {
        need_scan = true;
      }
    }
    if (need_scan)
      scan(result);
    return result;
  }

private:
  void scan(std::vector<std::vector<std::pair<pid_t, uint64_t>>>& result) {
    auto procs = snapshot();
    std::unordered_map<pid_t, size_t> index;
    std::unordered_map<pid_t, std::vector<pid_t>> children, by_group;
    for (size_t i = 0; i < procs.size(); ++i) {
      auto& p = procs[i];
      index[p.pid] = i;
      children[p.ppid].push_back(p.pid);
      by_group[p.pgrp].push_back(p.pid);
      if (p.session != p.pgrp)
        by_group[p.session].push_back(p.pid);
    }
    // Which scope each process belongs to (index into targets_).
    std::unordered_map<pid_t, size_t> owner;
    std::vector<pid_t> roots;
    auto claim = [&](pid_t pid, size_t t) {
      if (protected_.count(pid) != 0 || owner.count(pid) != 0)
        return;
      owner[pid] = t;
      roots.push_back(pid);
    };
    auto self = ::getpid();
    // The children heaven started and still waits for: their scope is
    // known without reading their environment.
    std::unordered_map<pid_t, std::string> registered;
    for (auto& child : registered_children())
      if (auto it = index.find(child.pid);
          it != index.end() && procs[it->second].start == child.start)
        registered[child.pid] = child.cookie;
    for (auto& [pid, cookie] : registered)
      if (auto it = by_cookie_.find(cookie);
          it != by_cookie_.end() && !targets_[it->second].in_cgroup())
        claim(pid, it->second);
    // What runs below heaven (only needed while heaven is the subreaper).
    std::unordered_set<pid_t> below;
    if (where_ == reach::descendants) {
      std::vector<pid_t> todo{self};
      while (!todo.empty()) {
        auto pid = todo.back();
        todo.pop_back();
        if (auto it = children.find(pid); it != children.end())
          for (auto child : it->second)
            if (below.insert(child).second)
              todo.push_back(child);
      }
    }
    for (size_t t = 0; t < targets_.size(); ++t) {
      auto& tg = targets_[t];
      if (tg.in_cgroup())
        continue;
      // The recorded groups and sessions. A leader alive with another
      // start time means the number is someone else's now: none of its
      // members is taken. With the leader alive and the scope's, every
      // member no older than it is the scope's; with the leader gone, only
      // members that carry the scope's cookie or run below heaven (and
      // carry no other cookie) are.
      for (auto [leader, start] : tg.groups) {
        auto it = index.find(leader);
        if (it != index.end() && procs[it->second].start != start)
          continue;
        // (A zombie leader still holds its number: the group is ours.)
        bool leader_ours = it != index.end();
        auto members = by_group.find(leader);
        if (members == by_group.end())
          continue;
        for (auto pid : members->second) {
          auto& p = procs[index[pid]];
          if (p.start < start || p.dead())
            continue;
          auto cookie = cookie_cached(p);
          if (!cookie.empty() && cookie != tg.scope.cookie)
            continue;
          if (leader_ours || !cookie.empty() || below.count(pid) != 0)
            claim(pid, t);
        }
      }
    }
    // The cookie: processes that left every recorded group.
    for (auto& p : procs) {
      if (owner.count(p.pid) != 0 || p.dead() || p.kernel()
          || registered.count(p.pid) != 0)
        continue;
      if (where_ == reach::descendants && p.ppid != self)
        continue;
      if (auto it = by_cookie_.find(cookie_cached(p));
          it != by_cookie_.end() && !targets_[it->second].in_cgroup())
        claim(p.pid, it->second);
    }
    // Everything below them.
    for (size_t i = 0; i < roots.size(); ++i) {
      auto t = owner[roots[i]];
      if (auto it = children.find(roots[i]); it != children.end())
        for (auto child : it->second)
          if (protected_.count(child) == 0 && owner.count(child) == 0) {
            owner[child] = t;
            roots.push_back(child);
          }
    }
    for (auto& [pid, t] : owner) {
      auto& p = procs[index[pid]];
      if (!p.dead())
        result[t].emplace_back(pid, p.start);
    }
  }

  /// A process's cookie, read once per process (again while it cannot be
  /// known yet: then the find is uncertain).
  std::string cookie_cached(const proc_entry& p) {
    auto key = std::make_pair(p.pid, p.start);
    if (auto it = cookies_.find(key); it != cookies_.end())
      return it->second;
    std::string cookie;
    if (!read_cookie(p.pid, cookie)) {
      uncertain_ = true;
      return {};
    }
    cookies_.emplace(key, cookie);
    return cookie;
  }

  std::vector<target>& targets_;
  reach where_;
  bool uncertain_ = false;
  std::unordered_map<std::string, size_t> by_cookie_;
  std::set<pid_t> protected_;
  std::map<std::pair<pid_t, uint64_t>, std::string> cookies_;
};

/// Signals one process of `t`, making sure the pid still names it.
bool send(const target& t, pid_t pid, uint64_t start, int sig) {
  return signal_pinned(pid, sig, [&] {
    if (process_start_time(pid) != start)
      return false;
    if (!t.in_cgroup())
      return true;
    auto path = cgroup_of(std::to_string(pid));
    return path == t.cgroup_rel
           || path.compare(0, t.cgroup_rel.size() + 1, t.cgroup_rel + "/") == 0;
  });
}

} // namespace

void end_targets(std::vector<target>& targets, std::chrono::milliseconds grace,
                 reach where) {
  if (targets.empty())
    return;
  finder find{targets, where};
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + grace;
  auto pause = std::chrono::milliseconds(5);
  bool any = false;
  int unsure = 0;
  // SIGTERM, also to what starts during the grace period.
  for (;;) {
    auto found = find.find();
    any = false;
    for (size_t i = 0; i < targets.size(); ++i) {
      auto& t = targets[i];
      for (auto [pid, start] : found[i]) {
        any = true;
        if (t.termed.insert({pid, start}).second) {
          ++t.result.ended;
          send(t, pid, start, SIGTERM);
          // A stopped process handles SIGTERM only once it runs.
          send(t, pid, start, SIGCONT);
        }
      }
    }
    // A process caught in the middle of an exec is looked at again before
    // the scope counts as empty (a bounded number of times: a process may
    // also have no environment at all).
    if (!any && find.uncertain() && ++unsure < 20) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    if (!any || clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(
      std::min<clock::duration>(pause, deadline - clock::now()));
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  // SIGKILL to what is left, until nothing is.
  if (any) {
    auto give_up = clock::now() + kill_wait;
    pause = std::chrono::milliseconds(5);
    std::vector<bool> cgroup_killed(targets.size(), false);
    for (;;) {
      auto found = find.find();
      any = false;
      for (size_t i = 0; i < targets.size(); ++i) {
        auto& t = targets[i];
        if (!found[i].empty() && t.in_cgroup() && !cgroup_killed[i]) {
          // The kernel kills the whole cgroup, forks under way included.
          cgroup_killed[i] = write_text(t.scope.cgroup + "/cgroup.kill", "1");
        }
        for (auto [pid, start] : found[i]) {
          any = true;
          if (t.termed.insert({pid, start}).second)
            ++t.result.ended;
          if (t.killed.insert({pid, start}).second)
            ++t.result.killed;
          send(t, pid, start, SIGKILL);
        }
        t.result.left = found[i].size();
      }
      if (!any || clock::now() >= give_up)
        break;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(100));
    }
  }
  for (auto& t : targets) {
    auto id = t.scope.id;
    if (t.result.ended > 0)
      spdlog::info("heaven ended {} process{} of deployment {} ({} after "
                   "SIGKILL)",
                   t.result.ended, t.result.ended == 1 ? "" : "es", id,
                   t.result.killed);
    if (t.result.left > 0) {
      spdlog::error("{} process{} of deployment {} did not end even after "
                    "SIGKILL; its scope stays recorded",
                    t.result.left, t.result.left == 1 ? "" : "es", id);
      continue;
    }
    if (!t.scope.cgroup.empty())
      remove_cgroup(t.scope.cgroup);
    if (!t.scope.record.empty()) {
      ::unlink((t.scope.record + ".ending").c_str());
      ::unlink(t.scope.record.c_str());
    }
  }
}

target make_target(process_scope scope) {
  auto rec = close_record(scope.record);
  return make_target(std::move(scope), std::move(rec));
}

target make_target(process_scope scope, record_data rec) {
  target t;
  if (scope.cookie.empty())
    scope.cookie = rec.cookie;
  if (scope.cgroup.empty())
    scope.cgroup = rec.cgroup;
  t.groups = std::move(rec.groups);
  std::error_code ec;
  if (!scope.cgroup.empty() && fs::is_directory(scope.cgroup, ec))
    t.cgroup_rel = relative_cgroup(scope.cgroup);
  t.scope = std::move(scope);
  return t;
}

bool never_started(const target& t) {
  return !t.in_cgroup() && t.groups.empty()
         && (t.scope.cookie.empty()
             || children_in_scope(t.scope.cookie).empty());
}

bool end_if_empty(const target& t) {
  if (t.in_cgroup()) {
    // Nothing recorded, nothing registered, and (what end_targets looks
    // at) no member: its cgroup never had a process, so it goes at once.
    if (!t.groups.empty()
        || (!t.scope.cookie.empty()
            && !children_in_scope(t.scope.cookie).empty()))
      return false;
    std::vector<pid_t> pids;
    cgroup_members(t.scope.cgroup, pids);
    if (!pids.empty())
      return false;
  } else if (!never_started(t)) {
    return false;
  }
  if (!t.scope.cgroup.empty())
    remove_cgroup(t.scope.cgroup);
  if (!t.scope.record.empty()) {
    ::unlink((t.scope.record + ".ending").c_str());
    ::unlink(t.scope.record.c_str());
  }
  return true;
}

reach default_reach() {
  return is_subreaper() ? reach::descendants : reach::anywhere;
}

std::vector<target> recorded_targets(const std::string& scopes_dir,
                                     const std::string& cgroup_root,
                                     const std::string& instance) {
  std::map<int64_t, process_scope> scopes;
  auto id_of = [](const std::string& name, const std::string& prefix,
                  int64_t& id) {
    if (name.compare(0, prefix.size(), prefix) != 0)
      return false;
    auto digits = name.substr(prefix.size());
    if (auto dot = digits.find('.'); dot != std::string::npos)
      digits = digits.substr(0, dot);
    if (digits.empty()
        || digits.find_first_not_of("0123456789") != std::string::npos)
      return false;
    id = std::stoll(digits);
    return true;
  };
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{scopes_dir, ec}) {
    int64_t id = 0;
    if (!id_of(entry.path().filename().string(), "", id))
      continue;
    auto& s = scopes[id];
    s.id = id;
    s.record = scopes_dir + "/" + std::to_string(id);
  }
  if (!cgroup_root.empty())
    for (auto& entry : fs::directory_iterator{cgroup_root, ec}) {
      int64_t id = 0;
      if (!entry.is_directory(ec)
          || !id_of(entry.path().filename().string(), "d", id))
        continue;
      auto& s = scopes[id];
      s.id = id;
      s.cgroup = entry.path().string();
    }
  std::vector<target> result;
  for (auto& [id, scope] : scopes) {
    if (scope.cookie.empty())
      scope.cookie = instance + ":" + std::to_string(id);
    result.push_back(make_target(scope));
  }
  return result;
}

} // namespace heaven::scope_detail
