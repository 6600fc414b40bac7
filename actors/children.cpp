#include "actors/children.hpp"
#include "base/thread_name.hpp"

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace heaven {

/// What the registry knows of one child: who waits for it and, once it is
/// reaped, how it ended.
struct child_process::slot {
  pid_t pid = 0;
  uint64_t start = 0;
  std::string cookie;
  bool done = false;
  int status = 0;
};

namespace {

/// The one registry of heaven's children. Every waitpid on one of them
/// happens under `mtx`; a child is in `live` from before anything may reap
/// it until it is reaped.
struct registry {
  std::mutex mtx;
  std::condition_variable cv;
  std::unordered_map<pid_t, std::shared_ptr<child_process::slot>> live;
  /// Tickets of the starts under way: their children may exist and not be
  /// in `live` yet, so the reaper leaves an unknown child alone until every
  /// start that began before it looked is over.
  std::set<uint64_t> starting;
  uint64_t next_ticket = 1;
  bool reaper = false;
  uint64_t orphans = 0;
};

/// Never destroyed: the reaper thread runs until the process ends, past
/// static destructors.
registry& reg() {
  static auto* r = new registry;
  return *r;
}

/// Reaps `pid` if it has exited and hands its status to its slot. Call with
/// the registry locked. Returns true when it was reaped (or is gone).
bool reap_locked(registry& r, pid_t pid, bool block = false) {
  int status = 0;
  pid_t got;
  do {
    got = ::waitpid(pid, &status, block ? 0 : WNOHANG);
  } while (got < 0 && errno == EINTR);
  if (got == 0)
    return false;
  auto it = r.live.find(pid);
  if (got < 0) {
    // Not our child any more: something outside the registry took it.
    if (it != r.live.end()) {
      it->second->done = true;
      it->second->status = -1;
      r.live.erase(it);
      r.cv.notify_all();
    }
    return true;
  }
  if (it != r.live.end()) {
    it->second->done = true;
    it->second->status = status;
    r.live.erase(it);
    r.cv.notify_all();
  } else {
    ++r.orphans;
  }
  return true;
}

/// The reaper: waits for any child to exit (without reaping it), then
/// reaps it under the lock, handing an owned child's status to its owner.
void reap_forever() {
  name_this_thread("heaven.reaper");
  auto& r = reg();
  for (;;) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0) {
      if (errno == EINTR)
        continue;
      // No child at all: orphans may still be re-parented to us later.
      std::unique_lock guard{r.mtx};
      r.cv.wait_for(guard, std::chrono::milliseconds(100));
      continue;
    }
    auto pid = info.si_pid;
    if (pid <= 0)
      continue;
    std::unique_lock guard{r.mtx};
    if (r.live.count(pid) == 0) {
      // Maybe a child whose start has not registered it yet.
      auto horizon = r.next_ticket;
      r.cv.wait(guard, [&] {
        return r.starting.empty() || *r.starting.begin() >= horizon;
      });
    }
    if (!reap_locked(r, pid)) {
      guard.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

/// A start under way (see registry::starting).
class start_ticket {
public:
  start_ticket() {
    auto& r = reg();
    std::lock_guard guard{r.mtx};
    id_ = r.next_ticket++;
    r.starting.insert(id_);
  }
  ~start_ticket() {
    if (id_ != 0)
      release(nullptr);
  }
  start_ticket(const start_ticket&) = delete;
  start_ticket& operator=(const start_ticket&) = delete;

  /// Ends the start, registering `s` (if any) in the same step.
  void release(std::shared_ptr<child_process::slot> s) {
    auto& r = reg();
    {
      std::lock_guard guard{r.mtx};
      if (s)
        r.live[s->pid] = std::move(s);
      r.starting.erase(id_);
      id_ = 0;
    }
    r.cv.notify_all();
  }

private:
  uint64_t id_ = 0;
};

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

/// The scope's record, held open and share-locked while a child starts in
/// the scope: ending the scope takes it exclusively and moves it away, so a
/// start either finishes (and is recorded) before the end looks, or finds
/// the record gone and refuses.
class record_gate {
public:
  record_gate(const process_scope& scope, std::string& error) {
    if (scope.record.empty())
      return;
    auto ended = "deployment " + std::to_string(scope.id)
                 + " has ended: nothing more starts in it";
    fd_ = ::open(scope.record.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) {
      error = errno == ENOENT
                ? ended
                : "cannot open " + scope.record + ": " + std::strerror(errno);
      return;
    }
    while (::flock(fd_, LOCK_SH) != 0 && errno == EINTR) {
    }
    struct stat held, named;
    if (::fstat(fd_, &held) != 0 || ::stat(scope.record.c_str(), &named) != 0
        || held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
      error = ended;
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~record_gate() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  record_gate(const record_gate&) = delete;
  record_gate& operator=(const record_gate&) = delete;

  /// Records a process group (and session) started in the scope.
  void add(pid_t pid, uint64_t start) {
    if (fd_ < 0)
      return;
    auto line = "group " + std::to_string(pid) + " " + std::to_string(start)
                + "\n";
    // One write with O_APPEND: lines of concurrent starts never mix.
    if (::write(fd_, line.data(), line.size()) < 0)
      spdlog::warn("could not record process group {} in {}: {}", pid,
                   "the scope's record", std::strerror(errno));
  }

private:
  int fd_ = -1;
};

/// Which step of the child's preparation failed.
enum class stage : int {
  none,
  death_signal,
  parent,
  session,
  cgroup,
  stdio,
  directory,
  exec
};

/// What the child needs, all made before it exists: between the clone and
/// the exec it makes system calls only (no allocation, no locks).
struct launch {
  const char* exe = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;
  const char* cgroup_procs = nullptr;
  int stdio[3] = {-1, -1, -1};
  int death_signal = 0;
  pid_t parent = 0;
  int max_fd = 1024;
  /// Written by the child (it shares our memory until it execs).
  int error = 0;
  stage failed = stage::none;
};

[[noreturn]] void fail(launch* l, stage s) {
  l->error = errno;
  l->failed = s;
  ::_exit(127);
}

/// The child, on a stack of its own, sharing heaven's memory (CLONE_VM) with
/// the starting thread suspended (CLONE_VFORK) until it execs or exits.
int child_main(void* arg) {
  auto* l = static_cast<launch*>(arg);
  // The signal mask is all-blocked (the parent blocked everything around
  // the clone): no handler of heaven's can run here. Back to defaults.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    ::sigaction(sig, &sa, nullptr);
  }
  if (l->death_signal != 0
      && ::prctl(PR_SET_PDEATHSIG, l->death_signal, 0, 0, 0) != 0)
    fail(l, stage::death_signal);
  // heaven died before the signal was set: nobody would end this child.
  if (::getppid() != l->parent) {
    errno = ESRCH;
    fail(l, stage::parent);
  }
  if (::setsid() < 0)
    fail(l, stage::session);
  // In the scope's cgroup before it can start anything: nothing it starts
  // is ever outside.
  if (l->cgroup_procs != nullptr) {
    int fd = ::open(l->cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1)
      fail(l, stage::cgroup);
    ::close(fd);
  }
  for (int i = 0; i < 3; ++i)
    if (::dup2(l->stdio[i], i) < 0)
      fail(l, stage::stdio);
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
    for (int fd = 3; fd < l->max_fd; ++fd)
      ::close(fd);
  if (l->cwd != nullptr && ::chdir(l->cwd) != 0)
    fail(l, stage::directory);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(l->exe, l->argv, l->envp);
  fail(l, stage::exec);
}

/// A descriptor number of at least 3 for `fd`: dup2 onto 0-2 must not
/// clobber another of the three.
int above_stdio(int fd, std::vector<int>& extra) {
  if (fd >= 3)
    return fd;
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy >= 0)
    extra.push_back(copy);
  return copy;
}

std::string describe(const launch& l, const child_options& opts) {
  auto why = std::string{std::strerror(l.error)};
  switch (l.failed) {
    case stage::cgroup:
      if (l.error == ENOENT)
        return "deployment " + std::to_string(opts.scope.id)
               + " has ended: nothing more starts in it";
      return "cannot join the cgroup " + opts.scope.cgroup + ": " + why;
    case stage::parent:
      return "heaven is stopping";
    case stage::directory:
      return "cannot change to " + opts.cwd + ": " + why;
    default:
      return why;
  }
}

} // namespace

child_process::child_process(pid_t pid, int pidfd, std::shared_ptr<slot> s)
  : pid_(pid), pidfd_(pidfd), slot_(std::move(s)) {
}

child_process::~child_process() {
  // Unreaped, it stays in the registry: the reaper reaps it when it ends.
  if (pidfd_ >= 0)
    ::close(pidfd_);
}

uint64_t child_process::start_time() const {
  return slot_->start;
}

std::optional<int> child_process::try_wait() {
  auto& r = reg();
  std::lock_guard guard{r.mtx};
  if (!slot_->done)
    reap_locked(r, pid_);
  if (slot_->done)
    return slot_->status;
  return std::nullopt;
}

std::optional<int> child_process::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto status = try_wait())
      return status;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return std::nullopt;
    // The pidfd says when it exited; without one, look again soon.
    if (pidfd_ >= 0) {
      pollfd fd{pidfd_, POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    } else {
      ::usleep(static_cast<useconds_t>(std::min<int64_t>(left.count(), 10))
               * 1000);
    }
  }
}

