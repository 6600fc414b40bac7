#include "base/retry.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>

namespace heaven {

namespace {

/// Whole seconds in `text`, or nullopt when it is not just a number.
std::optional<int64_t> seconds_in(std::string_view text) {
  int64_t seconds = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(),
                                 seconds);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size())
    return std::nullopt;
  return seconds;
}

/// The Unix millisecond of an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT").
std::optional<int64_t> http_date_ms(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr)
    return std::nullopt;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

/// Uniform in [0, 1) from one engine per process.
double default_random() {
  static std::mutex mx;
  static std::mt19937_64 engine{std::random_device{}()};
  std::lock_guard<std::mutex> guard{mx};
  return std::uniform_real_distribution<double>{0.0, 1.0}(engine);
}

} // namespace

std::string header_value(const http_response& res, std::string_view name) {
  for (auto& [k, v] : res.headers)
    if (k == name)
      return v;
  return {};
}

std::string describe(const http_response& res) {
  if (res.status == 0)
    return res.error.empty() ? "no answer" : res.error;
  return "HTTP " + std::to_string(res.status);
}

bool transient(const http_response& res) {
  if (res.permanent)
    return false;
  return res.status == 0 || res.status == 429 || res.status >= 500;
}

bool retry_allowed(const retry_policy& p, const http_response& res,
                   int attempts) {
  return transient(res) && (p.attempts <= 0 || attempts < p.attempts);
}

std::chrono::milliseconds backoff(const retry_policy& p, int failures) {
  auto shift = std::clamp(failures - 1, 0, 20);
  auto wait = std::min(p.first_backoff * (int64_t{1} << shift), p.max_backoff);
  if (p.jitter > 0 && wait.count() > 0) {
    auto share = std::clamp(p.jitter, 0.0, 1.0)
                 * std::clamp(p.random ? p.random() : default_random(), 0.0,
                              1.0);
    wait -= std::chrono::milliseconds(
      static_cast<int64_t>(share * static_cast<double>(wait.count())));
  }
  return wait;
}

int64_t retry_at(const http_response& res, int64_t now_ms) {
  auto after = header_value(res, "retry-after");
  if (!after.empty()) {
    if (auto seconds = seconds_in(after))
      return now_ms + std::clamp<int64_t>(*seconds, 0, int64_t{1} << 40) * 1000;
    if (auto at = http_date_ms(after))
      return *at;
  }
  auto reset = header_value(res, "x-ratelimit-reset");
  if (!reset.empty() && header_value(res, "x-ratelimit-remaining") == "0")
    if (auto epoch = seconds_in(reset))
      return *epoch * 1000;
  return 0;
}

std::chrono::milliseconds retry_wait(const retry_policy& p, int failures,
                                     const http_response& res) {
  if (auto seconds = seconds_in(header_value(res, "retry-after"))) {
    auto most = std::chrono::duration_cast<std::chrono::seconds>(
                  p.max_server_wait)
                  .count();
    return std::chrono::seconds(std::clamp<int64_t>(*seconds, 0, most));
  }
  return backoff(p, failures);
}

std::string retry_line(std::string_view what, std::string_view problem,
                       int attempt, int max_attempts,
                       std::chrono::milliseconds wait) {
  std::string line{what};
  line += " failed (";
  line += problem;
  line += "), attempt " + std::to_string(attempt);
  if (max_attempts > 0)
    line += " of " + std::to_string(max_attempts);
  line += "; trying again in " + std::to_string(wait.count()) + " ms";
  return line;
}

int64_t unix_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace heaven
