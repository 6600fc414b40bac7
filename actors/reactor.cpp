/// spawn_process: heaven's process reactor, one thread that starts the
/// children and reads their output, and one small actor per child that
/// carries its messages (see actors/process.hpp).
#include "actors/process.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "base/thread_name.hpp"
#include "messages/atoms.hpp"

namespace heaven {

namespace {

using namespace process_detail;
using clock = std::chrono::steady_clock;

/// The actor of one child: hands its start, its batches of lines (with
/// their size in bytes) and its end on to the owner and the sink, and tells
/// the reactor when a batch is answered.
using runner_actor
  = caf::typed_actor<caf::reacts_to<started_atom, int32_t>,
                     caf::reacts_to<log_atom, std::vector<log_line>, uint64_t>,
                     caf::reacts_to<exited_atom, exit_info>>;

/// What the reactor is told from other threads.
struct start_order {
  uint64_t id = 0;
  process_spec spec;
  runner_actor runner;
  bool has_sink = false;
};

/// A child the reactor runs.
struct running {
  uint64_t id = 0;
  runner_actor runner;
  bool has_sink = false;
  std::unique_ptr<child_process> child;
  int pipes[2] = {-1, -1};
  stream_lines splitters[2] = {{stream::out, {}}, {stream::err, {}}};
  bool reaped = false;
  int status = 0;
  clock::time_point reaped_at;
  clock::time_point last_data;
  /// Time spent paused since it was reaped: the drain limits do not count
  /// it (a slow log is not a grandchild holding the pipes).
  clock::duration paused_since_reap{};
  clock::time_point paused_at;
  bool paused = false;
  std::vector<log_line> batch;
  uint64_t batch_bytes = 0;
  /// Bytes of lines sent and not answered yet.
  uint64_t unanswered = 0;
};

constexpr uint64_t exit_kind = 2;

class reactor {
public:
  /// The reactor, its thread started on the first call.
  static reactor& get() {
    // Never destroyed: the thread runs until the process ends.
    static auto* r = new reactor;
    return *r;
  }

  uint64_t next_id() {
    std::lock_guard guard{mtx_};
    return next_id_++;
  }

  void start(start_order order) {
    {
      std::lock_guard guard{mtx_};
      starts_.push_back(std::move(order));
    }
    wake();
  }

  void answered(uint64_t id, uint64_t bytes) {
    {
      std::lock_guard guard{mtx_};
      answers_.emplace_back(id, bytes);
    }
    wake();
  }

private:
  reactor() {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (wake_fd_ < 0 || ep_ < 0) {
      spdlog::critical("heaven cannot run processes: {}", std::strerror(errno));
      std::abort();
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0; // Child ids start at 1.
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_fd_, &ev);
    // The thread takes no signal of heaven's; it lives as long as heaven, so
    // the death signal of the children it starts fires only when heaven
    // dies.
    sigset_t all, old;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread{[this] { loop(); }}.detach();
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  void wake() {
    uint64_t one = 1;
    while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  void watch(running& c, int i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c.id << 2 | static_cast<uint64_t>(i);
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, c.pipes[i], &ev);
  }

  void unwatch(int fd) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
  }

  void close_pipe(running& c, int i) {
    if (c.pipes[i] < 0)
      return;
    if (!c.paused)
      unwatch(c.pipes[i]);
    ::close(c.pipes[i]);
    c.pipes[i] = -1;
  }

  void do_start(start_order& order) {
    exit_info failed;
    child_options opts;
    auto tell_failure = [&] {
      caf::anon_send(order.runner, exited_atom::value, std::move(failed));
    };
    if (!child_options_for(order.spec, opts, failed.error)) {
      tell_failure();
      return;
    }
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      failed.error = std::string{"pipe: "} + std::strerror(errno);
      tell_failure();
      return;
    }
    if (::pipe2(err, O_CLOEXEC) != 0) {
      failed.error = std::string{"pipe: "} + std::strerror(errno);
      ::close(out[0]);
      ::close(out[1]);
      tell_failure();
      return;
    }
    opts.stdio[1] = out[1];
    opts.stdio[2] = err[1];
    // This thread never ends: the death signal fires when heaven dies.
    opts.death_signal = SIGKILL;
    std::string why;
    auto child = start_child(opts, why);
    ::close(out[1]);
    ::close(err[1]);
    if (!child) {
      ::close(out[0]);
      ::close(err[0]);
      auto& name = order.spec.argv[0];
      spdlog::warn("heaven could not start {}: {}", name, why);
      failed.error = "cannot run " + name + ": " + why;
      tell_failure();
      return;
    }
    caf::anon_send(order.runner, started_atom::value,
                   static_cast<int32_t>(child->pid()));
    auto c = std::make_unique<running>();
    c->id = order.id;
    c->runner = std::move(order.runner);
    c->has_sink = order.has_sink;
    c->pipes[0] = out[0];
    c->pipes[1] = err[0];
    c->last_data = clock::now();
    for (int i = 0; i < 2; ++i) {
      ::fcntl(c->pipes[i], F_SETFL, ::fcntl(c->pipes[i], F_GETFL) | O_NONBLOCK);
      watch(*c, i);
    }
    if (int fd = child->exit_fd(); fd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = c->id << 2 | exit_kind;
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    } else {
      // Without a pidfd (old kernels) the child is checked on a tick.
      timed_.insert(c->id);
    }
    c->child = std::move(child);
    touched_.insert(c->id);
    children_.emplace(c->id, std::move(c));
  }

