// Tests for route_request: what the ingress answers a request, decided from
// the request alone (the sockets and actors are tested in http_ingress.cpp).
#include <boost/test/unit_test.hpp>

#include <string>
#include <tuple>
#include <vector>

#include "actors/ingress_route.hpp"
#include "base/log_book.hpp"
#include "base/webhook.hpp"

using namespace heaven;

namespace {

const std::string secret = "route-secret";
const std::string key = "route-log-key";
const std::string api_token = "route-api-token";
const std::string bearer = "Bearer " + api_token;

route_options options() {
  route_options opts;
  opts.secret = secret;
  opts.log_key = key;
  opts.has_logs = true;
  opts.api_token = api_token;
  return opts;
}

/// `method target`, with the API token.
route_decision route(std::string_view method, std::string_view target) {
  request_parts req;
  req.method = method;
  req.target = target;
  req.authorization = bearer;
  return route_request(std::move(req), options());
}

/// A signed `ping` delivery of `body` labelled `content_type`.
route_decision ping(const std::string& body,
                    std::string_view content_type = "application/json") {
  auto signature = "sha256=" + hmac_sha256_hex(secret, body);
  request_parts req;
  req.method = "POST";
  req.target = "/events";
  req.github_event = "ping";
  req.github_delivery = "d-1";
  req.signature = signature;
  req.content_type = content_type;
  req.body = body;
  return route_request(std::move(req), options());
}

} // namespace

BOOST_AUTO_TEST_SUITE(ingress_route)

BOOST_AUTO_TEST_CASE(each_route_answers_its_method_only) {
  // The health itself is the ingress's to tell (it knows the board).
  auto r = route("GET", "/healthz");
  BOOST_TEST(static_cast<int>(r.what)
             == static_cast<int>(route_decision::kind::health));
  for (auto [method, target, allow] :
       {std::tuple{"POST", "/healthz", "GET"},
        std::tuple{"GET", "/events", "POST"},
        std::tuple{"post", "/events", "POST"},
        std::tuple{"PUT", "/deployments", "GET"},
        std::tuple{"DELETE", "/locks", "GET"},
        std::tuple{"POST", "/deployments/7/log", "GET"}}) {
    auto d = route(method, target);
    BOOST_TEST(d.status == 405, method << " " << target);
    BOOST_TEST(d.allow == allow, method << " " << target);
    BOOST_TEST(d.body == json_error("method not allowed"));
  }
  for (auto target : {"/event", "/deployments/0/log", "/deployments/x/log",
                      "/deployments/7/logs"})
    BOOST_TEST(route("GET", target).status == 404, target);
  // The root leads to the pages (tests/actors/ingress_pages_route.cpp).
  BOOST_TEST(route("GET", "/").status == 302);
}

BOOST_AUTO_TEST_CASE(the_log_line_never_holds_the_query) {
  auto token = log_token(key, 7);
  request_parts req;
  req.method = "GET";
  auto target = "/deployments/7/log?token=" + token;
  req.target = target;
  // Anyone with the link, without credentials.
  auto r = route_request(std::move(req), options());
  BOOST_TEST(static_cast<int>(r.what)
             == static_cast<int>(route_decision::kind::log));
  BOOST_TEST(r.deployment_id == 7);
  BOOST_TEST(r.line == "GET /deployments/7/log");
}

BOOST_AUTO_TEST_CASE(tokens_open_logs_and_locks) {
  BOOST_TEST(
    route("GET", "/deployments/7/log?token=" + log_token(key, 8)).status
    == 404);
  BOOST_TEST(route("GET", "/deployments/7/log").status == 404);
  BOOST_TEST(
    static_cast<int>(route("GET", "/locks?x=1&token=" + locks_token(key)).what)
    == static_cast<int>(route_decision::kind::locks));
  // A wrong token is no token: without credentials, 401.
  request_parts wrong;
  wrong.method = "GET";
  auto wrong_target = "/locks?token=" + log_token(key, 1);
  wrong.target = wrong_target;
  BOOST_TEST(route_request(wrong, options()).status == 401);
  // Without a log book every log is not found.
  request_parts req;
  req.method = "GET";
  auto target = "/deployments/7/log?token=" + log_token(key, 7);
  req.target = target;
  auto opts = options();
  opts.has_logs = false;
  BOOST_TEST(route_request(std::move(req), opts).status == 404);
}

