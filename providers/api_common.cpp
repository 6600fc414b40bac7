#include "providers/api_common.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

namespace heaven {

std::string join_url(std::string base, std::string_view path) {
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return base + "/" + std::string{path};
}

http_request github_archive_request(const std::string& api,
                                    const std::string& token,
                                    const std::string& repo,
                                    std::string_view kind,
                                    const std::string& sha) {
  http_request req;
  req.method = "GET";
  req.url = join_url(api, "repos/" + repo + "/" + std::string{kind} + "/"
                            + sha);
  req.headers = {{"Accept", "application/vnd.github+json"},
                 {"User-Agent", "heaven"}};
  if (!token.empty())
    req.headers.emplace_back("Authorization", "token " + token);
  // The 302 is the answer: its Location is the archive.
  req.follow_redirects = false;
  return req;
}

std::string github_archive_problem(const http_response& res,
                                   std::string_view kind,
                                   const std::string& repo,
                                   const std::string& sha,
                                   std::string& location) {
  location.clear();
  auto what = "GitHub's " + std::string{kind} + " of " + repo + " at "
              + sha.substr(0, 7);
  if (res.status >= 300 && res.status < 400) {
    location = header_value(res, "location");
    if (!location.empty())
      return {};
    return what + ": a redirect without a Location";
  }
  if (res.status == 401 || res.status == 403 || res.status == 404)
    return "could not get " + what + " (" + describe(res)
           + "): can GITHUB_TOKEN read the repository?";
  return "could not get " + what + " (" + describe(res) + ")";
}

bool transient(const http_response& res) {
  if (res.permanent)
    return false;
  return res.status == 0 || res.status == 429 || res.status >= 500;
}

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
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23
      || minute > 59 || second > 60)
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

std::chrono::milliseconds retry_delay(const http_response& res, int attempt,
                                      std::chrono::milliseconds first) {
  auto after = header_value(res, "retry-after");
  int64_t seconds = 0;
  auto [ptr, ec] = std::from_chars(after.data(), after.data() + after.size(),
                                   seconds);
  if (!after.empty() && ec == std::errc{} && ptr == after.data() + after.size())
    return std::chrono::seconds(std::clamp<int64_t>(seconds, 0, 3600));
  auto shift = std::clamp(attempt - 2, 0, 16);
  return first * (int64_t{1} << shift);
}

std::optional<retry_plan> next_retry(const http_response& res, int& attempt,
                                     const api_config& cfg,
                                     const std::string& what) {
  if (!transient(res) || attempt >= cfg.attempts)
    return std::nullopt;
  ++attempt;
  auto delay = retry_delay(res, attempt,
                           std::chrono::milliseconds(cfg.first_backoff_ms));
  return retry_plan{delay, what + ": " + describe(res) + "; trying again in "
                             + std::to_string(delay.count()) + " ms (attempt "
                             + std::to_string(attempt) + " of "
                             + std::to_string(cfg.attempts) + ")"};
}

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

} // namespace heaven
