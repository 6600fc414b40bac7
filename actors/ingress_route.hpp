/// How the HTTP ingress answers a request, decided from the request alone:
/// the part outsiders control (route, method, the `/events` headers and
/// body, log and lock tokens), kept apart from Beast and the sockets so it
/// can be tested and fuzzed without a connection.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "messages/types.hpp"

namespace heaven {

/// The parts of a parsed HTTP request that routing reads.
struct request_parts {
  /// The method as sent: "GET" and "POST" only in capitals, as Beast reads
  /// them.
  std::string_view method;
  /// The request target, e.g. "/deployments/7/log?token=...".
  std::string_view target;
  /// Header values ("" when absent).
  std::string_view github_event;    ///< X-GitHub-Event
  std::string_view github_delivery; ///< X-GitHub-Delivery
  std::string_view signature;       ///< X-Hub-Signature-256
  std::string_view content_type;    ///< Content-Type
  std::string_view authorization;   ///< Authorization
  std::string_view cookie;          ///< Cookie
  /// The body as received.
  std::string body;
};

/// What routing needs of the ingress's options.
struct route_options {
  /// Webhook secret; empty with `insecure` skips signature checks.
  std::string_view secret;
  bool insecure = false;
  /// Key of the log and lock tokens (log_token, locks_token).
  std::string_view log_key;
  /// False when the ingress has no log book (every log is then not found).
  bool has_logs = false;
  /// HEAVEN_API_TOKEN: `Authorization: Bearer <it>` reads `/metrics`,
  /// `/deployments` and `/locks` (empty: nobody does with a token, on the
  /// main listener).
  std::string_view api_token;
  /// GitHub sign-in is configured (GITHUB_CLIENT_ID): the read side is on
  /// even without an api_token.
  bool github_sign_in = false;
  /// Whether the request's `heaven_session` cookie names a live session
  /// (null: none does).
  std::function<bool(std::string_view session_id)> session_valid;
  /// The metrics listener (HEAVEN_METRICS_LISTEN, a private network):
  /// `/metrics` without a token and `/healthz`, nothing else.
  bool metrics_only = false;
};

/// What to do with a request.
struct route_decision {
  enum class kind {
    /// Answer `status` with `body` (JSON) at once.
    answer,
    /// Answer with heaven's health (see health_board).
    health,
    /// Hand `event` to the receiver.
    event,
    /// Answer the store's list of the last `limit` deployments.
    list,
    /// Answer the store's environment locks (the token was right).
    locks,
    /// Stream deployment `deployment_id`'s log (the token was right).
    log,
    /// Answer the metrics (Prometheus' text format).
    metrics,
    /// GitHub sign-in: redirect to GitHub's authorize page.
    sign_in,
    /// GitHub sign-in's callback, its state checked: exchange `code`.
    callback,
    /// End the session `session` (may be "") and clear its cookie.
    sign_out,
  };
  kind what = kind::answer;
  /// "METHOD /path" for the debug log; never the query, which may hold a
  /// token.
  std::string line;
  int status = 200;
  std::string body;
  /// The `Allow` header of a 405 answer ("" otherwise).
  std::string allow;
  /// A 401 answer asks for a bearer token (`WWW-Authenticate`).
  bool bearer_challenge = false;
  /// kind::event: checked (signature) and parsed, with the body as received
  /// or, for a form-encoded delivery, the JSON inside it.
  inbound_event event;
  int32_t limit = 0;
  int64_t deployment_id = 0;
  /// kind::callback: GitHub's code.
  std::string code;
  /// kind::sign_out: the request's session id.
  std::string session;
};

/// Routes `req`: `/events` (POST; 400 without X-GitHub-Event or
/// X-GitHub-Delivery, 401 on a bad signature, 422 for an event heaven does
/// not take, 400 for a body that is not that event), `/healthz`,
/// `/deployments[?limit=N]`, `/locks`, `/deployments/<id>/log?token=`
/// (GET each; 405 with `allow` for another method), `/metrics` (GET, with
/// `Authorization: Bearer <api_token>`: 401 without or with another; 404
/// when there is no api_token).
///
/// The read side, `/deployments` and `/locks`: with an api_token or GitHub
/// sign-in, `Authorization: Bearer <api_token>` or a live session's
/// `heaven_session` cookie reads them, anything else is 401 (a bearer
/// challenge, no data); with neither, they are 404. `/locks?token=<locks
/// token>` (the link chat-ops posts) reads the locks whatever the rest.
///
/// With GitHub sign-in (404 without): `GET /auth/github` starts it, `GET
/// /auth/github/callback` is 403 unless its `state` is the state cookie's
/// (and it has a code), `POST /auth/signout` ends a session.
///
/// Anything else, and a wrong or missing log token, is 404. With
/// `metrics_only`, only `/metrics` (no token) and `/healthz` are there.
route_decision route_request(request_parts req, const route_options& opts);

/// The host (brackets of an IPv6 address removed; "" for every address) and
/// port of a listen address "host:port". Throws std::runtime_error naming
/// what is wrong.
std::pair<std::string, uint16_t> split_listen(const std::string& listen);

/// Is `authorization` exactly `Bearer <token>` (compared in constant
/// time)? Never with an empty `token`.
bool bearer_matches(std::string_view authorization, std::string_view token);

/// The value of `name` in a query string, as sent ("" when absent).
std::string_view query_param(std::string_view query, std::string_view name);

/// The value of the cookie `name` in a Cookie header ("" when absent).
std::string_view cookie_value(std::string_view cookie_header,
                              std::string_view name);

/// An HTTP answer: status and JSON body.
struct ingress_reply {
  int status = 500;
  std::string body;
};

/// The webhook's answer to how the receiver took its event: 201 `{}` when
/// accepted or refused by the rules (its status on GitHub says why), 200
/// `{"status":"duplicate"}` for a redelivery, 202 for a disabled
/// repository's event, 503 when it could not be stored (GitHub delivers it
/// again).
ingress_reply receipt_answer(const event_receipt& receipt);

/// The JSON error body every answer but a success carries:
/// `{"error":"<msg>"}` (invalid UTF-8 replaced).
std::string json_error(std::string_view msg);

} // namespace heaven