BOOST_AUTO_TEST_CASE(metrics_need_the_bearer_token) {
  auto metrics = [](std::string_view method, std::string_view authorization,
                    std::string_view token, bool metrics_only = false) {
    request_parts req;
    req.method = method;
    req.target = "/metrics";
    req.authorization = authorization;
    auto opts = options();
    opts.api_token = token;
    opts.metrics_only = metrics_only;
    return route_request(std::move(req), opts);
  };
  auto is_metrics = [](const route_decision& r) {
    return r.what == route_decision::kind::metrics;
  };
  // No HEAVEN_API_TOKEN: nobody reads them on the main listener.
  auto off = metrics("GET", "Bearer ", "");
  BOOST_TEST(off.status == 404);
  BOOST_TEST(!is_metrics(off));
  BOOST_TEST(!is_metrics(metrics("GET", "", "")));
  // With one: exactly `Bearer <token>`.
  BOOST_TEST(is_metrics(metrics("GET", "Bearer t0ken", "t0ken")));
  for (auto auth : {"", "Bearer", "Bearer ", "Bearer t0ke", "Bearer t0ken ",
                    "bearer t0ken", "t0ken", "Basic dDBrZW4="}) {
    auto r = metrics("GET", auth, "t0ken");
    BOOST_TEST(!is_metrics(r), auth);
    BOOST_TEST(r.status == 401, auth);
    BOOST_TEST(r.bearer_challenge, auth);
    BOOST_TEST(r.body == json_error("unauthorized"));
  }
  BOOST_TEST(metrics("POST", "Bearer t0ken", "t0ken").status == 405);
  // The metrics listener: no token, and nothing but /metrics and /healthz.
  BOOST_TEST(is_metrics(metrics("GET", "", "", true)));
  BOOST_TEST(is_metrics(metrics("GET", "", "t0ken", true)));
  auto opts = options();
  opts.metrics_only = true;
  for (auto [method, target] :
       {std::pair{"POST", "/events"}, std::pair{"GET", "/deployments"},
        std::pair{"GET", "/locks?token=x"}, std::pair{"GET", "/"}}) {
    request_parts req;
    req.method = method;
    req.target = target;
    BOOST_TEST(route_request(std::move(req), opts).status == 404, target);
  }
  request_parts health;
  health.method = "GET";
  health.target = "/healthz";
  BOOST_TEST(static_cast<int>(route_request(std::move(health), opts).what)
             == static_cast<int>(route_decision::kind::health));
}

BOOST_AUTO_TEST_CASE(the_read_side_wants_a_token_or_a_session) {
  using kind = route_decision::kind;
  const std::string locks_link = "/locks?token=" + locks_token(key);
  const std::string live = "live-session-id";
  struct setup {
    const char* name;
    std::string api_token;
    bool sign_in;
  };
  struct credentials {
    const char* name;
    std::string authorization;
    std::string cookie;
  };
  for (auto& s :
       {setup{"token only", api_token, false}, setup{"sign-in only", "", true},
        setup{"token and sign-in", api_token, true},
        setup{"neither", "", false}}) {
    auto opts = options();
    opts.api_token = s.api_token;
    opts.github_sign_in = s.sign_in;
    std::vector<std::string> asked;
    opts.session_login = [&](std::string_view id) {
      asked.emplace_back(id);
      return std::string{id == live ? "amy" : ""};
    };
    bool on = !s.api_token.empty() || s.sign_in;
    for (auto& c :
         {credentials{"none", "", ""}, credentials{"the token", bearer, ""},
          credentials{"another token", "Bearer route-api-toke", ""},
          credentials{"the token unprefixed", api_token, ""},
          credentials{"the token lower-case", "bearer " + api_token, ""},
          credentials{"an empty bearer", "Bearer ", ""},
          credentials{"a live session", "", "a=1; heaven_session=" + live},
          credentials{"an unknown session", "", "heaven_session=other"},
          credentials{"an empty session", "", "heaven_session="},
          credentials{"another cookie", "", "heaven_sessions=" + live},
          credentials{"both", bearer, "heaven_session=" + live}}) {
      bool token_ok = !s.api_token.empty()
                      && c.authorization == "Bearer " + s.api_token;
      bool session_ok = s.sign_in
                        && c.cookie.find("heaven_session=" + live)
                             != std::string::npos;
      bool granted = token_ok || session_ok;
      auto context = std::string{s.name} + " / " + c.name;
      for (auto& target :
           {std::string{"/deployments"}, std::string{"/deployments?limit=3"},
            std::string{"/locks"}, std::string{"/locks?token=wrong"}}) {
        request_parts req;
        req.method = "GET";
        req.target = target;
        req.authorization = c.authorization;
        req.cookie = c.cookie;
        auto r = route_request(std::move(req), opts);
        auto what = target.starts_with("/locks") ? kind::locks : kind::list;
        auto where = context + " " + target;
        if (granted) {
          BOOST_TEST((r.what == what), where);
          BOOST_TEST(r.status == 200, where);
        } else if (on) {
          BOOST_TEST((r.what == kind::answer), where);
          BOOST_TEST(r.status == 401, where);
          BOOST_TEST(r.bearer_challenge, where);
          BOOST_TEST(r.body == json_error("unauthorized"), where);
        } else {
          BOOST_TEST((r.what == kind::answer), where);
          BOOST_TEST(r.status == 404, where);
          BOOST_TEST(!r.bearer_challenge, where);
          BOOST_TEST(r.body == json_error("not found"), where);
        }
      }
      // The locks link chat-ops posts, and a log link, open for anyone.
      request_parts req;
      req.method = "GET";
      req.target = locks_link;
      req.authorization = c.authorization;
      req.cookie = c.cookie;
      BOOST_TEST((route_request(req, opts).what == kind::locks), context);
      auto log_link = "/deployments/7/log?token=" + log_token(key, 7);
      req.target = log_link;
      BOOST_TEST((route_request(req, opts).what == kind::log), context);
      // Credentials never open /metrics but through the token.
      req.target = "/metrics";
      auto m = route_request(req, opts);
      BOOST_TEST((m.what == kind::metrics) == token_ok, context);
    }
    // Sessions are looked up only with sign-in configured.
    if (!s.sign_in)
      BOOST_TEST(asked.empty(), s.name);
    else
      BOOST_TEST(!asked.empty(), s.name);
  }
}

