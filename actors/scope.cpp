#include "actors/scope.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
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

namespace {

bool is_default(const process_scope& scope) {
  return scope.id == 0 && scope.cookie.empty() && scope.cgroup.empty()
         && scope.record.empty();
}

/// The scope endings that may block, per actor system: a FIFO and the
/// workers taking from it. A worker is a detached actor (so the system's
/// end waits for it, and with it for every ending queued); at most
/// scope_ending_threads() run at once. One that finds nothing to do waits
/// `linger` for more (a burst of endings keeps its threads), then quits.
struct ending_queue {
  std::deque<std::function<void()>> jobs;
  std::size_t workers = 0;
  std::size_t idle = 0;
  std::condition_variable more;
};

constexpr auto linger = std::chrono::milliseconds(200);

std::mutex queues_mx;
std::map<caf::actor_system*, ending_queue> queues;

void run_endings(caf::actor_system* sys) {
  std::unique_lock lock{queues_mx};
  // The entry stays while it has a worker.
  auto& q = queues.find(sys)->second;
  for (;;) {
    if (q.jobs.empty()) {
      ++q.idle;
      bool woken = q.more.wait_for(lock, linger,
                                   [&] { return !q.jobs.empty(); });
      --q.idle;
      if (!woken) {
        if (--q.workers == 0)
          queues.erase(sys);
        return;
      }
    }
    auto job = std::move(q.jobs.front());
    q.jobs.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      spdlog::error("heaven failed to end a deployment's scope: {}", e.what());
    }
    lock.lock();
  }
}

void queue_ending(caf::actor_system& sys, std::function<void()> job) {
  bool spawn = false;
  {
    std::lock_guard guard{queues_mx};
    auto& q = queues[&sys];
    q.jobs.push_back(std::move(job));
    if (q.jobs.size() > q.idle && q.workers < scope_ending_threads()) {
      ++q.workers;
      spawn = true;
    }
    q.more.notify_one();
  }
  if (spawn)
    run_blocking(sys, [sys = &sys] { run_endings(sys); });
}

} // namespace

std::size_t scope_ending_threads() {
  return std::max(2u, std::thread::hardware_concurrency());
}

scope_ending end_scope(const process_scope& scope,
                       std::chrono::milliseconds grace) {
  if (is_default(scope))
    return {};
  std::vector<target> targets;
  targets.push_back(make_target(scope));
  // The common case of a scope nothing ever ran in: no scan needed.
  if (end_if_empty(targets.front()))
    return {};
  end_targets(targets, grace, default_reach());
  return targets.front().result;
}

void end_scope_async(caf::actor_system& sys, process_scope scope,
                     std::chrono::milliseconds grace,
                     std::function<void(scope_ending)> done, bool detach) {
  std::function<void()> job;
  record_data rec;
  if (is_default(scope)) {
    if (done)
      done({});
    return;
  }
  if (try_close_record(scope.record, rec)) {
    auto t = make_target(std::move(scope), std::move(rec));
    if (end_if_empty(t)) {
      if (done)
        done({});
      return;
    }
    job = [t = std::move(t), grace, done = std::move(done)]() mutable {
      std::vector<target> targets;
      targets.push_back(std::move(t));
      end_targets(targets, grace, default_reach());
      if (done)
        done(targets.front().result);
    };
  } else {
    // A start under way holds the record: end_scope waits for it.
    job = [scope = std::move(scope), grace, done = std::move(done)] {
      auto result = end_scope(scope, grace);
      if (done)
        done(result);
    };
  }
  if (detach)
    queue_ending(sys, std::move(job));
  else
    run_blocking(sys, std::move(job), false);
}

} // namespace heaven
