/// The heaven `heaven loadtest` starts when it is given no --target.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace heaven::loadtest {

/// `bytes` random bytes as lower-case hex (a fresh webhook secret).
std::string random_hex(std::size_t bytes);

/// A temporary directory named `<prefix>XXXXXX`, removed with what it
/// holds on destruction (or, after a kill -9, by the next one of that
/// prefix: its owner.pid names the process that made it).
struct temp_dir {
  explicit temp_dir(const std::string& prefix);
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  std::filesystem::path path;
};

/// A `heaven serve` of loadtest's own: a temporary data dir, any free port
/// on 127.0.0.1, no config file, a fresh secret. Stopped and removed on
/// destruction.
class local_heaven {
public:
  /// Starts `binary serve` with the webhook secret `secret` and the
  /// NAME=value settings `extra_env`; throws std::runtime_error (with the
  /// end of heaven's log) when it does not start.
  local_heaven(const std::string& binary, const std::string& secret,
               const std::vector<std::string>& extra_env);
  ~local_heaven();
  local_heaven(const local_heaven&) = delete;
  local_heaven& operator=(const local_heaven&) = delete;

  uint16_t port() const {
    return port_;
  }

  /// Stops heaven (SIGTERM; SIGKILL after a minute) and removes its data.
  void stop();

private:
  std::string tail_of_log() const;

  std::filesystem::path data_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  /// Reads heaven's stdout, so that heaven never blocks on the pipe.
  std::thread drain_;
  std::atomic<bool> draining_{false};
};

} // namespace heaven::loadtest
