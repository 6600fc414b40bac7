// The OUTBOX actor with the GitHub status courier, in a virtual world
// (tests/support): the real store on a real SQLite file, a GitHub stand-in
// behind the fake HTTP client, virtual time. One case (a request curl
// refuses) runs against a stand-in on a real socket through the real
// http_client actor.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/http_client.hpp"
#include "actors/outbox.hpp"
#include "actors/statuses.hpp"
#include "actors/store.hpp"
#include "base/health.hpp"
#include "base/lifecycle.hpp"
#include "tests/support/logger.hpp"
#include "tests/support/virtual_world.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr auto token = "ghp_secret_token_123";

/// GitHub's deployment statuses API, as far as the outbox uses it: POST
/// creates a status (unless `answer` says otherwise), GET lists them newest
/// first. `answer` decides each POST's fate: the response, and whether
/// GitHub kept the status (it may keep it although the answer never comes).
struct fake_github {
  struct fate {
    test::stub_response response;
    bool kept = true;
    /// How long GitHub takes to answer (virtual time).
    std::chrono::milliseconds delay{0};
    /// GitHub answers only when the test releases it.
    bool held = false;
  };

  /// Kept statuses per deployment id: (state, description), oldest first.
  std::map<int64_t, std::vector<std::pair<std::string, std::string>>> kept;
  std::function<fate(const test::recorded_request&, int post_number)> answer;
  int posts = 0;
  /// What GET /rate_limit answers.
  int rate_limit_status = 200;

  test::fake_reply operator()(const test::recorded_request& r) {
    auto path = r.target.substr(0, r.target.find('?'));
    if (path == "/rate_limit")
      return test::stub_response{rate_limit_status, {}, "{}"};
    auto id = std::stoll(path.substr(path.find("/deployments/") + 13));
    if (r.method == "GET") {
      auto list = json::array();
      auto& xs = kept[id];
      for (auto i = xs.rbegin(); i != xs.rend(); ++i)
        list.push_back({{"id", 1000 + list.size()},
                        {"state", i->first},
                        {"description", i->second}});
      return test::stub_response{
        200, {{"Content-Type", "application/json"}}, list.dump()};
    }
    fate f;
    auto n = ++posts;
    if (answer)
      f = answer(r, n);
    if (f.kept) {
      auto body = json::parse(r.body);
      kept[id].emplace_back(body.at("state"), body.at("description"));
    }
    if (f.held)
      return test::fake_reply::held(f.response);
    return test::fake_reply{f.response}.after(f.delay);
  }
};

struct fixture : test::virtual_world {
  /// With the log context, to see which deployment a line is about.
  test::captured_log log{5000, true};
  test::fake_host& gh = net->host("http://github.test/");
  std::shared_ptr<fake_github> github = std::make_shared<fake_github>();
  // No jitter: the tests assert exact waits.
  outbox_options opts = [] {
    outbox_options o;
    o.jitter = 0;
    return o;
  }();
  outbox_actor box;

  fixture() {
    open_store();
    auto g = github;
    gh.respond_with([g](const test::recorded_request& r) { return (*g)(r); });
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.request_timeout_ms = 3000;
    opts.now_ms = clock_ms();
  }

  ~fixture() {
    stop(box);
  }

  github_api api() const {
    return github_api{gh.base_url(), token};
  }

  /// Starts the outbox: rows added after this are new, rows added before
  /// were left by "an earlier run".
  void start_outbox(github_api a) {
    auto ready = std::make_shared<bool>(false);
    opts.ready = [ready] { *ready = true; };
    box = sys.spawn(outbox, store, http,
                    status_courier(a,
                                   [](int64_t id) {
                                     return "https://heaven.example/"
                                            "deployments/"
                                            + std::to_string(id) + "/log";
                                   }),
                    opts);
    run();
    BOOST_REQUIRE(*ready);
  }

  void start_outbox() {
    start_outbox(api());
  }

  /// Writes a status of deployment 7 (heaven's id 1) to the store's outbox,
  /// as a transition would.
  void add(std::string state, std::string description, int64_t github_id = 7,
           int64_t id = 1) {
    json body = {{"repo", "octo/app"},
                 {"github_id", github_id},
                 {"deployment_id", id},
                 {"state", std::move(state)},
                 {"description", std::move(description)},
                 {"environment_url", ""}};
    outbox_change change;
    change.added.push_back(
      {0, "status", "d" + std::to_string(id), body.dump(), 0});
    ask<bool>(store, outbox_atom::value, change);
  }

