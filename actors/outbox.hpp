/// The OUTBOX actor: delivers the store's outbox rows of one kind (GitHub
/// statuses, ...) over HTTP, in order per stream, retrying until each is
/// delivered or too old, and never sending twice what may have arrived.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/typed_response_promise.hpp>

#include "base/log_format.hpp"
#include "base/retry.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// How a row left its outbox, as `courier::follow_ups` is told.
struct settlement {
  /// True when it was delivered (a 2xx answer, nothing to send, or found
  /// by a lookup); false when it was dropped.
  bool delivered = true;
  /// True when a lookup found that an earlier attempt had arrived: `answer`
  /// is then the lookup's answer, not the request's.
  bool found = false;
  /// The answer that settled it: the request's 2xx, the lookup's answer
  /// when `found`, the refusal that dropped it; null when there was none
  /// (nothing to send, a request heaven could not make, too many attempts).
  const http_response* answer = nullptr;
};

/// Thrown by a courier's `request` when it cannot make the request just now
/// (its credentials cannot be had: GitHub is unreachable while heaven gets
/// a GitHub App token): the row is tried again later, as after a failed
/// attempt; `what()` says why, for the log.
struct not_now : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Thrown by a courier's `request` when its credentials are being fetched
/// elsewhere (a GitHub App token the app's own thread is getting): the row
/// is looked at again shortly, and no attempt is counted.
struct not_yet : not_now {
  using not_now::not_now;
};

/// How one kind of outbox row is delivered: the HTTP knowledge of its
/// destination (GitHub's statuses API, a chat service, ...).
struct courier {
  /// The kind of rows it delivers ("status").
  std::string kind;
  /// The request that delivers `row`. nullopt when there is nothing to send
  /// (the row is settled as delivered without a request: e.g. no
  /// GITHUB_TOKEN); throws std::exception when the row cannot be read (it
  /// is dropped).
  std::function<std::optional<http_request>(const outbox_row&)> request;
  /// The request that finds out whether an earlier attempt whose answer was
  /// lost took effect, or nullopt when there is no way to tell (then the
  /// row is simply sent again). May be empty.
  std::function<std::optional<http_request>(const outbox_row&)> lookup;
  /// Whether the lookup's (2xx) answer shows that `row` arrived.
  std::function<bool(const outbox_row&, const http_response&)> found;
  /// What to do when the lookup itself is refused (a 4xx but 401 and 429):
  /// send the row again (true: a duplicate does less harm than a loss, as
  /// for a status) or drop it (false: a second one would do harm, as a
  /// second deployment would).
  bool send_unseen = true;
  /// Asked after a 401: a request that succeeds when the credentials are
  /// good (then the 401 was a passing failure and the row is retried); when
  /// it is refused too, or this is empty, the row is dropped.
  std::function<std::optional<http_request>()> credentials_check;
  /// Told of a 401 to `sent`, the request for `row`, before
  /// credentials_check: renews the credentials `sent` carried (a GitHub
  /// App's installation token) and returns true when the row is worth
  /// sending again at once with new ones. Asked once per row: a 401 after a
  /// renewal drops it. May be empty.
  std::function<bool(const outbox_row& row, const http_request& sent)> renew;
  /// "status success of octo/app deployment 42", for the log.
  std::function<std::string(const outbox_row&)> describe;
  /// The deployment `row` is about, set as the log context while the
  /// outbox handles it (see log_scope). May be empty; may throw (then
  /// none).
  std::function<log_context(const outbox_row&)> about;
  /// Answers that also mean the row can never be delivered, besides 400,
  /// 404, 410 and 422 (a chat service's other refusals). May be empty.
  std::function<bool(const http_response&)> hopeless;
  /// When the lookup `looked` got `answer`, a 2xx that does not show the
  /// row: the request for the answer's next page, or nullopt when there is
  /// none (then the row is sent again). May be empty (one page).
  std::function<std::optional<http_request>(
    const outbox_row&, const http_request& looked, const http_response& answer)>
    next_page;
  /// Told how `row` left the outbox, delivered or dropped (but not when it
  /// is dropped as too old: what it leads to would be too); returns the
  /// rows it leads to, which the store adds in the transaction that settles
  /// it, so they exist exactly when it is settled. Also the place to log
  /// what a delivery brought. A throw is logged and adds nothing. May be
  /// empty.
  std::function<std::vector<outbox_row>(const outbox_row&, const settlement&)>
    follow_ups;
};

