/// Starting the real `heaven serve` binary as a child process and learning
/// its port from its ready line: shared by the tests, the benchmarks and
/// `heaven loadtest` (which links this file alone, without the stand-ins).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace heaven::test {

/// A `heaven serve` child process just started by `launch_heaven`.
struct launched_heaven {
  pid_t pid = -1;
  /// The port heaven listens on; 0 when its stdout ended first.
  uint16_t port = 0;
  /// The read end of heaven's stdout, still open: the caller closes or
  /// drains it.
  int stdout_fd = -1;
};

/// Starts `binary serve` with exactly the NAME=value environment `env`, its
/// stdout a pipe, its stderr the file `stderr_file` and no other descriptor
/// of ours, then reads its stdout until "heaven is ready on port N".
/// Throws std::runtime_error when the pipe or fork fails. With
/// `die_with_us`, heaven gets SIGTERM when the calling thread ends (the
/// kernel's parent-death signal, so even a SIGKILLed caller leaves no
/// heaven behind): call it from a thread that lives as long as heaven
/// should.
launched_heaven launch_heaven(const std::string& binary,
                              const std::vector<std::string>& env,
                              const std::filesystem::path& stderr_file,
                              bool die_with_us = false);

} // namespace heaven::test
