#include "tools/loadtest_engine.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "tools/loadtest_events.hpp"
#include "tools/loadtest_http.hpp"

namespace heaven::loadtest {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

volatile std::sig_atomic_t stop_asked = 0;

extern "C" void on_stop_signal(int) {
  stop_asked = 1;
}

enum class conn_state { closed, connecting, idle, busy };

struct connection {
  int fd = -1;
  conn_state state = conn_state::closed;
  bool in_idle = false;
  std::string out;
  std::size_t out_off = 0;
  std::string in;
  /// When the request in flight was due (open loop) or sent.
  int64_t start = 0;
  int64_t sent_at = 0;
  /// Its number.
  uint64_t n = 0;
  int64_t retry_at = 0;
};

class engine {
public:
  engine(const run_options& opts, request_maker& maker)
    : opts_(opts), maker_(maker),
      conns_(static_cast<std::size_t>(std::max(1, opts.connections))) {
  }

  ~engine() {
    for (auto& c : conns_)
      if (c.fd >= 0)
        close(c.fd);
    if (timer_ >= 0)
      close(timer_);
    if (ep_ >= 0)
      close(ep_);
  }

  run_results run();

private:
  void resolve();
  void open_connection(std::size_t i, int64_t now);
  void drop(connection& c, int64_t now, int64_t retry_at);
  void fail(connection& c, int64_t now, const std::string& why);
  void on_event(std::size_t i, uint32_t events);
  void on_readable(connection& c, bool hangup);
  void flush(connection& c);
  void send_next(connection& c, int64_t now, int64_t start);
  void dispatch(int64_t now);
  void finish_answer(connection& c, int status, int64_t now);
  void arm_timer(int64_t at);
  void print_progress(int64_t now, bool last);
  second_figures& second_at(int64_t now);

  bool open_loop() const {
    return opts_.rate > 0;
  }
  int64_t due(uint64_t n) const {
    return t0_
           + static_cast<int64_t>(static_cast<double>(n) * ns_per_s
                                  / opts_.rate);
  }

  const run_options& opts_;
  request_maker& maker_;
  std::vector<connection> conns_;
  std::vector<std::size_t> idle_;
  /// The target the next request should go to (several targets).
  std::size_t turn_ = 0;
  /// The targets' addresses; connection i goes to addrs_[i % size].
  struct address {
    sockaddr_storage addr{};
    socklen_t len = 0;
    std::string name;
  };
  std::vector<address> addrs_;
  const address& address_of(std::size_t i) const {
    return addrs_[i % addrs_.size()];
  }
  int ep_ = -1;
  int timer_ = -1;
  int64_t armed_ = -1;
  int64_t t0_ = 0;
  int64_t send_end_ = 0;
  int64_t deadline_ = 0;
  int64_t last_send_ = 0;
  int64_t next_progress_ = 0;
  uint64_t next_n_ = 0;
  uint64_t total_ = 0;
  std::size_t busy_ = 0;
  std::size_t closed_ = 0;
  bool sending_ = true;
  run_results res_;
};

void engine::resolve() {
  std::vector<endpoint> targets{{opts_.host, opts_.port}};
  targets.insert(targets.end(), opts_.more_targets.begin(),
                 opts_.more_targets.end());
  for (auto& t : targets) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    auto port = std::to_string(t.port);
    if (int rc = getaddrinfo(t.host.c_str(), port.c_str(), &hints, &found);
        rc != 0 || !found)
      throw std::runtime_error("cannot resolve " + t.host + ": "
                               + gai_strerror(rc));
    address a;
    std::memcpy(&a.addr, found->ai_addr, found->ai_addrlen);
    a.len = found->ai_addrlen;
    a.name = t.host + ":" + port;
    freeaddrinfo(found);
    addrs_.push_back(std::move(a));
  }
}

void engine::open_connection(std::size_t i, int64_t now) {
  auto& c = conns_[i];
  auto& to = address_of(i);
  c.fd = socket(to.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
  if (c.fd < 0) {
    fail(c, now, std::string{"socket: "} + std::strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = i;
  epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  c.in.clear();
  --closed_;
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&to.addr), to.len) == 0
      || errno == EINPROGRESS) {
    c.state = conn_state::connecting;
    return;
  }
  ++res_.connect_errors;
  fail(c, now, std::string{"connect: "} + std::strerror(errno));
}

