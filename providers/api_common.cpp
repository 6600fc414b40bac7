#include "providers/api_common.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/github_app.hpp"

namespace heaven {

create_answer classify_create(const http_response& res) {
  if (res.permanent)
    return create_answer::failed;
  if (res.status >= 200 && res.status < 300)
    return create_answer::created;
  if (res.status == 429
      || (res.status == 503 && !header_value(res, "retry-after").empty()))
    return create_answer::refused;
  if (res.status == 0 || res.status >= 500)
    return create_answer::unknown;
  return create_answer::failed;
}

std::optional<std::chrono::system_clock::time_point>
parse_time(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS, then optional .fraction, then Z or +hh:mm / -hh:mm.
  auto number = [&](size_t pos, size_t len, int& out) {
    if (pos + len > text.size())
      return false;
    auto first = text.data() + pos;
    auto [ptr, ec] = std::from_chars(first, first + len, out);
    return ec == std::errc{} && ptr == first + len;
  };
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || text[4] != '-' || text[7] != '-'
      || (text[10] != 'T' && text[10] != 't' && text[10] != ' ')
      || text[13] != ':' || text[16] != ':' || !number(0, 4, year)
      || !number(5, 2, month) || !number(8, 2, day) || !number(11, 2, hour)
      || !number(14, 2, minute) || !number(17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59
      || second > 60)
    return std::nullopt;
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
      ++pos; // Sub-second precision does not matter here.
  }
  int offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh, om;
    if (pos + 6 != text.size() || text[pos + 3] != ':'
        || !number(pos + 1, 2, oh) || !number(pos + 4, 2, om))
      return std::nullopt;
    offset_minutes = (text[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size())
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  auto utc = timegm(&tm);
  return std::chrono::system_clock::from_time_t(utc)
         - std::chrono::minutes(offset_minutes);
}

std::string nested_string(const nlohmann::json& doc, const char* outer,
                          const char* inner) {
  if (!doc.is_object())
    return {};
  auto o = doc.find(outer);
  if (o == doc.end() || !o->is_object())
    return {};
  auto i = o->find(inner);
  if (i == o->end() || !i->is_string())
    return {};
  return i->get<std::string>();
}

retry_policy retry_policy_of(const api_config& cfg) {
  retry_policy p;
  p.attempts = std::max(cfg.attempts, 1);
  p.first_backoff = std::chrono::milliseconds(cfg.first_backoff_ms);
  p.max_backoff = p.first_backoff * (int64_t{1} << 16);
  p.jitter = cfg.jitter;
  return p;
}

github_api github_of(const api_config& cfg, const std::string& repo) {
  github_api api{cfg.github_api, cfg.github_token};
  std::string why;
  if (auto resolved = github_for(cfg.github_app, api, repo, why))
    return *resolved;
  spdlog::warn("{}: asking with GITHUB_TOKEN instead", why);
  return api;
}

bool renew_after_401(const api_config& cfg, const std::string& repo,
                     const http_response& res, bool& renewed) {
  if (res.status != 401 || renewed || !cfg.github_app
      || !cfg.github_app->refused(repo, {}))
    return false;
  renewed = true;
  return true;
}

std::optional<retry_plan> next_retry(const http_response& res, int& attempt,
                                     const api_config& cfg,
                                     const std::string& what) {
  auto policy = retry_policy_of(cfg);
  if (!retry_allowed(policy, res, attempt))
    return std::nullopt;
  auto delay = retry_wait(policy, attempt, res);
  auto line = retry_line(what, describe(res), attempt, policy.attempts, delay);
  ++attempt;
  return retry_plan{delay, std::move(line)};
}

} // namespace heaven