  /// Outcomes of the outbox rows, in id order, once none is unsettled.
  std::vector<std::string> outcomes(size_t n) {
    std::vector<std::string> out;
    bool settled = run_until([&] {
      out = query("SELECT coalesce(outcome, 'unsettled') FROM outbox ORDER "
                  "BY id");
      return out.size() == n
             && std::count(out.begin(), out.end(), "unsettled") == 0;
    });
    BOOST_TEST(settled, "outbox rows still unsettled");
    return out;
  }

  std::vector<test::recorded_request> requests() const {
    return gh.requests();
  }

  /// "POST queued", "GET", ... for every request GitHub got.
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    for (auto& r : gh.requests()) {
      if (r.method == "POST")
        out.push_back("POST "
                      + json::parse(r.body).at("state").get<std::string>());
      else
        out.push_back(r.method + " " + r.target);
    }
    return out;
  }

  /// When each request was sent, in virtual ms after the first.
  std::vector<int64_t> times() const {
    std::vector<int64_t> out;
    auto all = gh.calls();
    for (auto* c : all)
      out.push_back((c->at - all.front()->at).count());
    return out;
  }

  bool logged(const std::string& text) const {
    return log.has(text);
  }

  void check_no_token_logged() const {
    for (auto& line : log.lines())
      BOOST_TEST(line.find(token) == std::string::npos, line);
  }
};

/// The outbox, the real http_client actor and a GitHub stand-in on a real
/// socket: for what only curl decides.
struct real_fixture {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor client = sys.spawn(http_client);
  store_actor db;
  test::http_stub stub;
  test::captured_log log;
  // No jitter: the tests assert exact waits.
  outbox_options opts = [] {
    outbox_options o;
    o.jitter = 0;
    return o;
  }();
  outbox_actor box;
  caf::scoped_actor self{sys};

  real_fixture() {
    db = sys.spawn(store, (dir.path / "heaven.db").string(),
                   std::shared_ptr<health_board>{}, true);
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.request_timeout_ms = 3000;
  }

