#include "actors/ssh_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace heaven::ssh_detail {

namespace {

/// What ended waiting for a connection.
enum class waited { connected, cancelled, deadline, failed };

/// Waits until the connecting socket `fd` is writable.
waited wait_connected(int fd, clock_type::time_point deadline,
                      const cancel_switch& sw) {
  std::array<pollfd, 2> fds{pollfd{fd, POLLOUT, 0}, pollfd{sw.fd, POLLIN, 0}};
  for (;;) {
    if (sw.tripped)
      return waited::cancelled;
    auto ms = poll_timeout(deadline, 1000);
    if (!ms)
      return waited::deadline;
    auto rc = ::poll(fds.data(), 2, *ms);
    if (rc < 0 && errno != EINTR)
      return waited::failed;
    if (rc > 0 && fds[0].revents != 0)
      return waited::connected;
  }
}

} // namespace

std::optional<int> poll_timeout(clock_type::time_point deadline,
                                int64_t cap_ms) {
  auto now = clock_type::now();
  if (now >= deadline)
    return std::nullopt;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline
                                                                    - now);
  return static_cast<int>(std::min<int64_t>(left.count() + 1, cap_ms));
}

// -- cancel_switch ------------------------------------------------------------

cancel_switch::cancel_switch() : fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
}

cancel_switch::~cancel_switch() {
  if (fd >= 0)
    ::close(fd);
}

void cancel_switch::trip() {
  if (!tripped.exchange(true) && fd >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof(one));
  }
}

// -- connecting ---------------------------------------------------------------

int connect_tcp(const std::string& host, int port, int64_t timeout_ms,
                clock_type::time_point deadline, const cancel_switch& sw,
                std::string& why) {
  auto where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (auto rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    why = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard{found,
                                                             ::freeaddrinfo};
  why = "cannot connect to " + where;
  for (auto ai = found; ai != nullptr; ai = ai->ai_next) {
    auto fd = ::socket(ai->ai_family,
                       ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      return fd;
    if (errno != EINPROGRESS) {
      why = "cannot connect to " + where + ": " + std::strerror(errno);
      ::close(fd);
      continue;
    }
    auto how = wait_connected(fd, deadline, sw);
    if (how == waited::connected) {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0)
        return fd;
      why = "cannot connect to " + where + ": " + std::strerror(err);
    } else if (how == waited::cancelled) {
      why = "cancelled";
    } else if (how == waited::failed) {
      why = "cannot connect to " + where + ": " + std::strerror(errno);
    } else {
      why = "connecting to " + where + " timed out after "
            + std::to_string(timeout_ms) + " ms";
    }
    ::close(fd);
    if (how != waited::connected)
      break;
  }
  return -1;
}

std::string stop_script(long remote_pid, int64_t grace_ms) {
  auto pid = std::to_string(remote_pid);
  auto rounds = std::to_string(std::max<int64_t>(grace_ms, 0) / 100);
  return "kill -s TERM -- -" + pid
         + " 2>/dev/null || exit 0; i=0;"
           " while [ $i -lt "
         + rounds + " ] && kill -s 0 -- -" + pid
         + " 2>/dev/null; do sleep 0.1; i=$((i+1)); done;"
           " kill -s KILL -- -"
         + pid + " 2>/dev/null; exit 0";
}

// -- command_output -----------------------------------------------------------

void command_output::reset() {
  remote_pid_ = 0;
  for (auto& x : streams_)
    x.clear();
}

void command_output::on_line(int index, std::string_view text) {
  if (index == 0 && remote_pid_ == 0
      && text.substr(0, pid_marker.size()) == pid_marker) {
    auto digits = text.substr(pid_marker.size());
    if (!digits.empty() && digits.size() < 10
        && std::all_of(digits.begin(), digits.end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
      remote_pid_ = std::stol(std::string{digits});
      return;
    }
  }
  emit_(index == 0 ? stream::out : stream::err, text);
}

void command_output::feed(int index, const char* data, std::size_t len) {
  streams_[static_cast<std::size_t>(index)].feed(std::string_view{data, len},
                                                 [&](std::string_view line) {
                                                   on_line(index, line);
                                                 });
}

void command_output::flush() {
  for (int i = 0; i < 2; ++i)
    streams_[static_cast<std::size_t>(i)].finish(
      [&](std::string_view line) { on_line(i, line); });
}

} // namespace heaven::ssh_detail
