#include "actors/ingress_route.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include <nlohmann/json.hpp>

#include "actors/ingress_auth.hpp"
#include "base/log_book.hpp"
#include "base/pages.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "base/webhook.hpp"

namespace heaven {

namespace {

constexpr int32_t default_limit = 50;
constexpr int32_t max_limit = 500;

/// Parses all of `text` as a number.
template <class T>
std::optional<T> to_number(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(),
                                   value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
    return std::nullopt;
  return value;
}

/// ASCII case-insensitive: does `text` start with `prefix`?
bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  auto lower = [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  };
  return text.size() >= prefix.size()
         && std::equal(prefix.begin(), prefix.end(), text.begin(),
                       [&](char a, char b) { return lower(a) == lower(b); });
}

route_decision answer(route_decision r, int status, std::string body) {
  r.what = route_decision::kind::answer;
  r.status = status;
  r.body = std::move(body);
  return r;
}

route_decision not_allowed(route_decision r, const char* allow) {
  r.allow = allow;
  return answer(std::move(r), 405, json_error("method not allowed"));
}

route_decision not_found(route_decision r) {
  return answer(std::move(r), 404, json_error("not found"));
}

route_decision unauthorized(route_decision r) {
  r.bearer_challenge = true;
  return answer(std::move(r), 401, json_error("unauthorized"));
}

/// Nothing when `req` may read the read side (`/deployments`, `/locks`):
/// the API token, or a live session; else `r` answered 404 while the read
/// side is off (neither is configured), 401 otherwise.
std::optional<route_decision> refuse_read(route_decision& r,
                                          const request_parts& req,
                                          const route_options& opts) {
  if (opts.api_token.empty() && !opts.github_sign_in)
    return not_found(std::move(r));
  if (bearer_matches(req.authorization, opts.api_token))
    return std::nullopt;
  if (opts.github_sign_in && opts.session_login) {
    auto session = cookie_value(req.cookie, session_cookie_name);
    if (!session.empty() && !opts.session_login(session).empty())
      return std::nullopt;
  }
  return unauthorized(std::move(r));
}

route_decision html(route_decision r, int status, std::string_view msg) {
  r.content_type = "text/html; charset=utf-8";
  return answer(std::move(r), status, pages::error_page(status, msg));
}

route_decision redirect(route_decision r, int status, std::string location) {
  r.location = std::move(location);
  return answer(std::move(r), status, {});
}

/// Who may see the pages: a live session (who may also act: its login
/// and CSRF token are set), else the API token (read only). Nothing when
/// `req` may read them; else the answer: 404 while the read side is off,
/// to sign in (302) for a GET when sign-in is configured, 401 otherwise.
std::optional<route_decision> page_viewer(route_decision& r,
                                          const request_parts& req,
                                          const route_options& opts) {
  if (opts.api_token.empty() && !opts.github_sign_in)
    return html(std::move(r), 404, "Not found.");
  if (opts.github_sign_in && opts.session_login) {
    auto session = cookie_value(req.cookie, session_cookie_name);
    if (!session.empty()) {
      r.login = opts.session_login(session);
      if (!r.login.empty()) {
        r.csrf = csrf_token(opts.log_key, session);
        return std::nullopt;
      }
    }
  }
  if (bearer_matches(req.authorization, opts.api_token))
    return std::nullopt;
  if (opts.github_sign_in && req.method == "GET")
    return redirect(std::move(r), 302, "/auth/github");
  r.bearer_challenge = !opts.api_token.empty();
  return html(std::move(r), 401, "Sign in to see this page.");
}

/// The longest filter value taken (a repository's full name is at most
/// 140 characters on GitHub).
constexpr std::size_t max_filter = 200;

/// `/ui/...`: the pages and their actions.
route_decision on_page(route_decision r, const request_parts& req,
                       std::string_view path, std::string_view query,
                       const route_options& opts) {
  using page = route_decision::page_kind;
  using act = route_decision::action_kind;
  constexpr std::string_view assets = "/ui/assets/";
  if (path.substr(0, assets.size()) == assets) {
    if (req.method != "GET")
      return not_allowed(std::move(r), "GET");
    auto name = path.substr(assets.size());
    if (name == "heaven.css") {
      r.content_type = "text/css; charset=utf-8";
      r.body = std::string{pages::stylesheet()};
    } else if (name == "heaven.js") {
      r.content_type = "text/javascript; charset=utf-8";
      r.body = std::string{pages::script()};
    } else {
      return not_found(std::move(r));
    }
    r.what = route_decision::kind::answer;
    return r;
  }
  // Which page or action the path names.
  std::optional<page> shows;
  std::optional<act> does;
  constexpr std::string_view one = "/ui/deployments/";
  if (path == "/ui/deployments")
    shows = page::deployments;
  else if (path == "/ui/locks")
    shows = page::locks;
  else if (path == "/ui/repositories")
    shows = page::repositories;
  else if (path == "/ui/locks/unlock")
    does = act::unlock;
  else if (path == "/ui/repositories/switch")
    does = act::switch_repository;
  else if (path.substr(0, one.size()) == one) {
    auto rest = path.substr(one.size());
    auto slash = rest.find('/');
    auto id = to_number<int64_t>(rest.substr(0, slash));
    if (!id || *id < 1)
      return html(std::move(r), 404, "Not found.");
    r.deployment_id = *id;
    auto tail = slash == std::string_view::npos ? std::string_view{}
                                                : rest.substr(slash);
    if (tail.empty())
      shows = page::deployment;
    else if (tail == "/redeploy")
      does = act::redeploy;
    else if (tail == "/rollback")
      does = act::rollback;
  }
  if (!shows && !does)
    return html(std::move(r), 404, "Not found.");
  if (shows && req.method != "GET")
    return not_allowed(std::move(r), "GET");
  if (does && req.method != "POST")
    return not_allowed(std::move(r), "POST");
  if (auto refused = page_viewer(r, req, opts))
    return std::move(*refused);
  if (shows) {
    r.page = *shows;
    r.done = form_value(query, "done");
    if (*shows == page::deployments) {
      auto& f = r.filter;
      f.repo = form_value(query, "repo");
      f.environment = form_value(query, "environment");
      f.state = form_value(query, "state");
      if (f.repo.size() > max_filter || f.environment.size() > max_filter)
        return html(std::move(r), 400, "The filter is too long.");
      if (!f.state.empty() && !parse<deploy_state>(f.state))
        return html(std::move(r), 400,
                    "There is no state \"" + f.state + "\".");
      if (auto text = form_value(query, "before"); !text.empty()) {
        auto before = to_number<int64_t>(text);
        if (!before || *before < 1)
          return html(std::move(r), 400, "before must be a positive integer.");
        f.before = *before;
      }
      f.limit = default_limit;
    }
    r.what = route_decision::kind::page;
    return r;
  }
  // An action: a person's session, and the form that session was given.
  if (r.login.empty())
    return html(std::move(r), 403, "Sign in to do this.");
  auto csrf = form_value(req.body, "csrf");
  if (csrf.empty() || !equal_constant_time(csrf, r.csrf))
    return html(std::move(r), 403,
                "This form has expired or was not sent by heaven's page: "
                "nothing was changed. Reload the page and try again.");
  r.action = *does;
  if (*does == act::unlock || *does == act::switch_repository) {
    r.repo = form_value(req.body, "repo");
    if (r.repo.empty() || r.repo.size() > max_filter)
      return html(std::move(r), 400, "Which repository?");
  }
  if (*does == act::unlock) {
    r.environment = form_value(req.body, "environment");
    if (r.environment.empty() || r.environment.size() > max_filter)
      return html(std::move(r), 400, "Which environment?");
  }
  if (*does == act::switch_repository) {
    auto active = form_value(req.body, "active");
    if (active != "0" && active != "1")
      return html(std::move(r), 400, "active must be 0 or 1.");
    r.active = active == "1";
  }
  r.what = route_decision::kind::action;
  return r;
}

/// Parses `body` as an event of type `ev.type` into `ev`, including
/// `ev.repo`. Returns what is wrong with the body, or "".
std::string parse_event(const std::string& body, inbound_event& ev) {
  // Takes the parsed value, or returns the parser's message.
  auto take = [](auto parsed, auto& out) -> std::string {
    using value_type = std::decay_t<decltype(out)>;
    if (auto* msg = std::get_if<std::string>(&parsed))
      return std::move(*msg);
    out = std::move(std::get<value_type>(parsed));
    return {};
  };
  std::string msg;
  switch (ev.type) {
    case event_kind::deployment:
      msg = take(parse_deployment(body), ev.deployment);
      ev.repo = ev.deployment.repo;
      break;
    case event_kind::status:
      msg = take(parse_commit_status(body), ev.status);
      ev.repo = ev.status.repo;
      break;
    case event_kind::deployment_status:
      msg = take(parse_deployment_status(body), ev.notice);
      ev.repo = ev.notice.repo;
      break;
    case event_kind::ping:
      msg = check_json_object(body);
      if (msg.empty())
        ev.repo = repository_full_name(body);
      // A ping's repository is recorded like any other's.
      if (msg.empty() && !ev.repo.empty())
        msg = check_full_name("repository.full_name", ev.repo);
      break;
  }
  return msg;
}

route_decision on_event(route_decision r, request_parts& req,
                        const route_options& opts) {
  auto& ev = r.event;
  auto type = req.github_event;
  ev.delivery = std::string{req.github_delivery};
  if (type.empty())
    return answer(std::move(r), 400,
                  json_error("missing header X-GitHub-Event"));
  if (ev.delivery.empty())
    return answer(std::move(r), 400,
                  json_error("missing header X-GitHub-Delivery"));
  // GitHub's delivery ids are GUIDs; heaven stores them to know a
  // redelivery.
  if (auto msg = check_text("header X-GitHub-Delivery", ev.delivery,
                            limits::name);
      !msg.empty())
    return answer(std::move(r), 400, json_error(msg));
  if (!(opts.insecure && opts.secret.empty())
      && !signature_valid(opts.secret, req.body, req.signature))
    return answer(std::move(r), 401, json_error("invalid signature"));
  // A webhook set to the form content type wraps the JSON in `payload=`;
  // the signature above covers the form body as sent. (Clients such as
  // `curl -d` label plain JSON as a form too: that stays JSON.)
  if (starts_with_nocase(req.content_type, "application/x-www-form-urlencoded"))
    if (auto json = form_payload(req.body))
      req.body = std::move(*json);
  if (auto kind = parse<event_kind>(type))
    ev.type = *kind;
  else
    return answer(std::move(r), 422,
                  json_error("unsupported event " + std::string{type}));
  if (auto msg = parse_event(req.body, ev); !msg.empty())
    return answer(std::move(r), 400, json_error(msg));
  if (opts.installation_seen && !ev.repo.empty())
    if (auto id = installation_id(req.body); id > 0)
      opts.installation_seen(ev.repo, id);
  ev.body = std::move(req.body);
  r.what = route_decision::kind::event;
  return r;
}

} // namespace

