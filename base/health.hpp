/// What `/healthz` reports: the problems heaven knows of right now.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace heaven {

/// A thread-safe board of current problems, one per component ("store",
/// ...), and whether heaven is stopping. The store writes to it from its own
/// thread, the ingress reads it from its own.
class health_board {
public:
  /// Records that `component` has `problem` since now; a problem already
  /// recorded keeps its first time.
  void fail(const std::string& component, const std::string& problem);

  /// Clears the problem of `component`; true when there was one.
  bool recover(const std::string& component);

  /// "store: cannot write: database or disk is full (since 2026-...)", one
  /// per component with a problem.
  std::vector<std::string> problems() const;

  /// heaven stops taking new work (SIGTERM).
  void set_draining();

  bool draining() const;

private:
  struct problem {
    std::string what;
    std::string since;
  };
  mutable std::mutex mtx_;
  std::map<std::string, problem> problems_;
  bool draining_ = false;
};

} // namespace heaven