BOOST_AUTO_TEST_CASE(cookies_are_read_by_name) {
  BOOST_TEST(cookie_value("heaven_session=abc", "heaven_session") == "abc");
  BOOST_TEST(cookie_value("a=1;heaven_session=abc; b=2", "heaven_session")
             == "abc");
  BOOST_TEST(cookie_value("a=1 ;  heaven_session = abc ", "heaven_session")
             == "abc");
  BOOST_TEST(
    cookie_value("heaven_session=a; heaven_session=b", "heaven_session")
    == "a");
  for (auto header :
       {"", "heaven_session", "xheaven_session=abc", "heaven_session2=abc",
        "a=heaven_session=abc", "HEAVEN_SESSION=abc"})
    BOOST_TEST(cookie_value(header, "heaven_session").empty(), header);
  BOOST_TEST(bearer_matches("Bearer t", "t"));
  BOOST_TEST(!bearer_matches("Bearer ", ""));
  BOOST_TEST(!bearer_matches("", ""));
  BOOST_TEST(!bearer_matches("Bearer t ", "t"));
}

BOOST_AUTO_TEST_CASE(deployment_lists_take_a_positive_limit) {
  BOOST_TEST(route("GET", "/deployments").limit == 50);
  BOOST_TEST(route("GET", "/deployments?limit=7").limit == 7);
  BOOST_TEST(route("GET", "/deployments?limit=100000").limit == 500);
  for (auto bad : {"0", "-1", "x", "7x", "99999999999"})
    BOOST_TEST(route("GET", std::string{"/deployments?limit="} + bad).status
                 == 400,
               bad);
}

BOOST_AUTO_TEST_CASE(events_are_checked_then_parsed) {
  auto r = ping(R"({"zen":"x","repository":{"full_name":"octo/app"}})");
  BOOST_TEST(static_cast<int>(r.what)
             == static_cast<int>(route_decision::kind::event));
  BOOST_TEST(to_string(r.event.type) == "ping");
  BOOST_TEST(r.event.delivery == "d-1");
  BOOST_TEST(r.event.repo == "octo/app");
  // A form delivery is signed as sent and handed on as the JSON inside.
  auto form = ping(R"(payload=%7B%22zen%22%3A%22x%22%7D)",
                   "Application/X-WWW-Form-Urlencoded; charset=utf-8");
  BOOST_TEST(form.event.body == R"({"zen":"x"})");
  BOOST_TEST(ping("{").status == 400);
  const std::string wrong = "sha256=" + std::string(64, '0');
  request_parts req;
  req.method = "POST";
  req.target = "/events";
  req.github_event = "ping";
  req.github_delivery = "d-2";
  req.signature = wrong;
  req.body = "{}";
  BOOST_TEST(route_request(req, options()).status == 401);
  auto insecure = options();
  insecure.secret = "";
  insecure.insecure = true;
  BOOST_TEST(static_cast<int>(route_request(req, insecure).what)
             == static_cast<int>(route_decision::kind::event));
  req.github_event = "push";
  BOOST_TEST(route_request(req, insecure).status == 422);
  req.github_event = "";
  BOOST_TEST(route_request(req, insecure).body
             == json_error("missing header X-GitHub-Event"));
  req.github_event = "push";
  BOOST_TEST(route_request(req, insecure).body
             == json_error("unsupported event push"));
}

BOOST_AUTO_TEST_CASE(how_the_receiver_took_an_event_is_the_answer) {
  auto answer = [](receipt_kind kind) {
    auto r = receipt_answer(event_receipt{kind, 7, deploy_state::queued, {}});
    return std::to_string(r.status) + " " + r.body;
  };
  BOOST_TEST(answer(receipt_kind::accepted) == "201 {}");
  BOOST_TEST(answer(receipt_kind::refused) == "201 {}");
  BOOST_TEST(answer(receipt_kind::redelivery)
             == R"(200 {"status":"duplicate"})");
  BOOST_TEST(answer(receipt_kind::ignored)
             == R"(202 {"status":"ignored","reason":"repository disabled"})");
  BOOST_TEST(answer(receipt_kind::unstored)
             == R"(503 {"error":"heaven could not store the event"})");
}

BOOST_AUTO_TEST_SUITE_END()
