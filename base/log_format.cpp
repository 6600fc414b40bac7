#include "base/log_format.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <shared_mutex>

#include <nlohmann/json.hpp>

namespace heaven {

namespace {

/// Secrets shorter than this are not redacted: they would mangle ordinary
/// text and are not worth protecting by substitution.
constexpr std::size_t min_secret_size = 6;

thread_local const log_context* current_context = nullptr;

/// The secrets learnt since start-up (learn_secret).
struct learnt_secrets {
  std::shared_mutex mutex;
  std::deque<std::string> values;
};

learnt_secrets& learnt() {
  static learnt_secrets instance;
  return instance;
}

constexpr std::size_t max_learnt = 1000;

/// Marks in `hidden` (sized to `text` on the first match) where `s` occurs.
void mark(std::string_view text, const std::string& s,
          std::vector<bool>& hidden) {
  for (auto pos = text.find(s); pos != text.npos; pos = text.find(s, pos + 1)) {
    if (hidden.empty())
      hidden.resize(text.size(), false);
    std::fill_n(hidden.begin() + static_cast<std::ptrdiff_t>(pos), s.size(),
                true);
  }
}

/// "2026-12-05T16:00:00.123Z": UTC, milliseconds.
std::string utc_time(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(time.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto rest = ms % 1000;
  if (rest < 0) {
    rest += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(rest));
  return buf;
}

} // namespace

void learn_secret(std::string secret) {
  if (secret.size() < min_secret_size)
    return;
  auto& l = learnt();
  std::unique_lock lock{l.mutex};
  if (std::find(l.values.begin(), l.values.end(), secret) != l.values.end())
    return;
  l.values.push_back(std::move(secret));
  if (l.values.size() > max_learnt)
    l.values.pop_front();
}

redactor::redactor(std::vector<std::string> secrets) {
  for (auto& s : secrets)
    if (s.size() >= min_secret_size)
      secrets_.push_back(std::move(s));
}

std::string redactor::operator()(std::string_view text) const {
  // Mark what any secret covers in the original text, then replace each
  // marked run once: overlapping secrets leave no fragment of either behind,
  // and a secret that looks like "[redacted]" cannot match its own
  // replacement (which looped forever when replacing in place).
  std::vector<bool> hidden;
  for (auto& s : secrets_)
    mark(text, s, hidden);
  {
    auto& l = learnt();
    std::shared_lock lock{l.mutex};
    for (auto& s : l.values)
      mark(text, s, hidden);
  }
  if (hidden.empty())
    return std::string{text};
  std::string result;
  result.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!hidden[i]) {
      result += text[i++];
      continue;
    }
    result += "[redacted]";
    while (i < text.size() && hidden[i])
      ++i;
  }
  return result;
}

const log_context* current_log_context() {
  return current_context;
}

log_scope::log_scope(const log_context& context) : previous_(current_context) {
  current_context = &context;
}

log_scope::~log_scope() {
  current_context = previous_;
}

std::string json_log_line(std::chrono::system_clock::time_point time,
                          std::string_view level, std::string_view message,
                          const log_context* context) {
  // In this order, for people reading the lines too.
  nlohmann::ordered_json line;
  line["time"] = utc_time(time);
  line["level"] = std::string{level};
  line["message"] = std::string{message};
  if (context) {
    if (context->deployment != 0)
      line["deployment"] = context->deployment;
    if (!context->repository.empty())
      line["repository"] = context->repository;
    if (!context->environment.empty())
      line["environment"] = context->environment;
  }
  return line.dump(-1, ' ', false,
                   nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace heaven