route_decision route_request(request_parts req, const route_options& opts) {
  auto target = req.target;
  auto qmark = target.find('?');
  std::string_view path = target.substr(0, qmark);
  std::string_view query = qmark == std::string_view::npos
                             ? std::string_view{}
                             : target.substr(qmark + 1);
  route_decision r;
  // Only the path is ever logged: the query may hold a log token.
  r.line = std::string{req.method} + " " + std::string{path};
  bool get = req.method == "GET";
  if (path == "/metrics") {
    if (!get)
      return not_allowed(std::move(r), "GET");
    if (!opts.metrics_only) {
      if (opts.api_token.empty())
        return not_found(std::move(r));
      if (!bearer_matches(req.authorization, opts.api_token))
        return unauthorized(std::move(r));
    }
    r.what = route_decision::kind::metrics;
    return r;
  }
  if (opts.metrics_only && path != "/healthz")
    return not_found(std::move(r));
  if (path == "/" || path.substr(0, 4) == "/ui/" || path == "/ui") {
    if (path == "/ui/assets/heaven.css" || path == "/ui/assets/heaven.js")
      return on_page(std::move(r), req, path, query, opts);
    if (opts.api_token.empty() && !opts.github_sign_in)
      return not_found(std::move(r));
    if (path == "/" || path == "/ui") {
      if (!get)
        return not_allowed(std::move(r), "GET");
      return redirect(std::move(r), 302, "/ui/deployments");
    }
    return on_page(std::move(r), req, path, query, opts);
  }
  if (path == "/events") {
    if (req.method != "POST")
      return not_allowed(std::move(r), "POST");
    return on_event(std::move(r), req, opts);
  }
  if (path == "/healthz") {
    if (!get)
      return not_allowed(std::move(r), "GET");
    r.what = route_decision::kind::health;
    return r;
  }
  if (path == "/deployments") {
    if (!get)
      return not_allowed(std::move(r), "GET");
    if (auto refused = refuse_read(r, req, opts))
      return std::move(*refused);
    r.limit = default_limit;
    if (auto text = query_param(query, "limit"); !text.empty()) {
      auto n = to_number<int32_t>(text);
      if (!n || *n < 1)
        return answer(std::move(r), 400,
                      json_error("limit must be a positive integer"));
      r.limit = std::min(*n, max_limit);
    }
    r.what = route_decision::kind::list;
    return r;
  }
  if (path == "/locks") {
    if (!get)
      return not_allowed(std::move(r), "GET");
    r.what = route_decision::kind::locks;
    // The link chat-ops posts opens them for whoever has it.
    auto token = query_param(query, "token");
    if (!token.empty() && equal_constant_time(token, locks_token(opts.log_key)))
      return r;
    if (auto refused = refuse_read(r, req, opts))
      return std::move(*refused);
    return r;
  }
  if (path == "/auth/github" || path == "/auth/github/callback"
      || path == "/auth/signout") {
    if (!opts.github_sign_in)
      return not_found(std::move(r));
    if (path == "/auth/signout") {
      if (req.method != "POST")
        return not_allowed(std::move(r), "POST");
      r.session = std::string{cookie_value(req.cookie, session_cookie_name)};
      r.what = route_decision::kind::sign_out;
      return r;
    }
    if (!get)
      return not_allowed(std::move(r), "GET");
    if (path == "/auth/github") {
      r.what = route_decision::kind::sign_in;
      return r;
    }
    auto code = callback_code(query, req.cookie);
    if (!code)
      return answer(std::move(r), 403, json_error("sign-in state mismatch"));
    r.code = std::move(*code);
    r.what = route_decision::kind::callback;
    return r;
  }
  constexpr std::string_view prefix = "/deployments/";
  constexpr std::string_view suffix = "/log";
  if (path.size() > prefix.size() + suffix.size()
      && path.substr(0, prefix.size()) == prefix
      && path.substr(path.size() - suffix.size()) == suffix) {
    auto id = to_number<int64_t>(
      path.substr(prefix.size(), path.size() - prefix.size() - suffix.size()));
    if (id && *id > 0) {
      if (!get)
        return not_allowed(std::move(r), "GET");
      auto token = query_param(query, "token");
      if (!opts.has_logs || token.empty()
          || !equal_constant_time(token, log_token(opts.log_key, *id)))
        return not_found(std::move(r));
      if (auto from = query_param(query, "from"); !from.empty()) {
        auto n = to_number<uint64_t>(from);
        if (!n)
          return answer(std::move(r), 400,
                        json_error("from must be a byte offset"));
        r.log_from = *n;
      }
      r.what = route_decision::kind::log;
      r.deployment_id = *id;
      return r;
    }
  }
  return not_found(std::move(r));
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view{}
                                          : pair.substr(eq + 1);
    if (amp == std::string_view::npos)
      break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view bearer = "Bearer ";
  return !token.empty() && authorization.substr(0, bearer.size()) == bearer
         && equal_constant_time(authorization.substr(bearer.size()), token);
}