  ~real_fixture() {
    caf::anon_send_exit(box, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(db, caf::exit_reason::user_shutdown);
  }

  void start_outbox() {
    auto ready = std::make_shared<std::atomic<bool>>(false);
    opts.ready = [ready] { *ready = true; };
    box = sys.spawn(outbox, db, client,
                    status_courier(github_api{stub.base_url(), token},
                                   [](int64_t id) {
                                     return "https://heaven.example/"
                                            "deployments/"
                                            + std::to_string(id) + "/log";
                                   }),
                    opts);
    BOOST_REQUIRE(test::eventually([&] { return ready->load(); }, 20s));
  }

  void add(const json& body, const std::string& stream) {
    outbox_change change;
    change.added.push_back({0, "status", stream, body.dump(), 0});
    self->request(db, 10s, outbox_atom::value, change)
      .receive([](bool) {}, [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  }

  /// Outcomes of the outbox rows, in id order, once none is unsettled.
  std::vector<std::string> outcomes(size_t n) {
    std::vector<std::string> out;
    bool settled = test::eventually(
      [&] {
        out = test::sqlite_column(dir.path / "heaven.db",
                                  "SELECT coalesce(outcome, 'unsettled') FROM "
                                  "outbox ORDER BY id");
        return out.size() == n
               && std::count(out.begin(), out.end(), "unsettled") == 0;
      },
      20s);
    BOOST_TEST(settled, "outbox rows still unsettled");
    return out;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(statuses_tests)

BOOST_AUTO_TEST_CASE(body_has_only_non_empty_urls) {
  github_status s{"octo/app", 7, status_state::success, "Deployed", "", ""};
  BOOST_TEST(json::parse(status_body(s))
             == json({{"state", "success"}, {"description", "Deployed"}}));
  s.log_url = "https://heaven.example/deployments/3/log";
  s.environment_url = "https://app.example";
  BOOST_TEST(
    json::parse(status_body(s))
    == json({{"state", "success"},
             {"description", "Deployed"},
             {"log_url", "https://heaven.example/deployments/3/log"},
             {"target_url", "https://heaven.example/deployments/3/log"},
             {"environment_url", "https://app.example"}}));
}

BOOST_AUTO_TEST_CASE(terminal_states) {
  BOOST_TEST(terminal(deploy_state::success));
  BOOST_TEST(terminal(deploy_state::failure));
  BOOST_TEST(terminal(deploy_state::error));
  BOOST_TEST(!terminal(deploy_state::queued));
  BOOST_TEST(!terminal(deploy_state::running));
  // A running deployment's status says in_progress; "pending" is no state.
  BOOST_TEST(to_string(status_state_of(deploy_state::running))
             == "in_progress");
  BOOST_TEST(!parse<deploy_state>("in_progress"));
  BOOST_TEST(!parse<status_state>("pending"));
}

BOOST_AUTO_TEST_CASE(retry_at_reads_retry_after_and_rate_limit_resets) {
  auto now = int64_t{1'700'000'000'000};
  http_response res;
  BOOST_TEST(retry_at(res, now) == 0);
  res.headers = {{"retry-after", "30"}};
  BOOST_TEST(retry_at(res, now) == now + 30'000);
  res.headers = {{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}};
  BOOST_TEST(retry_at(res, now) == int64_t{1445412480} * 1000);
  res.headers = {{"x-ratelimit-remaining", "0"},
                 {"x-ratelimit-reset", "1700000100"}};
  BOOST_TEST(retry_at(res, now) == int64_t{1700000100} * 1000);
  // A reset without an exhausted limit names no wait.
  res.headers = {{"x-ratelimit-remaining", "12"},
                 {"x-ratelimit-reset", "1700000100"}};
  BOOST_TEST(retry_at(res, now) == 0);
}

BOOST_AUTO_TEST_CASE(backoff_doubles_up_to_its_cap_with_injectable_jitter) {
  retry_policy p;
  p.jitter = 0;
  p.attempts = 3;
  p.first_backoff = 10ms;
  p.max_backoff = 50ms;
  BOOST_TEST(backoff(p, 1).count() == 10);
  BOOST_TEST(backoff(p, 2).count() == 20);
  BOOST_TEST(backoff(p, 3).count() == 40);
  BOOST_TEST(backoff(p, 4).count() == 50);
  // Jitter takes a random share off each wait; tests fix the randomness.
  p.jitter = 0.5;
  p.random = [] { return 0.5; };
  BOOST_TEST(backoff(p, 2).count() == 15);
  http_response res;
  res.status = 503;
  BOOST_TEST(retry_allowed(p, res, 2));
  BOOST_TEST(!retry_allowed(p, res, 3));
  res.permanent = true;
  BOOST_TEST(!retry_allowed(p, res, 1));
  // A Retry-After in seconds replaces the backoff, within max_server_wait.
  res = http_response{};
  res.status = 429;
  res.headers = {{"retry-after", "0"}};
  BOOST_TEST(retry_wait(p, 2, res).count() == 0);
  res.headers = {{"retry-after", "7200"}};
  BOOST_TEST(retry_wait(p, 2, res).count() == 3'600'000);
}

BOOST_FIXTURE_TEST_CASE(posts_in_order_with_exact_requests, fixture) {
  // Slow answers: an outbox that did not wait would overlap requests.
  github->answer = [&](const test::recorded_request&, int) {
    fake_github::fate f;
    f.delay = 30ms;
    return f;
  };
  start_outbox();
  add("queued", "Deployment queued");
  add("in_progress", "Deploying");
  add("success", "Deployed in 3s");
  BOOST_TEST(
    outcomes(3)
    == (std::vector<std::string>{"delivered", "delivered", "delivered"}));
  BOOST_TEST(gh.max_in_flight() == 1);
  // Each one as soon as the one before was answered.
  BOOST_TEST(times() == (std::vector<int64_t>{0, 30, 60}));
  auto reqs = requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 3u);
  for (auto& r : reqs) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/repos/octo/app/deployments/7/statuses");
    BOOST_TEST(r.header("accept") == "application/vnd.github+json");
    BOOST_TEST(r.header("authorization") == "token ghp_secret_token_123");
    BOOST_TEST(r.header("content-type") == "application/json");
    BOOST_TEST(r.header("user-agent") == "heaven");
  }
  auto log = "https://heaven.example/deployments/1/log";
  BOOST_TEST(json::parse(reqs[0].body)
             == json({{"state", "queued"},
                      {"description", "Deployment queued"},
                      {"log_url", log},
                      {"target_url", log}}));
  BOOST_TEST(json::parse(reqs[2].body)
             == json({{"state", "success"},
                      {"description", "Deployed in 3s"},
                      {"log_url", log},
                      {"target_url", log}}));
  check_no_token_logged();
}

BOOST_FIXTURE_TEST_CASE(different_deployments_are_posted_at_once, fixture) {
  // GitHub holds deployment 7's status: an outbox that posted one
  // deployment at a time would not send deployment 8's meanwhile.
  github->answer = [&](const test::recorded_request& r, int) {
    fake_github::fate f;
    f.held = r.target.find("/deployments/7/") != std::string::npos;
    return f;
  };
  start_outbox();
  add("queued", "seven", 7, 1);
  add("queued", "eight", 8, 2);
  BOOST_REQUIRE_EQUAL(gh.waiting().size(), 1u);
  auto seven = gh.waiting()[0]->id;
  auto reqs = requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 2u);
  BOOST_TEST(reqs[1].target == "/repos/octo/app/deployments/8/statuses");
  BOOST_TEST(query("SELECT coalesce(outcome, 'unsettled') FROM outbox ORDER "
                   "BY id")
             == (std::vector<std::string>{"unsettled", "delivered"}));
  net->release(seven);
  BOOST_TEST(outcomes(2)
             == (std::vector<std::string>{"delivered", "delivered"}));
}

BOOST_FIXTURE_TEST_CASE(endpoint_joins_with_one_slash, fixture) {
  auto a = api();
  a.endpoint = gh.base_url() + "api/v3/";
  // The stand-in serves every path: the one asked for is what counts.
  start_outbox(a);
  add("error", "boom");
  outcomes(1);
  auto reqs = requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].target == "/api/v3/repos/octo/app/deployments/7/statuses");
}

BOOST_FIXTURE_TEST_CASE(server_errors_are_looked_up_then_retried, fixture) {
  github->answer = [](const test::recorded_request&, int n) {
    fake_github::fate f;
    if (n == 1) {
      f.response = {502, {}, "bad gateway"};
      f.kept = false;
    } else if (n == 2) {
      f.response = {429, {{"Retry-After", "0"}}, "slow down"};
      f.kept = false;
    }
    return f;
  };
  start_outbox();
  add("queued", "Queued");
  add("success", "Deployed");
  BOOST_TEST(outcomes(2)
             == (std::vector<std::string>{"delivered", "delivered"}));
  // A 502 may come from a proxy after GitHub took the status: look before
  // sending again. A 429 surely took nothing: send again after the wait.
  BOOST_TEST(
    calls()
    == (std::vector<std::string>{
      "POST queued", "GET /repos/octo/app/deployments/7/statuses?per_page=100",
      "POST queued", "POST queued", "POST success"}));
  // The lookup and the next POST after 10 ms; after the 429, 20 ms.
  BOOST_TEST(times() == (std::vector<int64_t>{0, 10, 10, 30, 30}));
  BOOST_TEST(logged("status queued of octo/app deployment 7 failed (HTTP "
                    "502), attempt 1"));
  // Every line about a row carries its deployment (heaven's id 1) and
  // repository: the JSON log's fields.
  int about = 0;
  for (auto& line : log.lines())
    if (line.find("of octo/app deployment 7") != std::string::npos) {
      ++about;
      BOOST_TEST(line.ends_with(" [deployment=1 repository=octo/app]"), line);
    }
  BOOST_TEST(about >= 2);
}

BOOST_FIXTURE_TEST_CASE(a_post_whose_answer_is_lost_is_not_sent_twice,
                        fixture) {
  opts.request_timeout_ms = 300;
  github->answer = [](const test::recorded_request&, int n) {
    fake_github::fate f;
    if (n == 1)
      f.delay = 1500ms; // GitHub keeps it, but answers too late.
    return f;
  };
  start_outbox();
  add("success", "Deployed");
  BOOST_TEST(outcomes(1) == (std::vector<std::string>{"delivered"}));
  BOOST_TEST(calls()
             == (std::vector<std::string>{
               "POST success",
               "GET /repos/octo/app/deployments/7/statuses?per_page=100"}));
  // The POST timed out after 300 ms; the lookup came 10 ms later.
  BOOST_TEST(gh.calls()[0]->state == test::fake_call::fate::timed_out);
  BOOST_TEST(times() == (std::vector<int64_t>{0, 310}));
  BOOST_TEST(github->kept[7].size() == 1u);
  BOOST_TEST(logged("status success of octo/app deployment 7 had arrived "
                    "already: not sending it again"));
}

BOOST_FIXTURE_TEST_CASE(a_post_lost_on_the_way_is_sent_again, fixture) {
  opts.request_timeout_ms = 300;
  github->answer = [](const test::recorded_request&, int n) {
    fake_github::fate f;
    if (n == 1) {
      f.delay = 1500ms;
      f.kept = false; // It never reached GitHub's database.
    }
    return f;
  };
  start_outbox();
  add("failure", "deploy/run.sh exited with status 3");
  BOOST_TEST(outcomes(1) == (std::vector<std::string>{"delivered"}));
  BOOST_TEST(
    calls()
    == (std::vector<std::string>{
      "POST failure", "GET /repos/octo/app/deployments/7/statuses?per_page=100",
      "POST failure"}));
  BOOST_TEST(times() == (std::vector<int64_t>{0, 310, 310}));
  BOOST_TEST(github->kept[7].size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(an_answer_that_can_never_succeed_drops_the_status,
                        fixture) {
  github->answer = [](const test::recorded_request& r, int) {
    fake_github::fate f;
    if (json::parse(r.body).at("state") == "in_progress") {
      f.response = {422, {}, R"({"message":"Validation Failed"})"};
      f.kept = false;
    }
    return f;
  };
  start_outbox();
  add("in_progress", "Deploying");
  add("success", "Deployed");
  auto out = outcomes(2);
  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[0] == R"(dropped: HTTP 422: {"message":"Validation Failed"})");
  BOOST_TEST(out[1] == "delivered");
  BOOST_TEST(calls()
             == (std::vector<std::string>{"POST in_progress", "POST success"}));
  BOOST_TEST(logged("error status in_progress of octo/app deployment 7 is "
                    "dropped: HTTP 422"));
}

BOOST_FIXTURE_TEST_CASE(a_request_heaven_cannot_make_is_not_retried,
                        real_fixture) {
  start_outbox();
  // A name no webhook could bring any more (intake refuses it), as a
  // database from before the limits might hold: curl refuses a request
  // head this long.
  json body = {{"repo", "octo/" + std::string(2 * 1024 * 1024, 'a')},
               {"github_id", 7},
               {"deployment_id", 1},
               {"state", "success"},
               {"description", "Deployed"},
               {"environment_url", ""}};
  add(body, "d1");
  add({{"repo", "octo/app"},
       {"github_id", 8},
       {"deployment_id", 2},
       {"state", "queued"},
       {"description", "next one"},
       {"environment_url", ""}},
      "d2");
  auto out = outcomes(2);
  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[0].rfind("dropped: heaven cannot make the request: ", 0) == 0u,
             out[0]);
  BOOST_TEST(out[1] == "delivered");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].method == "POST");
  BOOST_TEST(json::parse(reqs[0].body).at("state") == "queued");
}

