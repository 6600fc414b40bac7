// heaven as a GitHub App, in-process: the JWT checked by python3-jwt, the
// keys it reads and refuses, installation tokens fetched, cached, renewed
// and replaced against a GitHub stand-in over real HTTP.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <variant>

#include "base/config.hpp"
#include "base/github_app.hpp"
#include "base/log_format.hpp"
#include "tests/support/github_app_stand_in.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* app_id = "4242";

/// One key pair for the whole suite: making RSA keys is slow.
const app_key& the_key() {
  static app_key key = make_app_key(make_temp_dir("github-app-key"));
  return key;
}

std::string pem(const fs::path& p = the_key().private_pem) {
  return read_text(p);
}

/// The app of `o`, which the test requires to be made.
std::shared_ptr<github_app> made(github_app_options o) {
  std::string why;
  auto app = github_app::make(std::move(o), why);
  BOOST_REQUIRE_MESSAGE(app, why);
  return app;
}

/// The app, talking to `github`, GITHUB_TOKEN "ghp_fallbackTOKEN".
std::shared_ptr<github_app> make_app(const app_github& github,
                                     bool refresher = false,
                                     std::function<int64_t()> now = {}) {
  github_app_options o;
  o.app_id = app_id;
  o.private_key = pem();
  o.api_endpoint = github.api_url();
  o.fallback_token = "ghp_fallbackTOKEN";
  o.refresher = refresher;
  o.now = std::move(now);
  o.timeout_ms = 20000;
  o.failure_pause_ms = 200;
  return made(std::move(o));
}

/// The app (its refresher on) asking GitHub at `api_url`: `timeout_ms`
/// per call, a failure standing `failure_pause_ms`.
std::shared_ptr<github_app> app_at(const std::string& api_url,
                                   int64_t timeout_ms = 20000,
                                   int64_t failure_pause_ms = 2000) {
  github_app_options o;
  o.app_id = app_id;
  o.private_key = pem();
  o.api_endpoint = api_url;
  o.timeout_ms = timeout_ms;
  o.failure_pause_ms = failure_pause_ms;
  return made(std::move(o));
}

std::string make_error(std::string key) {
  github_app_options o;
  o.app_id = app_id;
  o.private_key = std::move(key);
  o.refresher = false;
  std::string why;
  auto app = github_app::make(std::move(o), why);
  BOOST_CHECK(!app);
  return why;
}

/// A body line of the PEM (what would show if the key were printed).
std::string key_line(const std::string& text) {
  auto start = text.find('\n') + 1;
  return text.substr(start, 64);
}

} // namespace

BOOST_AUTO_TEST_SUITE(github_app_tests)

BOOST_AUTO_TEST_CASE(the_jwt_is_rs256_and_an_independent_verifier_accepts_it) {
  app_github github{app_id, the_key().public_pem};
  auto app = make_app(github);
  auto jwt = app->jwt();
  BOOST_TEST(verify_app_jwt(jwt, the_key().public_pem, app_id) == "");
  // The verifier can fail: a changed signature, another app's id, another
  // key.
  auto forged = jwt;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  BOOST_TEST(verify_app_jwt(forged, the_key().public_pem, app_id) != "");
  BOOST_TEST(verify_app_jwt(jwt, the_key().public_pem, "4243") != "");
  auto other = make_app_key(make_temp_dir("github-app-other-key"));
  BOOST_TEST(verify_app_jwt(jwt, other.public_pem, app_id) != "");
}

BOOST_AUTO_TEST_CASE(pkcs8_and_one_line_escaped_keys_sign_too) {
  for (auto text : {pem(the_key().pkcs8_pem), pem()}) {
    // The one-line form of an environment file: "\n" escapes.
    std::string escaped;
    for (char c : text)
      escaped += c == '\n' ? std::string{"\\n"} : std::string(1, c);
    for (auto& form : {text, escaped}) {
      github_app_options o;
      o.app_id = app_id;
      o.private_key = form;
      o.refresher = false;
      auto app = made(std::move(o));
      BOOST_TEST(verify_app_jwt(app->jwt(), the_key().public_pem, app_id)
                 == "");
    }
  }
}

