#include "base/health.hpp"

#include <chrono>
#include <ctime>

namespace heaven {

namespace {

std::string now_utc() {
  auto t = std::chrono::system_clock::to_time_t(
    std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

} // namespace

void health_board::fail(const std::string& component, const std::string& what) {
  std::lock_guard guard{mtx_};
  auto& p = problems_[component];
  if (p.since.empty())
    p.since = now_utc();
  p.what = what;
}

bool health_board::recover(const std::string& component) {
  std::lock_guard guard{mtx_};
  return problems_.erase(component) > 0;
}

std::vector<std::string> health_board::problems() const {
  std::lock_guard guard{mtx_};
  std::vector<std::string> out;
  for (auto& [component, p] : problems_)
    out.push_back(component + ": " + p.what + " (since " + p.since + ")");
  return out;
}

bool health_board::failing(const std::string& component) const {
  std::lock_guard guard{mtx_};
  return problems_.count(component) > 0;
}

void health_board::set_database(const std::string& kind) {
  std::lock_guard guard{mtx_};
  database_ = kind;
}

std::string health_board::database() const {
  std::lock_guard guard{mtx_};
  return database_;
}

void health_board::set_draining() {
  std::lock_guard guard{mtx_};
  draining_ = true;
}

bool health_board::draining() const {
  std::lock_guard guard{mtx_};
  return draining_;
}

} // namespace heaven
