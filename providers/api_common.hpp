/// Small pieces the HTTP API providers (heroku, elastic_beanstalk,
/// bundler_capistrano) share.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "messages/interfaces.hpp"

namespace heaven {

/// What every HTTP API provider needs: the HTTP client, GitHub (for the
/// archive link), and how to poll and retry.
struct api_config {
  http_client_actor http;
  /// GitHub API base and token.
  std::string github_api;
  std::string github_token;
  /// Milliseconds between two polls of the remote build.
  int64_t poll_interval_ms = 3000;
  /// Attempts per request for transient failures (5xx, 429, throttling,
  /// network).
  int attempts = 5;
  /// First wait before a retry; doubles each time (429 uses Retry-After).
  int64_t first_backoff_ms = 1000;
  /// Whole-request timeout of one API request, in milliseconds (streams
  /// have their own).
  int64_t request_timeout_ms = 30000;
};

/// `base` and `path` joined with exactly one slash.
std::string join_url(std::string base, std::string_view path);

/// The request for GitHub's link to an archive of `repo` at `sha`:
/// `GET <api>repos/<repo>/<kind>/<sha>`, `kind` "tarball" or "zipball". GitHub
/// answers 302 with the link in `Location` (private repositories: it carries
/// a short-lived token, so never log it). The token goes in the header.
http_request github_archive_request(const std::string& api,
                                    const std::string& token,
                                    const std::string& repo,
                                    std::string_view kind,
                                    const std::string& sha);

/// Why GitHub gave no archive link, for a status description; "" when
/// `res` is the 302 with a Location (then `location` holds it).
std::string github_archive_problem(const http_response& res,
                                   std::string_view kind,
                                   const std::string& repo,
                                   const std::string& sha,
                                   std::string& location);

/// True for answers worth retrying: no answer at all (status 0) unless the
/// request is `permanent` (it never left heaven and never will), 429, 5xx.
bool transient(const http_response& res);

/// What the answer to a request that creates something (a build, a
/// deployment) says about the thing. Create once: only `refused` may be sent
/// again as it is; `unknown` must be looked up first.
enum class create_answer {
  /// 2xx: created; the answer describes it.
  created,
  /// Refused before anything was done, worth another attempt: 429 (a rate
  /// limiter answers before the request is handled) and 503 with
  /// Retry-After (the server says it is not serving now, and when to come
  /// back).
  refused,
  /// It may exist although the answer says nothing: no answer at all
  /// (timeout, connection reset after the request went out) and every other
  /// 5xx (a gateway's 502/504 or a proxy's 503 can come after the server
  /// acted).
  unknown,
  /// Will not exist: 3xx, 4xx other than 429, and `permanent` failures
  /// (the request could not even be sent).
  failed,
};

/// Classifies `res`, the answer to a creating request (see create_answer).
create_answer classify_create(const http_response& res);

/// An RFC 3339 / ISO 8601 UTC time as APIs write it ("2024-05-01T10:00:00Z",
/// fractions and "+hh:mm" offsets allowed), or nullopt when `text` is none.
std::optional<std::chrono::system_clock::time_point>
parse_time(std::string_view text);

/// How long to wait before attempt `attempt` (2, 3, ...): the response's
/// `Retry-After` seconds when it has one, else `first` doubled per attempt.
std::chrono::milliseconds retry_delay(const http_response& res, int attempt,
                                      std::chrono::milliseconds first);

/// When to try a request again.
struct retry_plan {
  std::chrono::milliseconds delay;
  /// The log line saying so: "<what>: HTTP 503; trying again in 1000 ms
  /// (attempt 2 of 5)".
  std::string line;
};

/// The retry of a request whose attempt number `attempt` got `res`: when
/// the answer is transient and `cfg.attempts` allows another, increments
/// `attempt` and returns the wait (retry_delay) and its log line; else
/// nullopt. `what` names the request in the line.
std::optional<retry_plan> next_retry(const http_response& res, int& attempt,
                                     const api_config& cfg,
                                     const std::string& what);

/// The value of header `name` (lower case) in `res`, or "".
std::string header_value(const http_response& res, std::string_view name);

/// "404 Not Found"-style text for a response: the status and, when there is
/// no status, curl's error.
std::string describe(const http_response& res);

} // namespace heaven