BOOST_FIXTURE_TEST_CASE(a_401_drops_only_when_the_token_is_refused, fixture) {
  // First GitHub refuses once although the token is good: retried.
  github->answer = [](const test::recorded_request&, int n) {
    fake_github::fate f;
    if (n == 1) {
      f.response = {401, {}, R"({"message":"Bad credentials"})"};
      f.kept = false;
    }
    return f;
  };
  start_outbox();
  add("queued", "Queued");
  BOOST_TEST(outcomes(1) == (std::vector<std::string>{"delivered"}));
  BOOST_TEST(calls()
             == (std::vector<std::string>{"POST queued", "GET /rate_limit",
                                          "POST queued"}));
  // Then the token itself is refused: dropped.
  github->rate_limit_status = 401;
  github->answer = [](const test::recorded_request&, int) {
    fake_github::fate f;
    f.response = {401, {}, R"({"message":"Bad credentials"})"};
    f.kept = false;
    return f;
  };
  add("success", "Deployed");
  auto out = outcomes(2);
  BOOST_REQUIRE(out.size() == 2u);
  BOOST_TEST(out[1]
             == "dropped: HTTP 401: the credentials are refused (checked "
                "again)");
  BOOST_TEST(requests().size() == 5u);
}

BOOST_FIXTURE_TEST_CASE(a_status_older_than_the_limit_is_dropped, fixture) {
  opts.max_age = std::chrono::hours(24);
  // The clock says two days (and a minute) have passed since the row was
  // written (the store stamps rows by the real clock, which goes on while
  // virtual time stands still).
  opts.now_ms = clock_ms(48h + 1min);
  start_outbox();
  add("success", "Deployed");
  auto out = outcomes(1);
  BOOST_REQUIRE(out.size() == 1u);
  BOOST_TEST(out[0].rfind("dropped: undelivered after 1728", 0) == 0u, out[0]);
  BOOST_TEST(requests().empty());
  BOOST_TEST(logged("error status success of octo/app deployment 7 is "
                    "dropped: undelivered after"));
}

