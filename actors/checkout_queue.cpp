#include "actors/checkout_queue.hpp"
#include "base/thread_name.hpp"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

namespace heaven {

checkout_queue::checkout_queue(size_t threads)
  : threads_(std::max<size_t>(1, threads)) {
  for (size_t i = 0; i < threads_; ++i)
    std::thread{[this] { work(); }}.detach();
}

checkout_queue& checkout_queue::shared() {
  // Never destroyed: its threads wait for work until the process ends.
  static auto* queue = new checkout_queue{
    std::max(2u, std::thread::hardware_concurrency())};
  return *queue;
}

checkout_queue::ticket checkout_queue::push(std::function<void()> job) {
  ticket t = 0;
  {
    std::lock_guard guard{mx_};
    t = next_++;
    jobs_.emplace_back(t, std::move(job));
  }
  cv_.notify_one();
  return t;
}

bool checkout_queue::withdraw(ticket t) {
  std::lock_guard guard{mx_};
  auto i = std::find_if(jobs_.begin(), jobs_.end(),
                        [t](const auto& x) { return x.first == t; });
  if (i == jobs_.end())
    return false;
  jobs_.erase(i);
  return true;
}

size_t checkout_queue::waiting() const {
  std::lock_guard guard{mx_};
  return jobs_.size();
}

void checkout_queue::work() {
  name_this_thread("heaven.checkout");
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock guard{mx_};
      cv_.wait(guard, [this] { return !jobs_.empty(); });
      job = std::move(jobs_.front().second);
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      // A job reports its own failures; this one escaped: the thread stays.
      spdlog::error("a checkout failed unexpectedly: {}", e.what());
    }
  }
}

} // namespace heaven
