/// Swapping spdlog's default logger in tests.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include <spdlog/spdlog.h>

namespace heaven::test {

/// Makes `previous` the default logger again, keeping the test's logger
/// alive until the program ends. spdlog::info() reads the default logger
/// through a raw pointer without a lock, so an actor or curl thread still
/// winding down when a fixture ends may log through the old one: destroying
/// it then was a use after free.
inline void restore_logger(std::shared_ptr<spdlog::logger> previous) {
  static std::mutex mx;
  static std::vector<std::shared_ptr<spdlog::logger>> retired;
  {
    std::lock_guard guard{mx};
    retired.push_back(spdlog::default_logger());
  }
  spdlog::set_default_logger(std::move(previous));
}

} // namespace heaven::test