std::string form_value(std::string_view form, std::string_view name) {
  std::string value{query_param(form, name)};
  std::replace(value.begin(), value.end(), '+', ' ');
  return percent_decode(value);
}

std::string_view cookie_value(std::string_view header, std::string_view name) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
      s.remove_suffix(1);
    return s;
  };
  while (!header.empty()) {
    auto semi = header.find(';');
    auto pair = trim(header.substr(0, semi));
    auto eq = pair.find('=');
    if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == name)
      return trim(pair.substr(eq + 1));
    if (semi == std::string_view::npos)
      break;
    header.remove_prefix(semi + 1);
  }
  return {};
}

std::pair<std::string, uint16_t> split_listen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("cannot listen on \"" + listen
                             + "\": expected host:port");
  auto host = listen.substr(0, colon);
  auto port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto port = to_number<uint16_t>(port_text);
  if (!port)
    throw std::runtime_error("cannot listen on " + listen + ": bad port \""
                             + port_text + "\"");
  return {std::move(host), *port};
}

string_pairs page_headers() {
  return {{"Content-Type", "text/html; charset=utf-8"},
          {"Content-Security-Policy",
           "default-src 'none'; style-src 'self'; script-src 'self'; "
           "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
           "frame-ancestors 'none'; base-uri 'none'"},
          {"X-Frame-Options", "DENY"},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "same-origin"},
          {"Cache-Control", "no-store"}};
}

string_pairs answer_headers(const route_decision& r) {
  string_pairs headers;
  if (r.content_type.starts_with("text/html"))
    headers = page_headers();
  else if (!r.content_type.empty())
    headers = {{"Content-Type", r.content_type},
               {"Cache-Control", "public, max-age=3600"}};
  if (!r.allow.empty())
    headers.emplace_back("Allow", r.allow);
  if (r.bearer_challenge)
    headers.emplace_back("WWW-Authenticate", "Bearer realm=\"heaven\"");
  if (!r.location.empty())
    headers.emplace_back("Location", r.location);
  return headers;
}

ingress_reply receipt_answer(const event_receipt& receipt) {
  switch (receipt.kind) {
    case receipt_kind::accepted:
    case receipt_kind::refused:
      return {201, "{}"};
    case receipt_kind::redelivery:
      return {200, R"({"status":"duplicate"})"};
    case receipt_kind::ignored:
      return {202, R"({"status":"ignored","reason":"repository disabled"})"};
    default:
      return {503, R"({"error":"heaven could not store the event"})"};
  }
}

std::string json_error(std::string_view msg) {
  return nlohmann::json{{"error", msg}}.dump(
    -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace heaven