int child_process::wait() {
  for (;;)
    if (auto status = wait_for(std::chrono::hours(1)))
      return *status;
}

uint64_t process_start_time(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  char buf[1024];
  auto n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  // The name (field 2) may hold spaces and parentheses: count from the
  // last ')'. Field 22 is the 20th after it.
  auto* p = std::strrchr(buf, ')');
  if (p == nullptr)
    return 0;
  int field = 2;
  for (++p; *p != '\0' && field < 22; ++p)
    if (*p == ' ')
      ++field;
  return std::strtoull(p, nullptr, 10);
}

std::unique_ptr<child_process> start_child(const child_options& opts,
                                           std::string& error) {
  if (opts.exe.empty() || opts.argv.empty()) {
    error = "cannot run an empty command";
    return nullptr;
  }
  record_gate gate{opts.scope, error};
  if (!error.empty())
    return nullptr;
  // Everything the child needs is made here, before it exists.
  std::vector<std::string> env_strings;
  env_strings.reserve(opts.env.size() + 1);
  for (auto& [k, v] : opts.env)
    if (opts.scope.cookie.empty() || k != "HEAVEN_SCOPE")
      env_strings.push_back(k + "=" + v);
  if (!opts.scope.cookie.empty())
    env_strings.push_back("HEAVEN_SCOPE=" + opts.scope.cookie);
  std::vector<char*> argv;
  for (auto& x : opts.argv)
    argv.push_back(const_cast<char*>(x.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& x : env_strings)
    envp.push_back(const_cast<char*>(x.c_str()));
  envp.push_back(nullptr);
  std::string procs;
  if (!opts.scope.cgroup.empty())
    procs = opts.scope.cgroup + "/cgroup.procs";
  std::vector<int> extra;
  launch l;
  l.exe = opts.exe.c_str();
  l.argv = argv.data();
  l.envp = envp.data();
  l.cwd = opts.cwd.empty() ? nullptr : opts.cwd.c_str();
  l.cgroup_procs = procs.empty() ? nullptr : procs.c_str();
  l.death_signal = opts.death_signal;
  l.parent = ::getpid();
  rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0)
    l.max_fd = static_cast<int>(std::min<rlim_t>(lim.rlim_cur, 65536));
  int null_fd = -1;
  for (int i = 0; i < 3; ++i) {
    int fd = opts.stdio[i];
    if (fd < 0) {
      if (null_fd < 0)
        null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      fd = null_fd;
    }
    l.stdio[i] = fd < 0 ? -1 : above_stdio(fd, extra);
  }
  if (null_fd >= 0)
    extra.push_back(null_fd);
  auto close_extra = [&] {
    for (auto fd : extra)
      ::close(fd);
  };
  if (l.stdio[0] < 0 || l.stdio[1] < 0 || l.stdio[2] < 0) {
    error = std::string{"cannot prepare the descriptors: "}
            + std::strerror(errno);
    close_extra();
    return nullptr;
  }
  constexpr size_t stack_size = 256 * 1024;
  void* stack = ::mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    error = std::string{"mmap: "} + std::strerror(errno);
    close_extra();
    return nullptr;
  }
  start_ticket ticket;
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  auto pid = ::clone(child_main, static_cast<char*>(stack) + stack_size,
                     CLONE_VM | CLONE_VFORK | SIGCHLD, &l);
  auto clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, stack_size);
  close_extra();
  if (pid < 0) {
    error = std::strerror(clone_errno);
    return nullptr;
  }
  auto s = std::make_shared<child_process::slot>();
  s->pid = pid;
  s->cookie = opts.scope.cookie;
  if (l.failed != stage::none) {
    // It exited before exec; nothing else may reap it while the ticket is
    // held, so it is ours to reap here.
    auto& r = reg();
    {
      std::lock_guard guard{r.mtx};
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    error = describe(l, opts);
    return nullptr;
  }
  // While the ticket is held the child cannot be reaped: its pid names it.
  s->start = process_start_time(pid);
  int pidfd = pidfd_open(pid);
  ticket.release(s);
  gate.add(pid, s->start);
  return std::make_unique<child_process>(pid, pidfd, std::move(s));
}