  void try_reap(running& c, clock::time_point now) {
    if (c.reaped)
      return;
    if (auto s = c.child->try_wait()) {
      c.status = *s;
      c.reaped = true;
      c.reaped_at = c.last_data = now;
      if (int fd = c.child->exit_fd(); fd >= 0)
        unwatch(fd);
      timed_.insert(c.id);
    }
  }

  /// Reads one chunk of pipe `i`: one per round keeps every pipe of every
  /// child flowing.
  void read_once(running& c, int i, clock::time_point now) {
    if (c.pipes[i] < 0 || c.paused)
      return;
    for (;;) {
      auto got = ::read(c.pipes[i], chunk_.data(), chunk_.size());
      if (got > 0) {
        c.last_data = now;
        c.splitters[i].feed(chunk_.data(), static_cast<size_t>(got),
                            [&](log_line line) { add(c, std::move(line)); });
      } else if (got == 0) {
        close_pipe(c, i);
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        close_pipe(c, i);
      }
      return;
    }
  }

  void add(running& c, log_line line) {
    if (!c.has_sink)
      return;
    c.batch_bytes += line.text.size() + 1;
    c.batch.push_back(std::move(line));
    if (c.batch_bytes >= output_batch)
      flush(c);
  }

  void flush(running& c) {
    if (c.batch.empty())
      return;
    c.unanswered += c.batch_bytes;
    caf::anon_send(c.runner, log_atom::value, std::move(c.batch),
                   c.batch_bytes);
    c.batch = {};
    c.batch_bytes = 0;
  }

  void pause(running& c, clock::time_point now) {
    if (c.paused)
      return;
    for (auto fd : c.pipes)
      if (fd >= 0)
        unwatch(fd);
    c.paused = true;
    c.paused_at = now;
  }

  void resume(running& c, clock::time_point now) {
    if (!c.paused)
      return;
    c.paused = false;
    for (int i = 0; i < 2; ++i)
      if (c.pipes[i] >= 0)
        watch(c, i);
    if (c.reaped)
      c.paused_since_reap += now - std::max(c.paused_at, c.reaped_at);
    c.last_data = now;
  }

  /// Whether a reaped child's pipes, held open by what it left behind, are
  /// read long enough (see drain_quiet, drain_max).
  static bool drained(const running& c, clock::time_point now) {
    return c.reaped && !c.paused
           && (now - c.last_data >= drain_quiet
               || now - c.reaped_at - c.paused_since_reap >= drain_max);
  }

  /// After a round: sends its lines, pauses or ends child `id`.
  void settle(uint64_t id, clock::time_point now) {
    auto it = children_.find(id);
    if (it == children_.end())
      return;
    auto& c = *it->second;
    if (!c.reaped && c.child->exit_fd() < 0)
      try_reap(c, now);
    if (drained(c, now)) {
      close_pipe(c, 0);
      close_pipe(c, 1);
    }
    bool open = c.pipes[0] >= 0 || c.pipes[1] >= 0;
    if (!open && c.reaped) {
      auto emit = [&](log_line line) { add(c, std::move(line)); };
      for (auto& s : c.splitters)
        s.finish(emit);
      flush(c);
      // The runner tells the owner once every batch is answered.
      caf::anon_send(c.runner, exited_atom::value, decode(c.status));
      timed_.erase(id);
      children_.erase(it);
      return;
    }
    flush(c);
    if (c.unanswered >= output_window)
      pause(c, now);
    if (!c.reaped && c.child->exit_fd() >= 0)
      timed_.erase(id);
  }

