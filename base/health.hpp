/// What `/healthz` reports: the problems heaven knows of right now.
#pragma once

#include <atomic>
#include <cstdint>
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

  /// True while `component` has a problem.
  bool failing(const std::string& component) const;

  /// Which database the store works on: "sqlite" or "postgresql" ("": not
  /// known, /healthz then says nothing of it). Never its URL.
  void set_database(const std::string& kind);

  std::string database() const;

  /// heaven stops taking new work (SIGTERM).
  void set_draining();

  bool draining() const;

  /// The store wrote one batch of `requests` requests in one transaction
  /// (its group commit).
  void committed(std::size_t requests) {
    commits_ += 1;
    committed_requests_ += requests;
  }

  /// Transactions the store committed, and the requests they held.
  uint64_t commits() const {
    return commits_.load();
  }
  uint64_t committed_requests() const {
    return committed_requests_.load();
  }

private:
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> committed_requests_{0};
  struct problem {
    std::string what;
    std::string since;
  };
  mutable std::mutex mtx_;
  std::map<std::string, problem> problems_;
  bool draining_ = false;
  std::string database_;
};

} // namespace heaven
