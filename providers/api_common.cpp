#include "providers/api_common.hpp"

#include <algorithm>
#include <charconv>

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