BOOST_AUTO_TEST_CASE(unusable_keys_are_refused_by_name_without_showing_them) {
  auto garbage = make_error("not a key at all, just some secret words");
  BOOST_TEST(garbage.find("GITHUB_APP_PRIVATE_KEY") != std::string::npos);
  BOOST_TEST(garbage.find("secret words") == std::string::npos);
  // A PEM cut short.
  auto text = pem();
  auto cut = make_error(text.substr(0, text.size() / 2));
  BOOST_TEST(cut.find("GITHUB_APP_PRIVATE_KEY") != std::string::npos);
  BOOST_TEST(cut.find(key_line(text)) == std::string::npos);
  // Not RSA: GitHub Apps sign with RS256.
  auto dir = make_temp_dir("github-app-ec");
  run_checked("openssl ecparam -name prime256v1 -genkey -noout -out '"
              + (dir / "ec.pem").string() + "'");
  auto ec = make_error(read_text(dir / "ec.pem"));
  BOOST_TEST(ec.find("not an RSA key") != std::string::npos);
  // The id is a number.
  github_app_options o;
  o.app_id = "my-app";
  o.private_key = pem();
  o.refresher = false;
  std::string why;
  BOOST_CHECK(!github_app::make(o, why));
  BOOST_TEST(why.find("GITHUB_APP_ID") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(each_repository_gets_its_installations_token_cached) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  github.install("octo/lib", 42);
  github.install("other/tool", 7);
  auto app = make_app(github);
  auto a = app->token_for("octo/app");
  BOOST_TEST(a.error == "");
  BOOST_TEST(a.installation == 42);
  auto issued = github.tokens();
  BOOST_REQUIRE_EQUAL(issued.size(), 1u);
  BOOST_TEST(a.token == issued[0].token);
  BOOST_TEST(issued[0].installation == 42);
  BOOST_TEST(github.jwt_problems().empty());
  BOOST_TEST(github.jwt_calls() == 2); // the lookup and the exchange
  // Cached: nothing more is asked.
  auto requests = github.stub.requests().size();
  BOOST_TEST(app->token_for("octo/app").token == a.token);
  BOOST_TEST(github.stub.requests().size() == requests);
  // An event named octo/lib's installation: no lookup, the same token.
  app->installation_seen("octo/lib", 42);
  BOOST_TEST(app->token_for("octo/lib").token == a.token);
  BOOST_TEST(github.lookups() == 1);
  // Another installation, another token.
  auto b = app->token_for("other/tool");
  BOOST_TEST(b.installation == 7);
  BOOST_TEST(b.token != a.token);
  BOOST_TEST(github.tokens().size() == 2u);
  BOOST_TEST(app->tokens_issued() == 2);
  // The JWT went only into the Authorization header.
  for (auto& r : github.stub.requests()) {
    BOOST_TEST(r.target.find("ey") == std::string::npos);
    BOOST_TEST(r.header("authorization").rfind("Bearer ey", 0) == 0);
  }
}

BOOST_AUTO_TEST_CASE(a_repository_without_the_app_falls_back_to_github_token) {
  app_github github{app_id, the_key().public_pem};
  auto app = make_app(github);
  auto t = app->token_for("octo/solo");
  BOOST_TEST(t.error == "");
  BOOST_TEST(t.token == "ghp_fallbackTOKEN");
  BOOST_TEST(t.installation == 0);
  BOOST_TEST(app->token_for("octo/solo").token == "ghp_fallbackTOKEN");
  BOOST_TEST(github.lookups() == 1); // believed for a while
  BOOST_TEST(github.tokens().empty());
  // GITHUB_TOKEN refused: nothing to renew.
  BOOST_TEST(!app->refused("octo/solo", "ghp_fallbackTOKEN"));
}

BOOST_AUTO_TEST_CASE(enterprise_server_paths_keep_their_prefix) {
  app_github github{app_id, the_key().public_pem, "/api/v3/"};
  github.install("corp/app", 9);
  auto app = make_app(github);
  BOOST_TEST(github.api_url().find("/api/v3/") != std::string::npos);
  auto t = app->token_for("corp/app");
  BOOST_TEST(t.error == "");
  BOOST_TEST(t.installation == 9);
  auto reqs = github.stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 2u);
  BOOST_TEST(reqs[0].target == "/api/v3/repos/corp/app/installation");
  BOOST_TEST(reqs[1].target == "/api/v3/app/installations/9/access_tokens");
  BOOST_TEST(reqs[1].method == "POST");
}

