/// Small pieces the HTTP API providers (heroku, elastic_beanstalk,
/// bundler_capistrano) share.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/github.hpp"
#include "base/retry.hpp"
#include "base/times.hpp" // parse_time, for the APIs' times
#include "messages/interfaces.hpp"

namespace heaven {

class github_app;

/// What every HTTP API provider needs: the HTTP client, GitHub (for the
/// archive link), and how to poll and retry.
struct api_config {
  http_client_actor http;
  /// GitHub API base and token.
  std::string github_api;
  std::string github_token;
  /// The GitHub App (null: none): archive links are asked for with the
  /// repository's installation token.
  std::shared_ptr<heaven::github_app> github_app;
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
  /// The random share of each backoff (see retry_policy::jitter; 0 in tests
  /// that assert exact waits).
  double jitter = default_jitter;
};

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

/// The string at `doc[outer][inner]`, or "" (absent, null, not a string):
/// `payload.config.app_name`, a Heroku build's `source_blob.version`.
std::string nested_string(const nlohmann::json& doc, const char* outer,
                          const char* inner);

/// The retry policy of `cfg`: its attempts, and its backoff doubling 16
/// times at most.
retry_policy retry_policy_of(const api_config& cfg);

/// Where `cfg`'s GitHub requests for `repo` go, with `repo`'s token (its
/// GitHub App installation's, see github_app::token_at_hand; when none can be
/// had just now, a warning says why and GITHUB_TOKEN is used). nullopt when the
/// app has no token of `repo` at hand: never waiting for GitHub, it has its own
/// thread fetch one, and calls `ready` from there once it tried (the provider
/// then asks again: a tick to itself).
std::optional<github_api> github_of(const api_config& cfg,
                                    const std::string& repo,
                                    std::function<void()> ready);

/// After GitHub answered `res` to a request for `repo`: true when it was a
/// 401 to a GitHub App installation token and `renewed` was false, then the
/// token is forgotten (the next github_of gets a new one) and `renewed` set:
/// ask once more. False otherwise (a second 401 is a failure).
bool renew_after_401(const api_config& cfg, const std::string& repo,
                     const http_response& res, bool& renewed);

/// When to try a request again.
struct retry_plan {
  std::chrono::milliseconds delay;
  /// The log line saying so (retry_line): "<what> failed (HTTP 503),
  /// attempt 1 of 5; trying again in 1000 ms".
  std::string line;
};

/// The retry of a request whose attempt number `attempt` got `res`: when
/// the answer is transient and `cfg.attempts` allows another, increments
/// `attempt` and returns the wait (retry_wait: `Retry-After`, else the
/// doubling backoff) and its log line; else nullopt. `what` names the
/// request in the line.
std::optional<retry_plan> next_retry(const http_response& res, int& attempt,
                                     const api_config& cfg,
                                     const std::string& what);

} // namespace heaven
