#include "actors/scope.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "base/text.hpp"
#include "actors/process.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// How long to wait after SIGKILL before giving up on a process.
constexpr auto kill_wait = std::chrono::seconds(10);

// -- small helpers ------------------------------------------------------------

/// Reads a whole (small, /proc or cgroupfs) file; "" when it cannot.
std::string slurp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return {};
  std::string result;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    result.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return result;
}

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
  return n == static_cast<ssize_t>(text.size());
}

/// Undoes mountinfo's octal escapes (a space is "\040").
std::string unescape_mount(const std::string& text) {
  std::string result;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      auto digits = text.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string::npos) {
        result += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    result += text[i];
  }
  return result;
}

/// Where cgroup v2 is mounted and which cgroup that mount shows as its root.
struct cgroup2_mount {
  std::string point;
  std::string root;
};

cgroup2_mount find_cgroup2() {
  std::istringstream in{slurp("/proc/self/mountinfo")};
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos)
      continue;
    std::istringstream tail{line.substr(dash + 3)};
    std::string type;
    tail >> type;
    if (type != "cgroup2")
      continue;
    std::istringstream head{line.substr(0, dash)};
    std::string id, parent, dev, root, point;
    head >> id >> parent >> dev >> root >> point;
    return {unescape_mount(point), unescape_mount(root)};
  }
  return {};
}

/// The cgroup v2 path of `pid` ("/..." relative to the namespace's root),
/// or "" ("self" for heaven itself).
std::string cgroup_of(const std::string& pid) {
  std::istringstream in{slurp("/proc/" + pid + "/cgroup")};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0)
      return line.substr(3);
  return {};
}

/// A cgroup directory's path relative to the cgroup2 mount ("/a/b"), or "".
std::string relative_cgroup(const std::string& dir) {
  static const auto mount = find_cgroup2();
  if (mount.point.empty() || dir.compare(0, mount.point.size(), mount.point))
    return {};
  auto rel = dir.substr(mount.point.size());
  if (mount.root != "/")
    rel = mount.root + rel;
  return rel.empty() ? "/" : rel;
}

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

// -- processes ----------------------------------------------------------------

/// One process as /proc/<pid>/stat shows it.
struct proc_entry {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  uint64_t start = 0;
  char state = '?';
  unsigned long flags = 0;

  bool dead() const {
    return state == 'Z' || state == 'X' || state == 'x';
  }

  /// A kernel thread (PF_KTHREAD): never anyone's, no environment.
  bool kernel() const {
    return (flags & 0x00200000UL) != 0;
  }
};

bool parse_stat(const std::string& text, proc_entry& e) {
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return false;
  std::istringstream in{text.substr(close + 1)};
  std::string skip;
  in >> e.state >> e.ppid >> e.pgrp >> e.session >> skip >> skip >> e.flags;
  for (int field = 10; field < 22; ++field)
    in >> skip;
  in >> e.start;
  return static_cast<bool>(in);
}

/// Every process on the machine (that /proc shows).
std::vector<proc_entry> snapshot() {
  std::vector<proc_entry> result;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr)
    return result;
  while (auto* ent = ::readdir(dir)) {
    if (ent->d_name[0] < '1' || ent->d_name[0] > '9')
      continue;
    proc_entry e;
    e.pid = static_cast<pid_t>(std::atoi(ent->d_name));
    if (parse_stat(slurp(std::string{"/proc/"} + ent->d_name + "/stat"), e))
      result.push_back(e);
  }
  ::closedir(dir);
  return result;
}

/// The HEAVEN_SCOPE cookie in `pid`'s environment ("" when none). False
/// when its environment cannot be known yet: it is readable but empty, as
/// in the moment an exec is setting it up (or when a process really has no
/// variable at all).
bool read_cookie(pid_t pid, std::string& cookie) {
  cookie.clear();
  auto path = "/proc/" + std::to_string(pid) + "/environ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true; // Gone, or not ours to read: it never will be.
  ::close(fd);
  auto env = slurp(path);
  if (env.empty())
    return false;
  static const std::string key = "HEAVEN_SCOPE=";
  size_t pos = 0;
  while (pos < env.size()) {
    auto end = env.find('\0', pos);
    if (end == std::string::npos)
      end = env.size();
    if (env.compare(pos, key.size(), key) == 0) {
      cookie = env.substr(pos + key.size(), end - pos - key.size());
      return true;
    }
    pos = end + 1;
  }
  return true;
}

/// The HEAVEN_SCOPE cookie in `pid`'s environment, or "".
std::string cookie_of(pid_t pid) {
  auto env = slurp("/proc/" + std::to_string(pid) + "/environ");
  static const std::string key = "HEAVEN_SCOPE=";
  size_t pos = 0;
  while (pos < env.size()) {
    auto end = env.find('\0', pos);
    if (end == std::string::npos)
      end = env.size();
    if (env.compare(pos, key.size(), key) == 0)
      return env.substr(pos + key.size(), end - pos - key.size());
    pos = end + 1;
  }
  return {};
}