void start_reaper() {
  auto& r = reg();
  {
    std::lock_guard guard{r.mtx};
    if (r.reaper)
      return;
    r.reaper = true;
  }
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    spdlog::warn("heaven could not become the reaper of its orphaned "
                 "processes: {}",
                 std::strerror(errno));
  // The reaper takes no signal of heaven's (SIGTERM is for whoever waits
  // for it): it starts with every signal blocked, whenever it is started.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread{reap_forever}.detach();
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

std::vector<std::pair<pid_t, uint64_t>>
children_in_scope(const std::string& cookie) {
  std::vector<std::pair<pid_t, uint64_t>> result;
  auto& r = reg();
  std::lock_guard guard{r.mtx};
  for (auto& [pid, s] : r.live)
    if (s->cookie == cookie)
      result.emplace_back(pid, s->start);
  return result;
}

std::vector<registered_child> registered_children() {
  std::vector<registered_child> result;
  auto& r = reg();
  std::lock_guard guard{r.mtx};
  result.reserve(r.live.size());
  for (auto& [pid, s] : r.live)
    result.push_back({pid, s->start, s->cookie});
  return result;
}

uint64_t orphans_reaped() {
  auto& r = reg();
  std::lock_guard guard{r.mtx};
  return r.orphans;
}

int open_pidfd(pid_t pid) {
  return pidfd_open(pid);
}

} // namespace heaven