/// Closes `c`; a new connection replaces it from `retry_at` on.
void engine::drop(connection& c, int64_t now, int64_t retry_at) {
  if (c.state == conn_state::busy) {
    --busy_;
    ++res_.errors;
    ++second_at(now).errors;
  }
  if (c.fd >= 0)
    close(c.fd);
  c.fd = -1;
  if (c.state != conn_state::closed)
    ++closed_;
  c.state = conn_state::closed;
  c.retry_at = retry_at;
}

void engine::fail(connection& c, int64_t now, const std::string& why) {
  if (res_.first_error.empty())
    res_.first_error = why;
  // A target that refuses is not hammered: the next attempt waits 100 ms.
  drop(c, now, now + ns_per_s / 10);
}

second_figures& engine::second_at(int64_t now) {
  auto s = static_cast<std::size_t>(std::max<int64_t>(0, now - t0_) / ns_per_s);
  if (res_.seconds.size() <= s)
    res_.seconds.resize(s + 1);
  return res_.seconds[s];
}

void engine::send_next(connection& c, int64_t now, int64_t start) {
  c.out.clear();
  c.out_off = 0;
  c.n = next_n_;
  maker_.append(next_n_++, c.out);
  c.start = start;
  c.sent_at = now;
  c.state = conn_state::busy;
  ++busy_;
  ++res_.sent;
  ++second_at(now).sent;
  last_send_ = now;
  flush(c);
}

void engine::flush(connection& c) {
  while (c.out_off < c.out.size()) {
    auto n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                    MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return; // EPOLLOUT (edge-triggered) says when to go on.
    fail(c, now_ns(), std::string{"send: "} + std::strerror(errno));
    return;
  }
}

void engine::finish_answer(connection& c, int status, int64_t now) {
  auto us = static_cast<uint64_t>(std::max<int64_t>(0, now - c.start) / 1000);
  ++res_.answered;
  ++res_.answers[status];
  res_.latency.record(us);
  auto& sec = second_at(now);
  ++sec.answered;
  sec.latency.record(us);
  --busy_;
  c.state = conn_state::idle;
  if (opts_.on_answer)
    opts_.on_answer(c.n, c.sent_at, status);
}

void engine::on_readable(connection& c, bool hangup) {
  bool peer_closed = false;
  char buf[16384];
  while (true) {
    auto n = ::recv(c.fd, buf, sizeof(buf), 0);
    if (n > 0) {
      c.in.append(buf, static_cast<std::size_t>(n));
      // A short read took all there was: what comes later is a new edge
      // (as nginx reads), unless the peer's close came with it.
      if (static_cast<std::size_t>(n) < sizeof(buf) && !hangup)
        break;
      continue;
    }
    if (n == 0) {
      peer_closed = true;
      break;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      break;
    fail(c, now_ns(), std::string{"recv: "} + std::strerror(errno));
    return;
  }
  auto now = now_ns();
  while (c.state == conn_state::busy) {
    std::string_view in = c.in;
    auto head_end = in.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      if (in.size() > (1 << 20))
        return fail(c, now, "an answer's head is over 1 MiB");
      break;
    }
    response_head h;
    if (!parse_head(in, head_end, h))
      return fail(c, now, "the target's answer is not HTTP/1.x");
    std::size_t end = 0;
    if (h.status / 100 == 1) {
      c.in.erase(0, h.body_start); // 100 Continue and the like
      continue;
    }
    if (h.chunked) {
      end = chunked_end(in, h.body_start);
      if (end == std::string_view::npos)
        return fail(c, now, "a malformed chunked answer");
    } else if (h.content_length >= 0) {
      auto want = h.body_start + static_cast<std::size_t>(h.content_length);
      end = in.size() >= want ? want : 0;
    } else if (h.status == 204 || h.status == 304) {
      end = h.body_start;
    } else if (peer_closed) {
      end = in.size(); // the body ends with the connection
      h.close = true;
    }
    if (end == 0)
      break;
    finish_answer(c, h.status, now);
    c.in.erase(0, end);
    if (h.close) {
      drop(c, now, now);
      return;
    }
  }
  if (peer_closed) {
    if (c.state == conn_state::busy)
      return fail(c, now, "the target closed a connection without answering");
    drop(c, now, now);
    return;
  }
  if (c.state == conn_state::idle && !c.in_idle) {
    c.in_idle = true;
    idle_.push_back(static_cast<std::size_t>(&c - conns_.data()));
  }
}