/// How patient an outbox is.
struct outbox_options {
  /// Requests in flight at once (each stream has at most one).
  int max_in_flight = 32;
  /// Wait before the first retry of a row; doubles up to `max_backoff`.
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  /// The random share of each backoff (see retry_policy::jitter; 0 in tests
  /// that assert exact waits).
  double jitter = default_jitter;
  /// Rows older than this are dropped with an error line.
  std::chrono::milliseconds max_age{std::chrono::hours(24)};
  /// Failed attempts after which a row is dropped with an error line (0:
  /// no limit but `max_age`). Lookups that fail count as attempts.
  int max_attempts = 0;
  /// Whole-request timeout of one attempt.
  int64_t request_timeout_ms = 30000;
  /// The wall clock in Unix milliseconds (rows' ages); replaceable in tests.
  std::function<int64_t()> now_ms;
  /// Called once the outbox has its rows from the store and hears of every
  /// later one (may be empty).
  std::function<void()> ready;
};

/// One stream's queue in the OUTBOX actor.
struct outbox_stream {
  std::deque<outbox_row> rows;
  /// Attempts made for the head row.
  int attempts = 0;
  /// The head row's credentials were renewed after a 401 (courier::renew).
  bool renewed = false;
  /// Times in a row the head row's credentials were still being fetched
  /// (not_yet): it is looked at again after 50 ms, doubling up to 2 s.
  int not_yet = 0;
  /// A request for the head row is in flight, or its retry is scheduled.
  bool busy = false;
  /// An earlier attempt of the head row got no answer (or heaven restarted
  /// since it was written): ask before sending it again.
  bool lookup_first = false;
  /// The highest row id seen, so a row handed over twice is queued once.
  int64_t last_id = 0;
  /// The log context of row `about_row` (the head, once asked for), so a
  /// row's body is read for it once, not at every step.
  int64_t about_row = 0;
  std::optional<log_context> about;
};

/// State of the OUTBOX actor.
struct outbox_state {
  static inline const char* name = "outbox";
  std::map<std::string, outbox_stream> streams;
  /// Streams whose head may be tried now, in the order they became ready.
  std::deque<std::string> ready;
  int in_flight = 0;
  /// Nothing is sent before this time (Unix ms): a rate limit's Retry-After.
  int64_t paused_until = 0;
  bool resume_scheduled = false;
  /// Rows settled but not yet written to the store, the rows they lead to,
  /// and whether a write is under way (one at a time: what arrives
  /// meanwhile goes in the next).
  std::vector<settled_row> settling;
  std::vector<outbox_row> adding;
  bool settle_in_flight = false;
  /// Failed attempts in a row to read from or write to the store.
  int store_failures = 0;
  bool subscribed = false;
  /// Set while the send loop runs, so what it settles does not start a
  /// second loop inside the first.
  bool pumping = false;
  /// Those waiting for the outbox to have nothing under way (a stopping
  /// heaven), and whether a look is scheduled.
  std::vector<caf::typed_response_promise<bool>> drains;
  bool drain_look_scheduled = false;
};

/// The OUTBOX actor for `c.kind`. Subscribes to the store's rows of that
/// kind (retrying until the store answers) and delivers them through
/// `http`: rows of one stream strictly one after another, different streams
/// concurrently up to `opts.max_in_flight`. A 2xx answer delivers a row. No
/// answer, a 5xx or a lost answer before a restart make the next attempt ask
/// `c.lookup` first, so a slow server never gets a duplicate. 429, 403 with
/// a rate limit exhausted, and 503 with `Retry-After` (refusals: nothing was
/// done) pause the whole outbox until `Retry-After` (or
/// `x-ratelimit-reset`). 400, 404, 410 and 422 (and what `c.hopeless`
/// names), a request heaven cannot even make (`permanent`), and a 401 that
/// `c.credentials_check` confirms drop the row at once with an error line;
/// anything else is retried with doubling backoff until the row is older
/// than `opts.max_age` (or failed `opts.max_attempts` times). Settled rows
/// are written to the store in batches, each with the rows `c.follow_ups`
/// says they lead to. `drain_atom` answers once nothing is under way (a
/// stopping heaven delivers what its last moments recorded).
outbox_actor::behavior_type
outbox(outbox_actor::stateful_pointer<outbox_state> self, store_actor store,
       http_client_actor http, courier c, outbox_options opts);

} // namespace heaven
