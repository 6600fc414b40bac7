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
  /// The login of the live session the request's `heaven_session` cookie
  /// names, "" when it names none (null: none does).
  std::function<std::string(std::string_view session_id)> session_login;
  /// The metrics listener (HEAVEN_METRICS_LISTEN, a private network):
  /// `/metrics` without a token and `/healthz`, nothing else.
  bool metrics_only = false;
  /// Told the repository and `installation.id` of each verified event that
  /// names its GitHub App installation (null: nobody is).
  std::function<void(const std::string& repo, int64_t installation)>
    installation_seen;
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
    /// Render `page` for `login` (see pages_*).
    page,
    /// Do `action` for the signed-in `login`, whose CSRF token was right.
    action,
  };
  /// The pages (kind::page).
  enum class page_kind { deployments, deployment, locks, repositories };
  /// What a page's button asks for (kind::action).
  enum class action_kind { unlock, switch_repository, redeploy, rollback };
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
  /// kind::log: the byte to start at (`?from=`; 0 for the whole log).
  uint64_t log_from = 0;
  /// kind::callback: GitHub's code.
  std::string code;
  /// kind::sign_out: the request's session id.
  std::string session;
  /// An answer's `Location` (a redirect; "" for none).
  std::string location;
  /// An answer that is not JSON: an HTML page, or a static file (a
  /// stylesheet, a script).
  std::string content_type;
  /// kind::page.
  page_kind page = page_kind::deployments;
  /// kind::page, deployments: which (`deployment_id` for one deployment).
  deployment_filter filter;
  /// kind::page: what an action just did (`?done=`, "" for nothing).
  std::string done;
  /// kind::page and kind::action: the signed-in person ("" when reading
  /// with the API token) and their session's CSRF token ("" then too).
  std::string login;
  std::string csrf;
  /// kind::action (and `deployment_id` for redeploy and rollback).
  action_kind action = action_kind::unlock;
  std::string repo;
  std::string environment;
  bool active = false;
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
/// The pages (see /ui routes in base/pages.hpp), with the read side on:
/// a live session reads and acts, the API token only reads; without
/// either, GET is sent to sign in (302 to /auth/github) when it is
/// configured, else 401. `GET /` is 302 to /ui/deployments. An action
/// (POST, form-encoded) needs a session and its CSRF token in the `csrf`
/// field: 403 otherwise.
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

/// The decoded value of `name` in a form-encoded body or query ('+' is a
/// space; "" when absent).
std::string form_value(std::string_view form, std::string_view name);

/// The value of the cookie `name` in a Cookie header ("" when absent).
std::string_view cookie_value(std::string_view cookie_header,
                              std::string_view name);

/// An HTTP answer: status and JSON body.
struct ingress_reply {
  int status = 500;
  std::string body;
};

/// The headers every page is sent with: its type, a Content-Security-Policy
/// that lets it load only heaven's own stylesheet and script and send
/// forms only to heaven, no framing, no caching.
string_pairs page_headers();

/// The headers of answer `r` (kind::answer), beyond Server and Content-Type
/// JSON: `Allow` of a 405, a bearer challenge of a 401, `Location` of a
/// redirect, page_headers for an HTML page, and a static file's type and
/// caching.
string_pairs answer_headers(const route_decision& r);

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
