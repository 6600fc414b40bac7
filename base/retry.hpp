/// One retry policy for every HTTP caller (the outboxes, the API providers,
/// the auto deploy jobs): which answers are worth another attempt, how long
/// to wait before it, and the times a server names (`Retry-After`, GitHub's
/// `x-ratelimit-reset`).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "messages/types.hpp"

namespace heaven {

// -- reading answers ---------------------------------------------------------

/// The value of header `name` (lower case) in `res`, or "".
std::string header_value(const http_response& res, std::string_view name);

/// "HTTP 404" for an answer; for none, curl's error (or "no answer").
std::string describe(const http_response& res);

/// True for answers worth retrying: no answer at all (status 0), 429 and
/// 5xx; never when the request is `permanent` (it never left heaven and
/// never will).
bool transient(const http_response& res);

// -- waiting -----------------------------------------------------------------

/// The share of a backoff that is random unless a caller says otherwise:
/// each wait is the full backoff less up to 20 % of it.
inline constexpr double default_jitter = 0.2;

/// How a caller retries. Each caller keeps its own settings
/// (HEAVEN_RETRY_BACKOFF_MS, HEAVEN_STATUS_RETRIES, ...).
struct retry_policy {
  /// Attempts in all, the first included (0: no limit).
  int attempts = 5;
  /// The wait after the first failure; doubles after each further one...
  std::chrono::milliseconds first_backoff{1000};
  /// ...up to this.
  std::chrono::milliseconds max_backoff{std::chrono::hours(24)};
  /// The share of each backoff that is random (0: none, waits are exact;
  /// 1: anything from 0 to the full wait). Spreads the retries of many
  /// callers that failed at once; a jittered wait is never longer than the
  /// full backoff (so never above `max_backoff`), and a wait the server
  /// named (`Retry-After`) is never shortened.
  double jitter = default_jitter;
  /// Uniform in [0, 1): the randomness of the jitter; a default engine
  /// when empty (tests put a constant here).
  std::function<double()> random;
  /// The longest `Retry-After` that replaces the backoff.
  std::chrono::milliseconds max_server_wait{std::chrono::hours(1)};
};

/// Whether a caller that made `attempts` attempts, the last of which got
/// `res`, tries again: `res` is transient and `p.attempts` allows another.
bool retry_allowed(const retry_policy& p, const http_response& res,
                   int attempts);

/// The wait after `failures` (1, 2, ...) failed attempts:
/// `p.first_backoff` doubled per failure after the first, at most
/// `p.max_backoff`, less up to `p.jitter` of it at random.
std::chrono::milliseconds backoff(const retry_policy& p, int failures);

/// Parses a `Retry-After` header (seconds, or an HTTP date) or GitHub's
/// `x-ratelimit-reset` (Unix seconds, when `x-ratelimit-remaining` is 0)
/// of `res` into the Unix millisecond it names, relative to `now_ms`; 0
/// when the answer names no time.
int64_t retry_at(const http_response& res, int64_t now_ms);

/// The wait after `failures` failed attempts, the last of which got `res`,
/// for a caller that does what the server says: the answer's `Retry-After`
/// in seconds (at most `p.max_server_wait`; "0" means now) when it has one,
/// else the backoff. (An outbox, which must not hurry, waits for the longer
/// of the backoff and retry_at.)
std::chrono::milliseconds retry_wait(const retry_policy& p, int failures,
                                     const http_response& res);

/// The one line every retry is told with, in heaven's log and in a
/// deployment's: "<what> failed (<problem>), attempt N of M; trying again in
/// X ms", where N is the attempt that failed and M the attempts allowed in
/// all (", attempt N" when `max_attempts` is 0: no limit).
std::string retry_line(std::string_view what, std::string_view problem,
                       int attempt, int max_attempts,
                       std::chrono::milliseconds wait);

/// The current Unix time in milliseconds.
int64_t unix_now_ms();

} // namespace heaven