BOOST_FIXTURE_TEST_CASE(statuses_left_by_an_earlier_run_are_looked_up_first,
                        fixture) {
  // An earlier heaven may have posted the first before it died.
  github->kept[7] = {{"queued", "Queued"}};
  add("queued", "Queued");
  add("in_progress", "Deploying");
  start_outbox();
  BOOST_TEST(outcomes(2)
             == (std::vector<std::string>{"delivered", "delivered"}));
  BOOST_TEST(calls()
             == (std::vector<std::string>{
               "GET /repos/octo/app/deployments/7/statuses?per_page=100",
               "GET /repos/octo/app/deployments/7/statuses?per_page=100",
               "POST in_progress"}));
  BOOST_TEST(github->kept[7].size() == 2u);
  // What is written while it runs is sent at once.
  add("success", "Deployed");
  outcomes(3);
  BOOST_TEST(calls().back() == "POST success");
  BOOST_TEST(calls().size() == 4u);
}

BOOST_FIXTURE_TEST_CASE(a_long_outage_delays_statuses_but_loses_none, fixture) {
  // GitHub answers 502 to everything for a while.
  bool down = true;
  github->answer = [&](const test::recorded_request&, int) {
    fake_github::fate f;
    if (down) {
      f.response = {502, {}, "bad gateway"};
      f.kept = false;
    }
    return f;
  };
  start_outbox();
  for (int id = 1; id <= 5; ++id) {
    add("queued", "Queued", 100 + id, id);
    add("success", "Deployed", 100 + id, id);
  }
  // Far more attempts than the five the old poster made.
  BOOST_TEST(run_until([&] { return github->posts >= 40; }));
  down = false;
  BOOST_TEST(outcomes(10) == std::vector<std::string>(10, "delivered"));
  for (int id = 1; id <= 5; ++id)
    BOOST_TEST(github->kept[100 + id]
               == (std::vector<std::pair<std::string, std::string>>{
                 {"queued", "Queued"}, {"success", "Deployed"}}));
}

BOOST_FIXTURE_TEST_CASE(truncates_long_descriptions, fixture) {
  std::string long_text(200, 'x');
  start_outbox();
  add("failure", long_text);
  outcomes(1);
  auto reqs = requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  auto description
    = json::parse(reqs[0].body).at("description").get<std::string>();
  BOOST_TEST(description.size() <= 140u);
  BOOST_TEST(description.size() >= 130u);
  BOOST_TEST(description.substr(description.size() - 3) == "...");
}

BOOST_FIXTURE_TEST_CASE(without_token_posts_nothing, fixture) {
  auto a = api();
  a.token = "";
  start_outbox(a);
  add("queued", "Queued");
  add("success", "Deployed");
  BOOST_TEST(outcomes(2)
             == (std::vector<std::string>{"delivered: nothing to send",
                                          "delivered: nothing to send"}));
  BOOST_TEST(requests().empty());
  BOOST_TEST(logged("info status queued of octo/app deployment 7 (Queued) "
                    "not posted: GITHUB_TOKEN is not set [deployment=1 "
                    "repository=octo/app]"));
}

BOOST_AUTO_TEST_SUITE_END()
