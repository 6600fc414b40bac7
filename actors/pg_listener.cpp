#include "actors/pg_listener.hpp"

#include <chrono>
#include <memory>

#include <spdlog/spdlog.h>

#include "actors/pg.hpp"
#include "base/thread_name.hpp"

namespace heaven {

pg_listener::pg_listener(std::string url, std::function<void()> wake)
  : url_(std::move(url)), wake_(std::move(wake)) {
  thread_ = std::thread{[this] { run(); }};
}

pg_listener::~pg_listener() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
}

void pg_listener::run() {
  name_this_thread("heaven.listen");
  using namespace std::chrono_literals;
  std::unique_ptr<pg::connection> conn;
  auto backoff = 500ms;
  while (!stop_) {
    try {
      if (!conn || !conn->ok()) {
        conn = std::make_unique<pg::connection>(url_);
        conn->listen("heaven_work");
        backoff = 500ms;
        wake_(); // Anything notified while it was not listening.
      }
      if (!conn->wait_notification(250ms))
        continue;
      // Take what else came at once: one wake is enough.
      while (conn->wait_notification(0ms))
        ;
      wake_();
    } catch (const std::exception& e) {
      spdlog::warn("heaven's listener for other instances' work lost the "
                   "database: {} (again in {} ms)",
                   e.what(), backoff.count());
      conn.reset();
      for (auto waited = 0ms; waited < backoff && !stop_; waited += 100ms)
        std::this_thread::sleep_for(100ms);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 10000ms);
    }
  }
}

} // namespace heaven
