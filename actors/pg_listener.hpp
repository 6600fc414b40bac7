/// Listens for PostgreSQL's NOTIFY heaven_work on a connection of its own
/// (several instances): another instance accepted a deployment, delivered
/// the status a queued one waited for, or gave work back.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace heaven {

/// A thread that calls `wake` whenever heaven_work is notified (several
/// notifications that arrive together: once). A lost connection is made
/// again with a backoff. Stops and joins on destruction.
class pg_listener {
public:
  pg_listener(std::string url, std::function<void()> wake);
  ~pg_listener();

  pg_listener(const pg_listener&) = delete;
  pg_listener& operator=(const pg_listener&) = delete;

private:
  void run();

  std::string url_;
  std::function<void()> wake_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

} // namespace heaven