bool is_subreaper() {
  int flag = 0;
  return ::prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) == 0 && flag != 0;
}

// -- records ------------------------------------------------------------------

/// A scope's record file, parsed.
struct record_data {
  std::string cookie;
  std::string cgroup;
  std::vector<std::pair<pid_t, uint64_t>> groups;
};

record_data parse_record(const std::string& text) {
  record_data result;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("scope ", 0) == 0) {
      result.cookie = line.substr(6);
    } else if (line.rfind("cgroup ", 0) == 0) {
      result.cgroup = line.substr(7);
    } else if (line.rfind("group ", 0) == 0) {
      std::istringstream fields{line.substr(6)};
      long long pid = 0;
      unsigned long long start = 0;
      if (fields >> pid >> start && pid > 1)
        result.groups.emplace_back(static_cast<pid_t>(pid), start);
    }
  }
  return result;
}

/// Closes a scope's record to new processes: takes it exclusively (waiting
/// for starts under way, which hold it shared, to be recorded) and renames
/// it to `<record>.ending`, which nothing starts under. Returns what it
/// recorded. Continues an ending that a killed heaven left half done.
record_data close_record(const std::string& record) {
  if (record.empty())
    return {};
  auto ending = record + ".ending";
  int fd = ::open(record.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return parse_record(slurp(ending));
  while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }
  if (::rename(record.c_str(), ending.c_str()) != 0)
    spdlog::warn("heaven could not close the record {}: {}", record,
                 std::strerror(errno));
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return parse_record(text);
}

// -- cgroups ------------------------------------------------------------------

/// The pids in cgroup `dir` and the cgroups below it.
void cgroup_members(const std::string& dir, std::vector<pid_t>& out) {
  std::istringstream in{slurp(dir + "/cgroup.procs")};
  long long pid;
  while (in >> pid)
    out.push_back(static_cast<pid_t>(pid));
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{dir, ec})
    if (entry.is_directory(ec))
      cgroup_members(entry.path().string(), out);
}

/// Removes cgroup `dir` and those a script made below it, deepest first.
bool remove_cgroup(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return true;
  for (auto& entry : fs::directory_iterator{dir, ec})
    if (entry.is_directory(ec))
      remove_cgroup(entry.path().string());
  // A cgroup whose last process just exited may be busy for a moment.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT)
      return true;
    if (errno != EBUSY)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::warn("heaven could not remove the cgroup {}: {}", dir,
               std::strerror(errno));
  return false;
}

// -- ending -------------------------------------------------------------------

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
           || path.compare(0, t.cgroup_rel.size() + 1, t.cgroup_rel + "/")
                == 0;
  });
}

/// Ends the targets together: SIGTERM, the grace period, SIGKILL, then
/// their cgroups and records go.
void end_targets(std::vector<target>& targets,
                 std::chrono::milliseconds grace, reach where) {
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

/// Makes the target for `scope`: closes its record and reads it.
target make_target(process_scope scope) {
  target t;
  auto rec = close_record(scope.record);
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

/// True when a fallback target can have no process at all: nothing was
/// ever started in it (no group recorded, no child registered).
bool never_started(const target& t) {
  return !t.in_cgroup() && t.groups.empty()
         && (t.scope.cookie.empty()
             || children_in_scope(t.scope.cookie).empty());
}

reach default_reach() {
  return is_subreaper() ? reach::descendants : reach::anywhere;
}

} // namespace

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
  auto mount = find_cgroup2();
  if (mount.point.empty()) {
    without_cgroups_ = "no cgroup2 file system is mounted";
    return;
  }
  auto own = cgroup_of("self");
  if (own.empty() || own.compare(0, mount.root.size(), mount.root) != 0) {
    without_cgroups_ = "heaven's own cgroup is not below the cgroup2 mount";
    return;
  }
  auto rel = mount.root == "/" ? own : own.substr(mount.root.size());
  auto root = mount.point + (rel == "/" ? "" : rel) + "/heaven-" + instance_;
  if (::mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) {
    without_cgroups_ = "cannot create the cgroup " + root + ": "
                       + std::strerror(errno);
    return;
  }
  // Whether a process can really be moved there: try it with one.
  auto probe = root + "/probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) {
    without_cgroups_ = "cannot create the cgroup " + probe + ": "
                       + std::strerror(errno);
    ::rmdir(root.c_str());
    return;
  }
  child_options opts;
  opts.exe = "/bin/sh";
  opts.argv = {"sh", "-c", "exit 0"};
  opts.scope.cgroup = probe;
  std::string why;
  if (auto child = start_child(opts, why))
    child->wait();
  ::rmdir(probe.c_str());
  if (!why.empty()) {
    without_cgroups_ = "cannot start a process in the cgroup " + probe
                       + ": " + why;
    ::rmdir(root.c_str());
    return;
  }
  cgroup_root_ = root;
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

namespace {

/// The targets for every scope recorded in `scopes_dir` or with a cgroup
/// under `cgroup_root`.
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
    if (digits.empty() || digits.find_first_not_of("0123456789")
                            != std::string::npos)
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

} // namespace

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