BOOST_AUTO_TEST_CASE(a_token_is_renewed_before_its_last_minute_on_use) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  std::atomic<int64_t> offset{0};
  auto app = make_app(github, false, [&offset] {
    return static_cast<int64_t>(std::time(nullptr)) + offset.load();
  });
  auto a = app->token_for("octo/app").token;
  offset = 3500; // 100 s left of its hour
  BOOST_TEST(app->token_for("octo/app").token == a);
  offset = 3560; // 40 s left: not handed out any more
  auto renewed = app->token_for("octo/app");
  BOOST_TEST(renewed.error == "");
  auto b = renewed.token;
  BOOST_TEST(b != "");
  BOOST_TEST(b != a);
  BOOST_TEST(github.tokens().size() == 2u);
  BOOST_TEST(github.lookups() == 1); // the installation is known
}

BOOST_AUTO_TEST_CASE(
  the_refresher_renews_ahead_so_no_token_is_handed_out_stale) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  github.token_life(65); // the 60 s margin leaves it 5 s of use
  auto app = make_app(github, true);
  std::set<std::string> seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (seen.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    auto t = app->token_for("octo/app");
    BOOST_REQUIRE_MESSAGE(t.error.empty(), t.error);
    seen.insert(t.token);
    bool issued = false;
    for (auto& i : github.tokens())
      if (i.token == t.token) {
        issued = true;
        // At least the margin left when handed out (a second's rounding).
        BOOST_TEST(i.expires_at - static_cast<int64_t>(std::time(nullptr))
                   >= 59);
      }
    BOOST_TEST(issued);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  BOOST_TEST(seen.size() >= 3u);
  BOOST_TEST(github.jwt_problems().empty());
}