void engine::on_event(std::size_t i, uint32_t events) {
  auto& c = conns_[i];
  if (c.fd < 0)
    return;
  if (c.state == conn_state::connecting) {
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      ++res_.connect_errors;
      fail(c, now_ns(),
           std::string{"cannot connect to "} + address_of(i).name + ": "
             + std::strerror(err ? err : ECONNREFUSED));
      return;
    }
    if (!(events & EPOLLOUT))
      return;
    c.state = conn_state::idle;
    if (!c.in_idle) {
      c.in_idle = true;
      idle_.push_back(i);
    }
  }
  if ((events & EPOLLOUT) && c.state == conn_state::busy)
    flush(c);
  if (c.fd >= 0 && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    on_readable(c, (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
}

void engine::dispatch(int64_t now) {
  if (closed_ > 0 && sending_)
    for (std::size_t i = 0; i < conns_.size(); ++i)
      if (conns_[i].state == conn_state::closed && conns_[i].retry_at <= now)
        open_connection(i, now);
  while (sending_ && !idle_.empty()) {
    if (open_loop() && (next_n_ >= total_ || due(next_n_) > now))
      break;
    if (!open_loop() && now >= send_end_)
      break;
    // The newest idle connection; with several targets, the newest idle
    // one to the target whose turn it is, if any (requests round-robin).
    auto pick = idle_.size() - 1;
    if (addrs_.size() > 1)
      for (std::size_t k = idle_.size(); k-- > 0;)
        if (idle_[k] % addrs_.size() == turn_) {
          pick = k;
          break;
        }
    auto i = idle_[pick];
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(pick));
    auto& c = conns_[i];
    c.in_idle = false;
    if (c.state != conn_state::idle)
      continue;
    turn_ = (i + 1) % addrs_.size();
    send_next(c, now, open_loop() ? due(next_n_) : now);
  }
}

void engine::arm_timer(int64_t at) {
  if (at == armed_)
    return;
  armed_ = at;
  itimerspec spec{};
  spec.it_value.tv_sec = at / ns_per_s;
  spec.it_value.tv_nsec = at % ns_per_s;
  timerfd_settime(timer_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void engine::print_progress(int64_t now, bool last) {
  double elapsed = static_cast<double>(now - t0_) / ns_per_s;
  auto s = static_cast<std::size_t>(std::max<int64_t>(0, now - t0_) / ns_per_s);
  // The rate of the last whole second.
  uint64_t recent = s >= 1 && s - 1 < res_.seconds.size()
                      ? res_.seconds[s - 1].answered
                      : 0;
  std::fprintf(
    stderr,
    "%s%6.1f s  sent %llu  answered %llu  %llu/s  p50 %.2f ms  "
    "p99 %.2f ms  errors %llu%s",
    opts_.progress_tty ? "\r\033[K" : "", elapsed,
    static_cast<unsigned long long>(res_.sent),
    static_cast<unsigned long long>(res_.answered),
    static_cast<unsigned long long>(recent),
    res_.latency.percentile(50) / 1000.0, res_.latency.percentile(99) / 1000.0,
    static_cast<unsigned long long>(res_.errors + res_.connect_errors),
    opts_.progress_tty && !last ? "" : "\n");
  std::fflush(stderr);
}

run_results engine::run() {
  resolve();
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (ep_ < 0 || timer_ < 0)
    throw std::runtime_error("cannot make an epoll or timer descriptor");
  epoll_event tev{};
  // Edge-triggered: each expiry wakes the loop once, with no read needed.
  tev.events = EPOLLIN | EPOLLET;
  tev.data.u64 = UINT64_MAX;
  epoll_ctl(ep_, EPOLL_CTL_ADD, timer_, &tev);
  std::vector<epoll_event> events(conns_.size() + 1);

  // Every connection is opened before t0: the first requests do not wait
  // for handshakes.
  closed_ = conns_.size();
  auto start = now_ns();
  t0_ = start;
  for (std::size_t i = 0; i < conns_.size(); ++i)
    open_connection(i, start);
  auto connecting = [&] {
    return std::any_of(conns_.begin(), conns_.end(), [](const connection& c) {
      return c.state == conn_state::connecting;
    });
  };
  while (connecting() && now_ns() - start < 10 * ns_per_s) {
    int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                       100);
    for (int k = 0; k < n; ++k)
      if (events[k].data.u64 != UINT64_MAX)
        on_event(events[k].data.u64, events[k].events);
  }
  if (idle_.empty()) {
    auto why = res_.first_error.empty()
                 ? "cannot connect to " + address_of(0).name + " within 10 s"
                 : res_.first_error;
    throw std::runtime_error(why);
  }
  res_ = run_results{};

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  stop_asked = 0;

  t0_ = now_ns();
  auto duration = static_cast<int64_t>(opts_.duration_s * ns_per_s);
  send_end_ = t0_ + duration;
  deadline_ = send_end_ + static_cast<int64_t>(opts_.timeout_s * ns_per_s);
  if (open_loop())
    total_ = static_cast<uint64_t>(opts_.rate * opts_.duration_s + 0.5);
  next_progress_ = t0_ + ns_per_s;
  while (true) {
    auto now = now_ns();
    if (stop_asked && sending_) {
      sending_ = false;
      res_.interrupted = true;
    }
    if (sending_ && (open_loop() ? next_n_ >= total_ : now >= send_end_))
      sending_ = false;
    dispatch(now);
    if (!sending_ && busy_ == 0)
      break;
    if (now >= deadline_)
      break;
    if (opts_.progress && now >= next_progress_) {
      print_progress(now, false);
      next_progress_ += ns_per_s * ((now - next_progress_) / ns_per_s + 1);
    }
    auto wake = std::min(deadline_,
                         opts_.progress ? next_progress_ : deadline_);
    if (sending_ && !idle_.empty())
      wake = std::min(wake, open_loop() ? due(next_n_) : send_end_);
    if (sending_ && closed_ > 0)
      wake = std::min(wake, now + ns_per_s / 10);
    if (wake > now) {
      arm_timer(wake);
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                         -1);
      for (int k = 0; k < n; ++k) {
        if (events[k].data.u64 == UINT64_MAX) {
          armed_ = -1;
          continue;
        }
        on_event(events[k].data.u64, events[k].events);
      }
    }
  }
  auto end = now_ns();
  // What is still in flight was never answered.
  for (auto& c : conns_)
    if (c.state == conn_state::busy) {
      if (res_.first_error.empty())
        res_.first_error = "no answer within the timeout";
      drop(c, end, end);
    }
  if (open_loop() && !res_.interrupted)
    res_.unsent = total_ - next_n_;
  if (opts_.progress)
    print_progress(end, true);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  double asked = opts_.duration_s;
  double span = static_cast<double>(last_send_ - t0_) / ns_per_s;
  if (open_loop() && res_.sent > 0)
    span += 1.0 / opts_.rate; // the last request's own slot
  res_.send_seconds = res_.interrupted ? span : std::max(asked, span);
  res_.elapsed_seconds = static_cast<double>(end - t0_) / ns_per_s;
  res_.achieved_rate = res_.send_seconds > 0
                         ? static_cast<double>(res_.sent) / res_.send_seconds
                         : 0;
  return std::move(res_);
}

/// Each connection is a descriptor: use all the process may have.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

} // namespace

run_results run_load(const run_options& opts, request_maker& maker) {
  raise_fd_limit();
  engine e{opts, maker};
  return e.run();
}

} // namespace heaven::loadtest