  /// How long epoll may wait: until the next drain limit or tick.
  int timeout(clock::time_point now) {
    if (timed_.empty())
      return -1;
    auto next = clock::time_point::max();
    for (auto id : timed_) {
      auto it = children_.find(id);
      if (it == children_.end())
        continue;
      auto& c = *it->second;
      if (!c.reaped) {
        next = std::min(next, now + std::chrono::milliseconds(100));
      } else if (!c.paused) {
        next = std::min({next, c.last_data + drain_quiet,
                         c.reaped_at + c.paused_since_reap + drain_max});
      }
    }
    if (next == clock::time_point::max())
      return -1;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now)
                .count();
    return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 1000));
  }

  void loop() {
    name_this_thread("heaven.reactor");
    std::vector<epoll_event> events(256);
    for (;;) {
      auto n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                            timeout(clock::now()));
      if (n < 0) {
        if (errno != EINTR)
          spdlog::error("the process reactor's epoll_wait failed: {}",
                        std::strerror(errno));
        continue;
      }
      auto now = clock::now();
      for (int j = 0; j < n; ++j) {
        auto data = events[j].data.u64;
        if (data == 0) {
          uint64_t count;
          while (::read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
          }
          continue;
        }
        auto id = data >> 2;
        auto it = children_.find(id);
        if (it == children_.end())
          continue;
        auto kind = data & 3;
        if (kind == exit_kind)
          try_reap(*it->second, now);
        else
          read_once(*it->second, static_cast<int>(kind), now);
        touched_.insert(id);
      }
      std::vector<start_order> starts;
      std::vector<std::pair<uint64_t, uint64_t>> answers;
      {
        std::lock_guard guard{mtx_};
        starts.swap(starts_);
        answers.swap(answers_);
      }
      for (auto& [id, bytes] : answers) {
        auto it = children_.find(id);
        if (it == children_.end())
          continue;
        auto& c = *it->second;
        c.unanswered -= std::min(c.unanswered, bytes);
        if (c.unanswered < output_window)
          resume(c, now);
        touched_.insert(id);
      }
      for (auto& order : starts)
        do_start(order);
      touched_.insert(timed_.begin(), timed_.end());
      auto touched = std::move(touched_);
      touched_.clear();
      for (auto id : touched)
        settle(id, now);
    }
  }

  // -- shared with other threads (under mtx_) --------------------------------
  std::mutex mtx_;
  uint64_t next_id_ = 1;
  std::vector<start_order> starts_;
  std::vector<std::pair<uint64_t, uint64_t>> answers_;
  int wake_fd_ = -1;

  // -- the reactor thread's own ----------------------------------------------
  int ep_ = -1;
  std::unordered_map<uint64_t, std::unique_ptr<running>> children_;
  /// Children to look at every round: unreaped without a pidfd, or reaped
  /// with pipes still open (their drain limits).
  std::set<uint64_t> timed_;
  /// Children that something happened to this round.
  std::set<uint64_t> touched_;
  std::vector<char> chunk_ = std::vector<char>(64 * 1024);
};

struct runner_state {
  static inline const char* name = "process_runner";
  uint64_t id = 0;
  output_sink sink;
  process_owner owner;
  /// Batches sent to the sink and not answered yet.
  size_t in_flight = 0;
  std::optional<exit_info> ended;
};

using runner_ptr = runner_actor::stateful_pointer<runner_state>;

void finish_if_done(runner_ptr self) {
  auto& st = self->state;
  if (st.in_flight > 0 || !st.ended)
    return;
  if (st.owner)
    self->send(st.owner, exited_atom::value, std::move(*st.ended));
  self->quit();
}

runner_actor::behavior_type process_runner(runner_ptr self, uint64_t id,
                                           output_sink sink,
                                           process_owner owner) {
  self->state.id = id;
  self->state.sink = std::move(sink);
  self->state.owner = std::move(owner);
  return {
    [=](started_atom, int32_t pid) {
      if (self->state.owner)
        self->send(self->state.owner, started_atom::value, pid);
    },
    [=](log_atom, std::vector<log_line>& lines, uint64_t bytes) {
      auto& st = self->state;
      if (!st.sink) {
        reactor::get().answered(st.id, bytes);
        return;
      }
      ++st.in_flight;
      // An error (the sink is gone) frees the child just as well.
      auto done = [=] {
        --self->state.in_flight;
        reactor::get().answered(self->state.id, bytes);
        finish_if_done(self);
      };
      self->request(st.sink, caf::infinite, log_atom::value, std::move(lines))
        .then([=] { done(); }, [=](caf::error&) { done(); });
    },
    [=](exited_atom, exit_info& info) {
      self->state.ended = std::move(info);
      finish_if_done(self);
    },
  };
}

} // namespace

void spawn_process(caf::actor_system& sys, process_spec spec, output_sink lines,
                   process_owner owner) {
  auto& r = reactor::get();
  start_order order;
  order.id = r.next_id();
  order.has_sink = static_cast<bool>(lines);
  order.spec = std::move(spec);
  order.runner = sys.spawn(process_runner, order.id, std::move(lines),
                           std::move(owner));
  r.start(std::move(order));
}

} // namespace heaven
