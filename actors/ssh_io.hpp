/// What an SSH session does around libssh2 (see actors/ssh.hpp): the cancel
/// switch, the TCP connection, and reading a command's output lines. Plain
/// POSIX, no libssh2. Private to actors/ssh*.cpp.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/line_splitter.hpp"
#include "messages/types.hpp"

namespace heaven::ssh_detail {

using clock_type = std::chrono::steady_clock;

/// The first line every command prints: its shell's pid, which is also its
/// process group (sshd starts each session's command with setsid).
inline constexpr std::string_view pid_marker = "heaven-ssh-pid=";

/// A one-way switch the front actor trips and the worker's poll() sees.
struct cancel_switch {
  std::atomic<bool> tripped{false};
  /// An eventfd that becomes readable when the switch trips.
  int fd;

  cancel_switch();
  cancel_switch(const cancel_switch&) = delete;
  cancel_switch& operator=(const cancel_switch&) = delete;
  ~cancel_switch();

  /// Trips the switch (once; it stays tripped).
  void trip();
};

/// Opens a non-blocking TCP connection to `host`:`port`, trying each
/// address until one connects, within `deadline` (which is
/// `timeout_ms` from the start, for the message) and until `sw` trips.
/// Returns the socket, or -1 and sets `why` ("cancelled" when tripped).
int connect_tcp(const std::string& host, int port, int64_t timeout_ms,
                clock_type::time_point deadline, const cancel_switch& sw,
                std::string& why);

/// How long a poll() may wait for `deadline` (one millisecond past it, so
/// that it has passed when poll returns empty), at most `cap_ms`; nothing
/// when the deadline has passed.
std::optional<int> poll_timeout(clock_type::time_point deadline,
                                int64_t cap_ms);

/// The shell script that ends remote process group `pid`: SIGTERM, up to
/// `grace_ms` for it to go, then SIGKILL.
std::string stop_script(long pid, int64_t grace_ms);

/// A command's output: splits stdout and stderr into lines and hands each
/// on, except the pid marker line (see pid_marker), which it takes.
class command_output {
public:
  /// Receives each line and the stream it came from.
  using sink = std::function<void(stream, std::string_view)>;

  explicit command_output(sink emit) : emit_(std::move(emit)) {
  }

  /// Forgets the last command: its partial lines and its pid.
  void reset();

  /// Appends output of stream `index` (0 stdout, 1 stderr) and hands on
  /// each complete line.
  void feed(int index, const char* data, std::size_t len);

  /// Hands on the partial last line of each stream.
  void flush();

  /// The running command's remote process group (0: not known yet).
  long remote_pid() const {
    return remote_pid_;
  }

private:
  void on_line(int index, std::string_view text);

  sink emit_;
  long remote_pid_ = 0;
  std::array<line_splitter, 2> streams_;
};

} // namespace heaven::ssh_detail
