/// The queue checkouts wait in: a fixed pool of threads takes them in the
/// order they came, so a checkout that waits costs an entry in a queue, not
/// a thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

namespace heaven {

/// A FIFO of blocking jobs run by a fixed number of threads of its own.
/// Thread-safe.
class checkout_queue {
public:
  using ticket = uint64_t;

  /// Starts `threads` (at least 1) threads that run the jobs. They run as
  /// long as the process does (the queue is never destroyed).
  explicit checkout_queue(size_t threads);
  checkout_queue(const checkout_queue&) = delete;
  checkout_queue& operator=(const checkout_queue&) = delete;

  /// heaven's queue of checkouts: max(2, cores) threads, started on first
  /// use. Bounding checkouts keeps a burst of deployments from starting
  /// hundreds of git processes together and starving the rest of heaven
  /// (webhook answers among them) of CPU and disk.
  static checkout_queue& shared();

  /// Queues `job`; returns its ticket (never 0).
  ticket push(std::function<void()> job);

  /// Takes job `t` out of the queue before it started: true when it was
  /// still waiting (it will never run), false when it runs or ran already.
  bool withdraw(ticket t);

  /// How many jobs wait (not yet started).
  size_t waiting() const;

  /// How many threads run the jobs.
  size_t threads() const {
    return threads_;
  }

private:
  void work();

  size_t threads_;
  mutable std::mutex mx_;
  std::condition_variable cv_;
  std::deque<std::pair<ticket, std::function<void()>>> jobs_;
  ticket next_ = 1;
};

} // namespace heaven