BOOST_AUTO_TEST_CASE(an_event_naming_an_installation_fetches_its_token_ahead) {
  // The deployment an event starts finds its installation's token ready:
  // nobody waits for GitHub on first use.
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  auto app = make_app(github, true);
  app->installation_seen("octo/app", 42);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (github.tokens().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto issued = github.tokens();
  BOOST_REQUIRE_EQUAL(issued.size(), 1u);
  BOOST_TEST(issued[0].installation == 42);
  auto requests = github.stub.requests().size();
  auto t = app->token_for("octo/app");
  BOOST_TEST(t.error == "");
  BOOST_TEST(t.token == issued[0].token);
  BOOST_TEST(github.stub.requests().size() == requests);
  BOOST_TEST(github.lookups() == 0); // the event named it
  // Seen again with its token at hand: nothing is fetched.
  app->installation_seen("octo/app", 42);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  BOOST_TEST(github.tokens().size() == 1u);
  BOOST_TEST(app->tokens_issued() == 1);
  BOOST_TEST(github.jwt_problems().empty());
}

BOOST_AUTO_TEST_CASE(an_ending_app_does_not_wait_for_a_renewal_github_holds) {
  // GitHub gives a first token, then holds every later exchange without
  // answering (up to two minutes); the app's own timeout is ten minutes.
  http_stub github;
  std::atomic<bool> released{false};
  std::atomic<int> exchanges{0};
  github.respond_with([&](const recorded_request& r) {
    if (r.target.find("/installation") != std::string::npos
        && r.method == "GET")
      return stub_response{200, {}, R"({"id":42})"};
    if (++exchanges == 1) {
      std::time_t at = std::time(nullptr) + 65;
      std::tm tm{};
      gmtime_r(&at, &tm);
      char buf[32];
      std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
      return stub_response{201,
                           {},
                           std::string{R"({"token":"ghs_first","expires_at":")"}
                             + buf + "\"}"};
    }
    for (int i = 0; i < 1200 && !released; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return stub_response{500, {}, "{}"};
  });
  auto app = app_at(github.base_url(), 600000);
  BOOST_TEST(app->token_for("octo/app").token == "ghs_first");
  // The refresher renews it ahead of its last minute: GitHub holds that.
  BOOST_REQUIRE(github.wait_for(3, 60000));
  // Ending the app ends the held renewal instead of waiting for its
  // timeout (or for GitHub).
  std::atomic<bool> ended{false};
  std::thread ender{[&] {
    app.reset();
    ended = true;
  }};
  for (int i = 0; i < 600 && !ended; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  BOOST_TEST(ended.load());
  BOOST_TEST(!released.load());
  released = true;
  ender.join();
}

namespace {

/// `{"token": token, "expires_at": in an hour}`, as GitHub answers an
/// exchange.
std::string token_answer(const std::string& token) {
  std::time_t at = std::time(nullptr) + 3600;
  std::tm tm{};
  gmtime_r(&at, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return R"({"token":")" + token + R"(","expires_at":")" + buf + "\"}";
}

} // namespace

BOOST_AUTO_TEST_CASE(asking_for_a_token_not_at_hand_never_waits_for_github) {
  // GitHub holds the installation lookup until the test lets it go (at
  // most a minute); the exchange is answered at once.
  http_stub github;
  std::atomic<bool> released{false};
  github.respond_with([&](const recorded_request& r) {
    if (r.method == "GET" && r.target == "/repos/octo/app/installation") {
      for (int i = 0; i < 3000 && !released; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return stub_response{200, {}, R"({"id":42})"};
    }
    if (r.method == "POST" && r.target == "/app/installations/42/access_tokens")
      return stub_response{201, {}, token_answer("ghs_fetched")};
    return stub_response{404, {}, R"({"message":"Not Found"})"};
  });
  auto app = app_at(github.base_url());
  std::atomic<int> ready{0};
  // Nothing at hand: the answer comes while GitHub still holds the lookup
  // (were it waited for, it would come only after the release, with the
  // token).
  auto first = app->token_at_hand("octo/app", [&] { ++ready; });
  BOOST_TEST(!first.has_value());
  BOOST_REQUIRE(github.wait_for(1));
  BOOST_TEST(!app->token_at_hand("octo/app", [&] { ++ready; }).has_value());
  BOOST_TEST(ready.load() == 0);
  BOOST_TEST(!released.load());
  released = true;
  for (int i = 0; i < 1000 && ready.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Both askers are told once the app's thread has the token.
  BOOST_TEST(ready.load() == 2);
  auto t = app->token_at_hand("octo/app");
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(t->error == "");
  BOOST_TEST(t->token == "ghs_fetched");
  BOOST_TEST(t->installation == 42);
  // Asked three times: one lookup and one exchange.
  auto calls = github.requests();
  BOOST_REQUIRE_EQUAL(calls.size(), 2u);
  BOOST_TEST(calls[0].target == "/repos/octo/app/installation");
  BOOST_TEST(calls[1].target == "/app/installations/42/access_tokens");
}

BOOST_AUTO_TEST_CASE(a_stopped_app_calls_nobody_back_and_fetches_nothing) {
  // GitHub holds the lookup (at most a minute) while the app stops.
  http_stub github;
  std::atomic<bool> released{false};
  std::atomic<bool> answered{false};
  github.respond_with([&](const recorded_request&) {
    for (int i = 0; i < 3000 && !released; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    answered = true;
    return stub_response{200, {}, R"({"id":42})"};
  });
  auto app = app_at(github.base_url(), 600000);
  std::atomic<int> ready{0};
  BOOST_TEST(!app->token_at_hand("octo/app", [&] { ++ready; }).has_value());
  BOOST_REQUIRE(github.wait_for(1));
  // stop() gives the held lookup up instead of waiting for GitHub.
  app->stop();
  BOOST_TEST(!answered.load());
  auto t = app->token_at_hand("octo/other", [&] { ++ready; });
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(t->error == "heaven is stopping: no token is fetched");
  released = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  BOOST_TEST(ready.load() == 0);
  BOOST_TEST(github.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_token_the_app_thread_cannot_get_is_a_standing_failure) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  github.fail_exchanges(1);
  // The failure stands a minute: while the test looks.
  auto app = app_at(github.api_url(), 20000, 60000);
  std::atomic<bool> ready{false};
  BOOST_TEST(!app->token_at_hand("octo/app", [&] { ready = true; }));
  for (int i = 0; i < 1000 && !ready; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_REQUIRE(ready.load());
  // The asker, told, finds the failure at hand (for the failure pause).
  auto t = app->token_at_hand("octo/app");
  BOOST_REQUIRE(t.has_value());
  BOOST_TEST(t->token == "");
  BOOST_TEST(t->error.find("could not get a token of installation 42")
             != std::string::npos);
  BOOST_TEST(github.tokens().empty());
}

BOOST_AUTO_TEST_CASE(a_refused_token_is_replaced_by_a_new_one) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  auto app = make_app(github);
  auto a = app->token_for("octo/app").token;
  BOOST_TEST(app->refused("octo/app", a));
  auto b = app->token_for("octo/app").token;
  BOOST_TEST(b != a);
  // A late 401 for the old token does not throw the new one away.
  BOOST_TEST(app->refused("octo/app", a));
  BOOST_TEST(app->token_for("octo/app").token == b);
  BOOST_TEST(github.tokens().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_failed_exchange_is_a_passing_error_that_says_why) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  github.fail_exchanges(1);
  auto app = make_app(github);
  auto t = app->token_for("octo/app");
  BOOST_TEST(t.token == "");
  BOOST_TEST(t.error.find("could not get a token of installation 42")
             != std::string::npos);
  BOOST_TEST(t.error.find("HTTP 500") != std::string::npos);
  // For a moment the failure stands: a caller gets it without calling
  // GitHub (in an outage, callers do not each block on GitHub).
  auto calls = github.jwt_calls();
  auto soon = app->token_for("octo/app");
  BOOST_TEST(soon.error == t.error);
  BOOST_TEST(github.jwt_calls() == calls);
  // Then heaven asks again.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto again = app->token_for("octo/app");
  BOOST_TEST(again.error == "");
  BOOST_TEST(again.token == github.tokens().back().token);
  BOOST_TEST(github.jwt_calls() > calls);
}

BOOST_AUTO_TEST_CASE(issued_tokens_are_redacted_from_every_log) {
  app_github github{app_id, the_key().public_pem};
  github.install("octo/app", 42);
  auto app = make_app(github);
  auto token = app->token_for("octo/app").token;
  redactor none{}; // configured with no secret at all
  BOOST_TEST(none("git said " + token + " twice")
             == "git said [redacted] twice");
}

BOOST_AUTO_TEST_CASE(the_github_token_helpers_read_and_replace_the_header) {
  github_api api{"https://api.github.com/", "ghs_oldTOKEN"};
  auto req = compare_request(api, "octo/app", "a", "b");
  BOOST_TEST(github_token_of(req) == "ghs_oldTOKEN");
  set_github_token(req, "ghs_newTOKEN");
  BOOST_TEST(github_token_of(req) == "ghs_newTOKEN");
  int auth = 0;
  for (auto& [k, v] : req.headers)
    auth += k == "Authorization";
  BOOST_TEST(auth == 1);
  set_github_token(req, "");
  BOOST_TEST(github_token_of(req) == "");
}

BOOST_AUTO_TEST_CASE(settings_read_the_app_and_keep_its_key_from_children) {
  auto dir = make_temp_dir("github-app-settings");
  auto cwd = fs::current_path();
  fs::current_path(dir); // no conf/heaven.conf
  auto key_file = the_key().private_pem.string();
  auto loaded = load_settings(
    {"--github-app-id", "4242", "--github-app-private-key-file", key_file}, {});
  auto missing_key = load_settings({}, {{"GITHUB_APP_ID", "4242"}});
  auto missing_id = load_settings({}, {{"GITHUB_APP_PRIVATE_KEY", pem()}});
  auto bad_id = load_settings({}, {{"GITHUB_APP_ID", "my-app"}});
  fs::current_path(cwd);
  BOOST_REQUIRE(std::holds_alternative<settings>(loaded));
  auto& cfg = std::get<settings>(loaded);
  BOOST_TEST(cfg.github_app_id == "4242");
  // The whole PEM, not its first line.
  BOOST_TEST(cfg.github_app_private_key.find(key_line(pem()))
             != std::string::npos);
  BOOST_TEST(cfg.github_app_private_key.find("END RSA PRIVATE KEY")
             != std::string::npos);
  BOOST_TEST(std::get<std::string>(missing_key).find("GITHUB_APP_PRIVATE_KEY")
             != std::string::npos);
  BOOST_TEST(std::get<std::string>(missing_id).find("GITHUB_APP_ID")
             != std::string::npos);
  BOOST_TEST(std::get<std::string>(missing_id).find(key_line(pem()))
             == std::string::npos);
  BOOST_TEST(std::get<std::string>(bad_id).find("GITHUB_APP_ID")
             != std::string::npos);
  // Deploy scripts never get the key; the logs never show a line of it.
  string_pairs env = {{"GITHUB_APP_PRIVATE_KEY", pem()},
                      {"GITHUB_APP_ID", "4242"},
                      {"PATH", "/bin"}};
  auto child = child_environment(cfg, env);
  BOOST_TEST(!get_env(child, "GITHUB_APP_PRIVATE_KEY"));
  BOOST_TEST(get_env(child, "PATH").value_or("") == "/bin");
  redactor redact{secret_values(cfg, env)};
  auto shown = redact("the key: " + key_line(pem()));
  BOOST_TEST(shown.find(key_line(pem())) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
