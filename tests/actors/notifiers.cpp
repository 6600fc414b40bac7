// Chat notifications end to end inside heaven: the real store queues a
// notice for every deployment_status event it accepts, the notice outbox
// asks a GitHub stand-in for the commit list and turns the notice into one
// row per chat service and message, and each chat service's outbox delivers
// them to a stand-in for Slack, HipChat, Campfire, Flowdock or a generic
// webhook receiver. In a virtual world (tests/support): real SQLite files,
// the stand-ins behind the fake HTTP client, virtual time (retries, slow and
// silent services are exact, and "nothing more is sent" is proved by
// letting every timer fire). heaven "restarts" by stopping its actors and
// starting new ones on the same database. What only curl decides runs
// through the real http_client actor to stand-ins on real sockets.
#include "actors/notify.hpp"
#include "tests/support/logger.hpp"
#include "tests/support/virtual_world.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "actors/http_client.hpp"
#include "actors/store.hpp"
#include "base/webhook.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto sha = "c0ffee0000000000000000000000000000000003";
constexpr auto base_sha = "ba5e000000000000000000000000000000000000";
constexpr auto log_url = "https://heaven.example/deployments/17/log";
constexpr auto slack_token = "SLACKSECRETTOKEN0001";
constexpr auto hipchat_token = "hipchat-secret-token-0002";
constexpr auto campfire_token = "campfire-secret-token-0003";
constexpr auto flow_token = "flowdock-secret-token-0004";
constexpr auto webhook_secret = "webhook-secret-0005";
constexpr auto gh_token = "ghp_notify_test_token_0006";

/// Runs `sql` on its own connection to `db`; the first column of each row.
std::vector<std::string> sql(const std::filesystem::path& db,
                             const std::string& text) {
  std::vector<std::string> out;
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr)
      == SQLITE_OK) {
    sqlite3_busy_timeout(conn, 5000);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, text.c_str(), -1, &stmt, nullptr)
        == SQLITE_OK) {
      while (sqlite3_step(stmt) == SQLITE_ROW) {
        auto p = sqlite3_column_text(stmt, 0);
        out.emplace_back(p ? reinterpret_cast<const char*>(p) : "NULL");
      }
    } else {
      BOOST_FAIL(sqlite3_errmsg(conn));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(conn);
  return out;
}

/// A notice as the receiver makes it from a `deployment_status` event.
deployment_notice notice(std::string state, int64_t id = 42) {
  deployment_notice n;
  n.repo = "octo/app";
  n.app = "app";
  n.repo_url = "https://github.com/octo/app";
  n.deployment_id = id;
  n.status_id = 7;
  n.state = std::move(state);
  n.description = n.state == "error" ? "Timed out after 300 seconds" : "";
  n.log_url = log_url;
  n.environment_url = "https://app.example";
  n.environment = "production";
  n.task = "deploy";
  n.ref = "main";
  n.sha = sha;
  n.deployment_description = "Deploying from hubot";
  n.creator = "octocat";
  n.chat_user = "alice";
  n.room = "ops";
  return n;
}

/// A sha of 40 copies of `c`.
std::string sha_of(char c) {
  return std::string(40, c);
}

/// GitHub's compare answer (oldest commit first, as documented): three
/// commits, the middle one by someone without a GitHub account.
std::string compare_answer() {
  auto commit = [](char c, json author, std::string name, std::string msg) {
    return json{{"sha", sha_of(c)},
                {"html_url", "https://github.com/octo/app/commit/" + sha_of(c)},
                {"author", std::move(author)},
                {"committer", nullptr},
                {"commit",
                 {{"author", {{"name", name}, {"email", "x@example.com"}}},
                  {"message", msg}}}};
  };
  json answer = {
    {"url", "https://api.github.com/repos/octo/app/compare/x"},
    {"html_url", std::string{"https://github.com/octo/app/compare/"} + base_sha
                   + "..." + sha},
    {"status", "ahead"},
    {"ahead_by", 3},
    {"behind_by", 0},
    {"total_commits", 3},
    {"commits",
     {commit('1', {{"login", "bob"}, {"html_url", "https://github.com/bob"}},
             "Bob B", "First change\n\nWith a body"),
      commit('2', nullptr, "Carol C", "Second change, fixes #7 & #x"),
      commit('3', {{"login", "dave"}, {"html_url", "https://github.com/dave"}},
             "Dave D", "Third change\r\nmore")}},
    {"files",
     {{{"filename", "a.rb"},
       {"additions", 10},
       {"deletions", 2},
       {"changes", 12}},
      {{"filename", "b.rb"},
       {"additions", 1},
       {"deletions", 0},
       {"changes", 1}}}}};
  return answer.dump();
}

std::string compare_url() {
  return std::string{"https://github.com/octo/app/compare/"} + base_sha + "..."
         + sha;
}

stub_response ok() {
  return {200, {{"Content-Type", "application/json"}}, "{}"};
}

/// heaven's chat notifications in a virtual world (tests/support): the real
/// store on a real SQLite file, the chat services and GitHub behind the fake
/// HTTP client, virtual time.
/// The `deployment_status` event of `n` as the receiver hands it to the
/// store, with delivery id "ds-<delivery>".
inbound_event status_event(deployment_notice n, int delivery) {
  inbound_event ev;
  ev.delivery = "ds-" + std::to_string(delivery);
  ev.type = event_kind::deployment_status;
  ev.body = R"({"deployment_status":{}})";
  ev.repo = n.repo;
  ev.notice = std::move(n);
  return ev;
}

struct notify_fixture : virtual_world {
  /// With the log context: which deployment a line is about.
  captured_log log{5000, true};
  fake_host& slack = net->host("http://slack.test/");
  fake_host& hipchat = net->host("http://hipchat.test/");
  fake_host& campfire = net->host("http://campfire.test/");
  fake_host& flowdock = net->host("http://flowdock.test/");
  fake_host& hook = net->host("http://hooks.test/");
  fake_host& github = net->host("http://github.test/");
  std::vector<outbox_actor> boxes;
  outbox_options opts;
  int next_delivery = 1;

  notify_fixture() {
    for (auto* stub : {&slack, &hipchat, &campfire, &flowdock, &hook})
      stub->respond_with([](const recorded_request&) { return ok(); });
    github.respond_with([](const recorded_request& r) {
      if (r.method == "GET"
          && r.target
               == std::string{"/repos/octo/app/compare/"} + base_sha + "..."
                    + sha)
        return stub_response{
          200, {{"Content-Type", "application/json"}}, compare_answer()};
      return stub_response{404, {}, R"({"message":"Not Found"})"};
    });
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.jitter = 0;
    opts.request_timeout_ms = 5000;
    opts.now_ms = clock_ms();
    open_store();
  }

  ~notify_fixture() {
    stop_outboxes();
    if (std::getenv("NOTIFY_TEST_DUMP"))
      std::fprintf(stderr, "%s", logged().c_str());
  }

  void stop_outboxes() {
    for (auto& b : boxes)
      stop(b);
    boxes.clear();
  }

  /// heaven stops (its actors end) and starts again on the same database
  /// with `s`.
  void restart(settings s) {
    stop_outboxes();
    close_store();
    open_store();
    start(std::move(s));
  }

  std::string slack_url() const {
    return slack.base_url() + "services/T000/B000/" + slack_token;
  }

  /// No chat service configured; the tests turn on what they need.
  settings base() const {
    settings s;
    s.web_endpoint = "https://github.com/";
    s.api_endpoint = github.base_url();
    s.github_token = gh_token;
    s.slack_bot_name = "heaven-bot";
    s.slack_bot_icon = "https://icons.example/heaven.png";
    s.hipchat_room = "Developers";
    s.hipchat_server = hipchat.base_url();
    s.campfire_subdomain = "acme";
    s.campfire_endpoint = campfire.base_url() + "{subdomain}/";
    s.flowdock_endpoint = flowdock.base_url();
    return s;
  }

  settings with_slack(settings s) const {
    s.slack_webhook_url = slack_url();
    return s;
  }

  settings with_hipchat(settings s) const {
    s.hipchat_token = hipchat_token;
    return s;
  }

  settings with_campfire(settings s) const {
    s.campfire_token = campfire_token;
    return s;
  }

  settings with_flowdock(settings s) const {
    s.flowdock_flow_tokens
      = json{{"ops", flow_token}, {"qa", "other-flow"}}.dump();
    return s;
  }

  settings with_hook(settings s, bool secret = true) const {
    s.notify_webhook_url = hook.base_url() + "hooks/heaven";
    if (secret)
      s.notify_webhook_secret = webhook_secret;
    return s;
  }

  /// Spawns the outboxes `s` configures (one per chat service and the
  /// notice outbox), as heaven does, and runs until each has its rows.
  void start(settings s) {
    auto ready = std::make_shared<int>(0);
    auto o = opts;
    o.ready = [ready] { ++*ready; };
    boxes = spawn_chat_outboxes(sys, store, http, s, o);
    run();
    BOOST_REQUIRE_EQUAL(*ready, static_cast<int>(boxes.size()));
  }

  /// The store accepts the `deployment_status` event of `n`, as the
  /// receiver hands it over.
  void send(deployment_notice n) {
    auto ev = status_event(std::move(n), next_delivery++);
    BOOST_REQUIRE(!ask<accept_result>(store, accept_atom::value, ev).duplicate);
  }

  /// Sets the revision of octo/app on production, as an earlier deploy
  /// would have.
  void set_revision(const std::string& revision) {
    sql(db, "INSERT INTO revisions(repo, app, environment, sha, "
            "recorded_at) VALUES('octo/app', 'app', 'production', '"
              + revision
              + "', 'then') "
                "ON CONFLICT(repo, app, environment) DO UPDATE SET sha = "
                "excluded.sha");
  }

  /// The revision of octo/app on `environment` ("" when none).
  std::string revision(const std::string& environment = "production") {
    auto rows = sql(db, "SELECT sha FROM revisions WHERE repo = 'octo/app' "
                        "AND environment = '"
                          + environment + "'");
    return rows.empty() ? std::string{} : rows.front();
  }

  /// How many outbox rows of `kind` wait.
  int unsettled(const std::string& kind) {
    return std::stoi(sql(db, "SELECT count(*) FROM outbox WHERE kind = '" + kind
                               + "' AND settled_at IS NULL")
                       .front());
  }

  /// Runs until `stub` received `n` requests; whether it did.
  bool received(const fake_host& stub, std::size_t n) {
    return run_until([&] { return stub.requests().size() >= n; });
  }

  /// The `n` first requests `stub` received (fails the test when fewer came).
  std::vector<recorded_request> first(const fake_host& stub, std::size_t n) {
    BOOST_REQUIRE(received(stub, n));
    auto all = stub.requests();
    all.resize(n);
    return all;
  }

  /// The 5 requests of send_every_state for a chat service, with a check
  /// that no sixth one follows the sentinel, however long heaven goes on.
  std::vector<recorded_request> five(const fake_host& stub) {
    auto got = first(stub, 5);
    settle();
    BOOST_TEST(stub.requests().size() == 5u);
    return got;
  }

  /// When each request `stub` received was sent, in virtual ms after the
  /// first.
  static std::vector<int64_t> times(const fake_host& stub) {
    std::vector<int64_t> out;
    auto all = stub.calls();
    for (auto* c : all)
      out.push_back((c->at - all.front()->at).count());
    return out;
  }

  /// Everything heaven logged so far.
  std::string logged() const {
    return log.all();
  }

  /// Runs until the log holds `text` `times` times; whether it did.
  bool log_has(const std::string& text, std::size_t times = 1) {
    return run_until([&] {
      auto all = logged();
      std::size_t count = 0;
      for (auto at = all.find(text); at != std::string::npos;
           at = all.find(text, at + 1))
        ++count;
      return count >= times;
    });
  }
};

/// The chat outboxes through the real http_client actor, to stand-ins on
/// real sockets: for what only curl decides (a port nobody listens on, a
/// scheme it does not speak).
struct real_notify_fixture {
  temp_dir dir; // Declared first: removed after the system is gone.
  std::filesystem::path db = dir.path / "heaven.db";
  captured_log log;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  http_client_actor http = sys.spawn(http_client);
  store_actor store;
  http_stub slack;
  http_stub hipchat;
  std::vector<outbox_actor> boxes;
  outbox_options opts;
  int next_delivery = 1;

  real_notify_fixture() {
    for (auto* stub : {&slack, &hipchat})
      stub->respond_with([](const recorded_request&) { return ok(); });
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.jitter = 0;
    opts.request_timeout_ms = 5000;
    store = sys.spawn(heaven::store, db.string(),
                      std::shared_ptr<health_board>{}, true);
  }

  ~real_notify_fixture() {
    for (auto& b : boxes)
      stop(b);
    stop(store);
    caf::anon_send_exit(http, caf::exit_reason::user_shutdown);
  }

  /// Ends `a` and waits until it is gone.
  template <class Handle>
  void stop(const Handle& a) {
    self->monitor(a);
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {},
                  caf::after(30s) >> [] { BOOST_FAIL("an actor hangs"); });
  }

  /// HipChat only; the tests add a Slack heaven cannot reach.
  settings with_hipchat() const {
    settings s;
    s.web_endpoint = "https://github.com/";
    s.hipchat_room = "Developers";
    s.hipchat_server = hipchat.base_url();
    s.hipchat_token = hipchat_token;
    return s;
  }

  void start(settings s) {
    auto ready = std::make_shared<std::atomic<int>>(0);
    auto o = opts;
    o.ready = [ready] { ++*ready; };
    boxes = spawn_chat_outboxes(sys, store, http, s, o);
    BOOST_REQUIRE(eventually(
      [&] { return *ready == static_cast<int>(boxes.size()); }, 20s));
  }

  void send(deployment_notice n) {
    auto ev = status_event(std::move(n), next_delivery++);
    self->request(store, 30s, accept_atom::value, std::move(ev))
      .receive([](accept_result& r) { BOOST_REQUIRE(!r.duplicate); },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  }

  static std::vector<recorded_request> first(const http_stub& stub,
                                             std::size_t n) {
    BOOST_REQUIRE(stub.wait_for(n, 20000));
    auto all = stub.requests();
    all.resize(n);
    return all;
  }

  std::string logged() const {
    return log.all();
  }

  /// Waits until the log holds `text`.
  bool log_has(const std::string& text) const {
    return eventually([&] { return log.has(text); }, 20s);
  }
};

json body_of(const recorded_request& r) {
  return json::parse(r.body);
}

/// The Slack attachment's text of request `r`.
std::string slack_text(const recorded_request& r) {
  return body_of(r)["attachments"][0]["text"].get<std::string>();
}

json slack_body(std::string text, std::string color, std::string pretext,
                std::string fallback) {
  return {{"channel", "#ops"},
          {"username", "heaven-bot"},
          {"icon_url", "https://icons.example/heaven.png"},
          {"attachments",
           {{{"text", std::move(text)},
             {"color", std::move(color)},
             {"pretext", std::move(pretext)},
             {"fallback", std::move(fallback)},
             {"mrkdwn_in", {"text", "pretext"}}}}}};
}

json hipchat_body(std::string message, std::string color) {
  return {{"from", "heaven"},
          {"message", std::move(message)},
          {"color", std::move(color)},
          {"notify", true},
          {"message_format", "text"}};
}

json campfire_body(std::string text) {
  return {{"message", {{"type", "TextMessage"}, {"body", std::move(text)}}}};
}

/// Sends queued, in_progress, success, failure, error, inactive and then a
/// `pending` of deployment 43 as a sentinel: a service that announced queued
/// or inactive would show it before the sentinel.
void send_every_state(notify_fixture& f) {
  for (auto state :
       {"queued", "in_progress", "success", "failure", "error", "inactive"})
    f.send(notice(state));
  f.send(notice("pending", 43));
}

} // namespace

BOOST_AUTO_TEST_SUITE(notify_suite)

BOOST_FIXTURE_TEST_CASE(configured_services_only, notify_fixture) {
  BOOST_TEST(configured_notifiers(base()).empty());
  BOOST_TEST(chat_services(base()).empty());
  auto all = with_hook(
    with_flowdock(with_campfire(with_hipchat(with_slack(base())))));
  BOOST_TEST(configured_notifiers(all)
             == (std::vector<std::string>{"slack", "hipchat", "campfire",
                                          "flowdock", "webhook"}));
  std::vector<std::string> names;
  for (auto& s : chat_services(all))
    names.push_back(s.name);
  BOOST_TEST(names == configured_notifiers(all));
  BOOST_TEST(chat_kind("slack") == "chat.slack");
  // Settings that cannot work are logged and skipped, nothing else.
  auto broken = with_hipchat(base());
  broken.flowdock_flow_tokens = R"({"ops": ["not", "a", "token"]})";
  broken.campfire_token = campfire_token;
  broken.campfire_subdomain = "";
  auto some = chat_services(broken);
  BOOST_REQUIRE_EQUAL(some.size(), 1u);
  BOOST_TEST(some[0].name == "hipchat");
  BOOST_TEST(log_has("error flowdock: FLOWDOCK_FLOW_TOKENS is not a JSON "
                     "object of flow names to token strings; Flowdock is not "
                     "notified"));
  BOOST_TEST(log_has("error campfire: CAMPFIRE_SUBDOMAIN is not set; "
                     "Campfire is not notified"));
  // One outbox per service that works, and the notice outbox.
  start(broken);
  BOOST_TEST(boxes.size() == 2u);
  BOOST_TEST(log_has("info heaven tells hipchat about deployment statuses"));
  // Chat messages are retried until HEAVEN_OUTBOX_MAX_AGE unless told.
  BOOST_TEST(settings{}.notify_retries == 0);
}

BOOST_FIXTURE_TEST_CASE(slack_message_for_each_state, notify_fixture) {
  start(with_slack(base()));
  send_every_state(*this);
  auto got = five(slack);
  for (auto& r : got) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == std::string{"/services/T000/B000/"} + slack_token);
    BOOST_TEST(r.header("content-type") == "application/json");
  }
  std::string user = "<https://github.com/alice|alice>";
  std::string log = std::string{"<"} + log_url + "|#42> : ";
  std::string app = "<https://github.com/octo/app|app>";
  std::vector<json> expected = {
    slack_body(log + user
                 + " is deploying <https://github.com/octo/app/tree/main|app> "
                   "to production",
               "good", "#42 - app / main / production",
               "alice is deploying app/tree/main to production"),
    slack_body(log + user + "'s production deployment of " + app + " is done! ",
               "good", " ", "alice's production deployment of app is done! "),
    slack_body(log + user + "'s production deployment of " + app + " failed. ",
               "danger", " ", "alice's production deployment of app failed. "),
    slack_body(log + user + "'s production deployment of " + app
                 + " has errors. ¯\\_(ツ)_/¯ Timed out after 300 seconds",
               "danger", " ",
               "alice's production deployment of app has errors. Timed out "
               "after 300 seconds"),
    slack_body(std::string{"<"} + log_url + "|#43> : " + user
                 + " is deploying <https://github.com/octo/app/tree/main|app> "
                   "to production",
               "good", "#43 - app / main / production",
               "alice is deploying app/tree/main to production"),
  };
  for (std::size_t i = 0; i < expected.size(); ++i)
    BOOST_TEST(body_of(got[i]).dump() == expected[i].dump());
  // A notice's lines carry its repository and environment (GitHub's
  // deployment is not heaven's id: none).
  BOOST_TEST(log_has("debug slack: queued of octo/app deployment 42 to "
                     "production is not announced [repository=octo/app "
                     "environment=production]\n"));
  BOOST_TEST(log_has("debug slack: inactive of octo/app deployment 42 to "
                     "production is not announced"));
}

BOOST_FIXTURE_TEST_CASE(
  slack_start_message_links_the_comparison_with_the_deployed_revision,
  notify_fixture) {
  start(with_slack(base()));
  // Nothing deployed yet: no link.
  send(notice("pending", 41));
  set_revision(base_sha);
  send(notice("pending"));
  // The revision itself: nothing to compare.
  auto same = notice("in_progress", 43);
  same.sha = base_sha;
  send(same);
  // GitHub Enterprise: the comparison on the repository's own host.
  auto ghe = notice("in_progress", 44);
  ghe.repo_url = "https://ghe.example.com/octo/app";
  send(ghe);
  auto got = first(slack, 4);
  std::map<std::string, json> by_pretext;
  for (auto& r : got)
    by_pretext[body_of(r)["attachments"][0]["pretext"].get<std::string>()]
      = body_of(r);
  std::string user = "<https://github.com/alice|alice>";
  auto log = [](int id) {
    return std::string{"<"} + log_url + "|#" + std::to_string(id) + "> : ";
  };
  auto starts = [&](int id, std::string host, std::string tail) {
    return slack_body(log(id) + user + " is deploying <" + host
                        + "/octo/app/tree/main|app> to production" + tail,
                      "good",
                      "#" + std::to_string(id) + " - app / main / production",
                      "alice is deploying app/tree/main to production");
  };
  BOOST_TEST(by_pretext["#41 - app / main / production"].dump()
             == starts(41, "https://github.com", "").dump());
  BOOST_TEST(by_pretext["#42 - app / main / production"].dump()
             == starts(42, "https://github.com",
                       std::string{" (<https://github.com/octo/app/compare/"}
                         + base_sha + "..." + sha + "|compare>)")
                  .dump());
  BOOST_TEST(by_pretext["#43 - app / main / production"].dump()
             == starts(43, "https://github.com", "").dump());
  BOOST_TEST(
    by_pretext["#44 - app / main / production"].dump()
    == starts(44, "https://ghe.example.com",
              std::string{" (<https://ghe.example.com/octo/app/compare/"}
                + base_sha + "..." + sha + "|compare>)")
         .dump());
  // A start records nothing and asks GitHub for no commit list.
  BOOST_TEST(revision() == base_sha);
  BOOST_TEST(github.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(slack_without_room_or_log_escapes_user_text,
                        notify_fixture) {
  start(with_slack(base()));
  auto n = notice("error");
  n.room = "";
  n.log_url = "";
  n.description = "exit <1> & more";
  send(n);
  auto got = first(slack, 1);
  auto b = body_of(got[0]);
  BOOST_TEST(!b.contains("channel"));
  BOOST_TEST(slack_text(got[0])
             == "#42 : <https://github.com/alice|alice>'s production "
                "deployment of <https://github.com/octo/app|app> has errors. "
                "¯\\_(ツ)_/¯ exit &lt;1&gt; &amp; more");
  BOOST_TEST(b["attachments"][0]["fallback"].get<std::string>()
             == "alice's production deployment of app has errors. exit <1> "
                "& more");
}

BOOST_FIXTURE_TEST_CASE(hipchat_message_for_each_state, notify_fixture) {
  start(with_hipchat(base()));
  send_every_state(*this);
  auto got = five(hipchat);
  for (auto& r : got) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/v2/room/ops/notification");
    BOOST_TEST(r.header("authorization")
               == std::string{"Bearer "} + hipchat_token);
    BOOST_TEST(r.header("content-type") == "application/json");
  }
  std::string owner = "@alice's production deployment of "
                      "https://github.com/octo/app";
  std::vector<json> expected = {
    hipchat_body("@alice is deploying https://github.com/octo/app/tree/main "
                 "to production •̀.̫•́✧",
                 "yellow"),
    hipchat_body(owner + " is done! (◕‿◕)", "green"),
    hipchat_body(owner + " failed. ಠﭛಠ", "red"),
    hipchat_body(owner + " has errors. Timed out after 300 seconds ¯\\_(ツ)_/¯",
                 "red"),
    hipchat_body("@alice is deploying https://github.com/octo/app/tree/main "
                 "to production •̀.̫•́✧",
                 "yellow"),
  };
  for (std::size_t i = 0; i < expected.size(); ++i)
    BOOST_TEST(body_of(got[i]).dump() == expected[i].dump());
}

BOOST_FIXTURE_TEST_CASE(hipchat_room_from_payload_else_setting,
                        notify_fixture) {
  start(with_hipchat(base()));
  auto named = notice("success");
  named.room = "Ops Room/1";
  auto unnamed = notice("failure");
  unnamed.room = "";
  send(named);
  send(unnamed);
  auto got = first(hipchat, 2);
  BOOST_TEST(got[0].target == "/v2/room/Ops%20Room%2F1/notification");
  BOOST_TEST(got[1].target == "/v2/room/Developers/notification");
}

BOOST_FIXTURE_TEST_CASE(campfire_message_for_each_state, notify_fixture) {
  start(with_campfire(base()));
  auto roomless = notice("success", 44);
  roomless.room = "";
  send(roomless);
  for (auto state :
       {"queued", "in_progress", "success", "failure", "error", "inactive"}) {
    auto n = notice(state);
    n.room = "1234";
    send(n);
  }
  auto sentinel = notice("pending", 43);
  sentinel.room = "1234";
  send(sentinel);
  auto got = five(campfire);
  for (auto& r : got) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/acme/room/1234/speak.json");
    BOOST_TEST(r.header("authorization")
               == "Basic Y2FtcGZpcmUtc2VjcmV0LXRva2VuLTAwMDM6WA==");
  }
  std::string owner = "alice's production deployment of app";
  std::string tail = std::string{" "} + log_url;
  std::vector<json> expected = {
    campfire_body("alice is deploying app/tree/main to production" + tail),
    campfire_body(owner + " is done!" + tail),
    campfire_body(owner + " failed." + tail),
    campfire_body(owner + " has errors. Timed out after 300 seconds" + tail),
    campfire_body("alice is deploying app/tree/main to production" + tail),
  };
  for (std::size_t i = 0; i < expected.size(); ++i)
    BOOST_TEST(body_of(got[i]).dump() == expected[i].dump());
  BOOST_TEST(
    log_has("error campfire: success of octo/app deployment 44 to "
            "production names no room (payload.notify.room); not "
            "announced [repository=octo/app environment=production]\n"));
}

namespace {

/// Flowdock's "Previous deployment" value for `base` replaced by `sha`.
std::string flowdock_previous(const std::string& base) {
  return "<a href='https://github.com/octo/app/commits/" + base + "'>"
         + base.substr(0, 8) + "</a> (<a href='https://github.com/octo/app/"
         + "compare/" + base + "..." + sha + "'>Show diff</a>)";
}

/// `previous`: the "Previous deployment" field's value ("": no such field).
json flowdock_body(const std::string& state, const std::string& title,
                   const std::string& color, const std::string& avatar,
                   int64_t id = 42, const std::string& previous = "") {
  auto ids = std::to_string(id);
  json b = {
    {"flow_token", flow_token},
    {"event", "activity"},
    {"external_thread_id", "heaven:deployment:octo:app:" + ids},
    {"title", title},
    {"author",
     {{"name", "Heaven"}, {"avatar", avatar}, {"email", "build@flowdock.com"}}},
    {"tags", {"deploy", "production", "app", state}},
    {"thread",
     {{"title", "Deployment #" + ids + " of app to production"},
      {"body", "<p>Deploying from hubot</p>"},
      {"external_url", log_url},
      {"status", {{"value", state}, {"color", color}}},
      {"fields",
       {{{"label", "Repository"},
         {"value", "<a href='https://github.com/octo/app'>octo/app</a>"}},
        {{"label", "Deployment"},
         {"value", ids + " (<a href='" + log_url + "'>output</a>)"}},
        {{"label", "Deployed ref"},
         {"value", std::string{"<a href='https://github.com/octo/app/tree/"
                               "main'>main</a> @ <a href='https://github.com/"
                               "octo/app/commits/"}
                     + sha + "'>c0ffee00</a>"}},
        {{"label", "Environment"}, {"value", "production"}},
        {{"label", "Application"}, {"value", "app"}}}}}}};
  if (!previous.empty()) {
    auto& fields = b["thread"]["fields"];
    fields.insert(fields.begin() + 4,
                  json{{"label", "Previous deployment"}, {"value", previous}});
  }
  return b;
}

constexpr auto ok_icon
  = "https://d2ph5hv9wbwvla.cloudfront.net/heaven/build_ok.png";
constexpr auto fail_icon
  = "https://d2ph5hv9wbwvla.cloudfront.net/heaven/build_fail.png";

} // namespace

BOOST_FIXTURE_TEST_CASE(flowdock_activity_for_each_state, notify_fixture) {
  start(with_flowdock(base()));
  auto unknown = notice("success", 44);
  unknown.room = "nowhere";
  send(unknown);
  send_every_state(*this);
  auto got = five(flowdock);
  for (auto& r : got) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/messages");
    BOOST_TEST(r.header("content-type") == "application/json");
  }
  std::vector<json> expected = {
    flowdock_body("in_progress", "Started deploying app to production.",
                  "yellow", ok_icon),
    // The unannounced deployment 44 put `sha` there first.
    flowdock_body("success", "app deployed with ref main to production.",
                  "green", ok_icon, 42, flowdock_previous(sha)),
    flowdock_body("failure", "Failed deploying app to production.", "red",
                  fail_icon),
    flowdock_body("error", "Error deploying app to production.", "red",
                  fail_icon),
    flowdock_body("pending", "Started deploying app to production.", "yellow",
                  ok_icon, 43),
  };
  for (std::size_t i = 0; i < expected.size(); ++i)
    BOOST_TEST(body_of(got[i]).dump() == expected[i].dump());
  BOOST_TEST(log_has("error flowdock: no flow token for flow 'nowhere' "
                     "(payload.notify.room) in FLOWDOCK_FLOW_TOKENS; success "
                     "of octo/app deployment 44 to production not "
                     "announced"));
}

BOOST_FIXTURE_TEST_CASE(flowdock_first_deploy_has_no_previous_deployment,
                        notify_fixture) {
  start(with_flowdock(base()));
  send(notice("success"));
  auto got = first(flowdock, 1);
  BOOST_TEST(body_of(got[0]).dump()
             == flowdock_body("success",
                              "app deployed with ref main to production.",
                              "green", ok_icon, 42, "No previous deployments")
                  .dump());
}

BOOST_FIXTURE_TEST_CASE(webhook_announces_every_state_signed, notify_fixture) {
  start(with_hook(base()));
  std::vector<std::string> states = {"queued",  "in_progress", "success",
                                     "failure", "error",       "inactive"};
  for (auto& state : states)
    send(notice(state));
  auto got = first(hook, 6);
  std::vector<std::string> messages = {
    "alice's production deployment of app is queued",
    "alice is deploying app/tree/main to production",
    "alice's production deployment of app is done! ",
    "alice's production deployment of app failed. ",
    "alice's production deployment of app has errors. Timed out after 300 "
    "seconds",
    "alice's production deployment of app is inactive",
  };
  std::set<std::string> deliveries;
  for (std::size_t i = 0; i < got.size(); ++i) {
    auto& r = got[i];
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/hooks/heaven");
    BOOST_TEST(r.header("content-type") == "application/json");
    BOOST_TEST(r.header("x-heaven-event") == "deployment_status");
    auto signature = r.header("x-heaven-signature-256");
    BOOST_TEST(signature
               == "sha256=" + hmac_sha256_hex(webhook_secret, r.body));
    BOOST_TEST(signature_valid(webhook_secret, r.body, signature));
    BOOST_TEST(!signature_valid("another-secret", r.body, signature));
    auto delivery = r.header("x-heaven-delivery");
    BOOST_TEST(delivery.size() == 36u);
    BOOST_TEST(delivery[14] == '4');
    deliveries.insert(delivery);
    json expected = {{"event", "deployment_status"},
                     {"state", states[i]},
                     {"repository", "octo/app"},
                     {"app", "app"},
                     {"environment", "production"},
                     {"ref", "main"},
                     {"sha", sha},
                     {"task", "deploy"},
                     {"description", states[i] == "error"
                                       ? "Timed out after 300 seconds"
                                       : ""},
                     {"log_url", log_url},
                     {"environment_url", "https://app.example"},
                     {"deployment_id", 42},
                     {"status_id", 7},
                     {"user", "alice"},
                     {"room", "ops"},
                     {"message", messages[i]},
                     {"changes", nullptr}};
    BOOST_TEST(body_of(r).dump() == expected.dump());
  }
  BOOST_TEST(deliveries.size() == 6u);
}

BOOST_FIXTURE_TEST_CASE(webhook_without_secret_is_unsigned, notify_fixture) {
  start(with_hook(base(), false));
  send(notice("success"));
  auto got = first(hook, 1);
  BOOST_TEST(got[0].header("x-heaven-signature-256").empty());
  BOOST_TEST(got[0].header("x-heaven-event") == "deployment_status");
  BOOST_TEST(body_of(got[0])["state"] == "success");
}

BOOST_FIXTURE_TEST_CASE(commit_list_with_a_limit, notify_fixture) {
  set_revision(base_sha);
  auto s = with_hook(with_hipchat(with_slack(base())));
  s.display_commits = true;
  s.display_commits_limit = 2;
  start(s);
  send(notice("success"));

  auto compares = first(github, 1);
  BOOST_TEST(compares[0].method == "GET");
  BOOST_TEST(compares[0].target
             == std::string{"/repos/octo/app/compare/"} + base_sha + "..."
                  + sha);
  BOOST_TEST(compares[0].header("accept") == "application/vnd.github+json");
  BOOST_TEST(compares[0].header("authorization")
             == std::string{"token "} + gh_token);

  std::string plain
    = "Total Commits: 3\n11 Additions, 2 Deletions, 13 Changes\n"
      "33333333 by dave: Third change\n"
      "22222222 by Carol C: Second change, fixes #7 & #x\n"
      "And 1 more commit... "
      + compare_url();
  auto commit_url = [](char c) {
    return "https://github.com/octo/app/commit/" + sha_of(c);
  };
  std::string linked
    = "Total Commits: 3\n11 Additions, 2 Deletions, 13 Changes\n<"
      + commit_url('3') + "|33333333> by <https://github.com/dave|dave>: "
      + "Third change\n<" + commit_url('2')
      + "|22222222> by Carol C: Second change, fixes "
        "<https://github.com/octo/app/issues/7|#7> &amp; #x\n<"
      + compare_url() + "|And 1 more commit...>";

  auto slack_got = first(slack, 2);
  BOOST_TEST(slack_text(slack_got[0])
             == std::string{"<"} + log_url
                  + "|#42> : <https://github.com/alice|alice>'s production "
                    "deployment of <https://github.com/octo/app|app> is "
                    "done! ");
  BOOST_TEST(body_of(slack_got[1]).dump()
             == slack_body(linked, "good", " ", plain).dump());

  auto hipchat_got = first(hipchat, 2);
  BOOST_TEST(body_of(hipchat_got[1]).dump()
             == hipchat_body(plain, "green").dump());

  auto hook_got = first(hook, 1);
  json changes = {{"total_commits", 3},
                  {"additions", 11},
                  {"deletions", 2},
                  {"changes", 13},
                  {"url", compare_url()},
                  {"more", 1},
                  {"commits",
                   {{{"sha", sha_of('3')},
                     {"author", "dave"},
                     {"message", "Third change"},
                     {"url", commit_url('3')}},
                    {{"sha", sha_of('2')},
                     {"author", "Carol C"},
                     {"message", "Second change, fixes #7 & #x"},
                     {"url", commit_url('2')}}}}};
  BOOST_TEST(body_of(hook_got[0])["changes"].dump() == changes.dump());

  // One comparison for the notice, whatever the number of services, and
  // the revision recorded once, when the event was accepted.
  BOOST_TEST(github.requests().size() == 1u);
  BOOST_TEST(revision() == sha);
  BOOST_TEST(sql(db, "SELECT count(*) FROM revisions")
             == std::vector<std::string>{"1"});
  BOOST_TEST(sql(db, "SELECT json_extract(body, '$.base') FROM outbox "
                     "WHERE kind = 'notice'")
             == std::vector<std::string>{base_sha});
  // Slack's two messages, HipChat's two, the webhook's one: five rows.
  BOOST_TEST(run_until([&] { return unsettled("chat.slack") == 0; }));
  BOOST_TEST(
    sql(db, "SELECT kind FROM outbox WHERE kind LIKE 'chat.%' "
            "ORDER BY id")
    == (std::vector<std::string>{"chat.slack", "chat.slack", "chat.hipchat",
                                 "chat.hipchat", "chat.webhook"}));
  BOOST_TEST(github.requests().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(commit_list_without_a_limit, notify_fixture) {
  set_revision(base_sha);
  auto s = with_campfire(with_flowdock(base()));
  s.display_commits = true;
  start(s);
  auto n = notice("success");
  n.room = "ops";
  send(n);
  std::string plain = "Total Commits: 3\n11 Additions, 2 Deletions, 13 "
                      "Changes\n"
                      "33333333 by dave: Third change\n"
                      "22222222 by Carol C: Second change, fixes #7 & #x\n"
                      "11111111 by bob: First change";
  // Campfire: the rooms's second message (room "ops" is its id here).
  auto campfire_got = first(campfire, 2);
  BOOST_TEST(campfire_got[1].target == "/acme/room/ops/speak.json");
  BOOST_TEST(body_of(campfire_got[1]).dump() == campfire_body(plain).dump());
  // Flowdock: one activity; the thread's body carries the list.
  auto flowdock_got = first(flowdock, 1);
  auto commit = [](char c, std::string who, std::string msg) {
    return "<li><a href='https://github.com/octo/app/commit/" + sha_of(c) + "'>"
           + std::string(8, c) + "</a> by " + who + ": " + msg + "</li>";
  };
  BOOST_TEST(body_of(flowdock_got[0])["thread"]["body"].get<std::string>()
             == "<p>Deploying from hubot</p><p>Total Commits: 3<br>11 "
                "Additions, 2 Deletions, 13 Changes</p><ul>"
                  + commit('3', "<a href='https://github.com/dave'>dave</a>",
                           "Third change")
                  + commit('2', "Carol C", "Second change, fixes #7 &amp; #x")
                  + commit('1', "<a href='https://github.com/bob'>bob</a>",
                           "First change")
                  + "</ul>");
  BOOST_TEST(body_of(flowdock_got[0])["thread"]["fields"][4].dump()
             == (json{{"label", "Previous deployment"},
                      {"value", flowdock_previous(base_sha)}})
                  .dump());
  BOOST_TEST(revision() == sha);
}

BOOST_FIXTURE_TEST_CASE(first_deploy_lists_nothing_but_records_revision,
                        notify_fixture) {
  auto s = with_slack(base());
  s.display_commits = true;
  start(s);
  send(notice("success"));
  auto got = first(slack, 1);
  BOOST_TEST(slack_text(got[0]).find("is done! ") != std::string::npos);
  BOOST_TEST(revision() == sha);
  BOOST_TEST(github.requests().empty());
  // The next deploy of that environment compares against it.
  auto next = notice("success", 45);
  next.sha = sha_of('9');
  send(next);
  BOOST_TEST(revision() == sha_of('9'));
  auto compares = first(github, 1);
  BOOST_TEST(compares[0].target
             == std::string{"/repos/octo/app/compare/"} + sha + "..."
                  + sha_of('9'));
  // GitHub's 404 for that comparison: the message goes out without a list.
  BOOST_REQUIRE(received(slack, 2));
  BOOST_TEST(slack_text(slack.requests()[1]).find("#45> : ")
             != std::string::npos);
  // A non-deploy task and a failure record nothing.
  auto migration = notice("success", 46);
  migration.task = "deploy:migrations";
  migration.sha = sha_of('7');
  send(migration);
  send(notice("failure", 47));
  BOOST_REQUIRE(received(slack, 4));
  BOOST_TEST(slack.requests().size() == 4u);
  BOOST_TEST(revision() == sha_of('9'));
  BOOST_TEST(github.requests().size() == 1u);
  BOOST_TEST(log_has("error the commit list of success of octo/app "
                     "deployment 45 to production is dropped: HTTP 404: "
                     "{\"message\":\"Not Found\"} [repository=octo/app "
                     "environment=production]\n"),
             logged());
  BOOST_TEST(log_has("warning notify: comparing octo/app c0ffee00...99999999 "
                     "failed (dropped); the messages go out without the "
                     "commit list [repository=octo/app "
                     "environment=production]\n"));
}

BOOST_FIXTURE_TEST_CASE(display_commits_off_records_without_asking,
                        notify_fixture) {
  set_revision(base_sha);
  start(with_slack(base()));
  send(notice("success"));
  send(notice("pending", 43));
  first(slack, 2);
  BOOST_TEST(slack.requests().size() == 2u);
  BOOST_TEST(revision() == sha);
  BOOST_TEST(github.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(a_slow_comparison_holds_only_its_deployment,
                        notify_fixture) {
  set_revision(base_sha);
  // GitHub answers the comparison only when the test says so.
  github.respond_with([](const recorded_request&) {
    return fake_reply::held(stub_response{
      200, {{"Content-Type", "application/json"}}, compare_answer()});
  });
  opts.request_timeout_ms = 60000;
  auto s = with_slack(base());
  s.display_commits = true;
  start(s);
  send(notice("success"));
  BOOST_REQUIRE(received(github, 1));
  // The same deployment waits its turn; others go out at once.
  send(notice("error"));
  send(notice("failure", 50));
  auto staging = notice("in_progress", 51);
  staging.environment = "staging";
  send(staging);
  auto got = first(slack, 2);
  BOOST_TEST(slack_text(got[0]).find("#50> : ") != std::string::npos);
  BOOST_TEST(body_of(got[1])["attachments"][0]["pretext"]
             == "#51 - app / main / staging");
  // Until just before heaven would give up on the comparison, nothing more.
  advance(59999ms);
  BOOST_TEST(slack.requests().size() == 2u);
  BOOST_REQUIRE_EQUAL(github.waiting().size(), 1u);
  net->release(github.waiting()[0]->id);
  got = first(slack, 5);
  BOOST_TEST(slack_text(got[2]).find("#42> : ") != std::string::npos);
  BOOST_TEST(slack_text(got[2]).find("is done! ") != std::string::npos);
  BOOST_TEST(slack_text(got[3]).find("Total Commits: 3") == 0u);
  BOOST_TEST(slack_text(got[4]).find("#42> : ") != std::string::npos);
  BOOST_TEST(slack_text(got[4]).find("has errors. ") != std::string::npos);
  BOOST_TEST(github.requests().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(slack_down_never_holds_up_hipchat, notify_fixture) {
  // Slack hangs on its first request, then answers 503 for ever.
  int asked = 0;
  slack.respond_with([&asked](const recorded_request&) {
    fake_reply down = stub_response{
      503, {{"Content-Type", "text/plain"}}, "down"};
    return ++asked == 1 ? fake_reply::held(down) : down;
  });
  // Long enough that the hanging request is never timed out and retried.
  opts.request_timeout_ms = 120000;
  auto s = with_hipchat(with_slack(base()));
  s.notify_retries = 3;
  start(s);
  send(notice("in_progress"));
  send(notice("success"));
  send(notice("failure", 43));
  BOOST_REQUIRE(received(slack, 1));
  // HipChat has all three while Slack still hangs on the first.
  auto got = first(hipchat, 3);
  BOOST_TEST(body_of(got[2])["message"]
             == "@alice's production deployment of "
                "https://github.com/octo/app failed. ಠﭛಠ");
  advance(119s);
  BOOST_TEST(slack.requests().size() == 1u);
  send(notice("error", 44));
  first(hipchat, 4);
  BOOST_REQUIRE_EQUAL(slack.waiting().size(), 1u);
  net->release(slack.waiting()[0]->id);
  // Each message: three attempts, then dropped, then the next one.
  auto tried = first(slack, 12);
  for (std::size_t i = 0; i < 12; ++i)
    BOOST_TEST(tried[i].body == tried[i / 3 * 3].body);
  BOOST_TEST(slack_text(tried[0]).find("is deploying") != std::string::npos);
  BOOST_TEST(slack_text(tried[9]).find("#44> : ") != std::string::npos);
  BOOST_TEST(log_has("is dropped: gave up after 3 attempt(s): HTTP 503", 4));
  BOOST_TEST(
    log_has("error slack: failure of octo/app deployment 43 to "
            "production is dropped: gave up after 3 attempt(s): "
            "HTTP 503 [repository=octo/app environment=production]\n"));
  BOOST_TEST(log_has(
    "warning slack: in_progress of octo/app deployment 42 "
    "to production failed (HTTP 503), attempt 1 of 3; "
    "trying again in 10 ms [repository=octo/app environment=production]\n"));
  BOOST_TEST(log_has("warning slack: in_progress of octo/app deployment 42 "
                     "to production failed (HTTP 503), attempt 2 of 3; "
                     "trying again in 20 ms"));
  BOOST_TEST(run_until([&] { return unsettled("chat.slack") == 0; }));
  BOOST_TEST(logged().find(slack_token) == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(slack_unreachable_never_holds_up_hipchat,
                        real_notify_fixture) {
  // At debug level: http_client logs the requests it could not make, and a
  // Slack webhook's path is its token, so only the origin may appear.
  uint16_t closed_port = 0;
  {
    http_stub gone;
    closed_port = gone.port();
  }
  auto s = with_hipchat();
  s.slack_webhook_url = "http://127.0.0.1:" + std::to_string(closed_port)
                        + "/services/T000/B000/" + slack_token;
  s.notify_retries = 3;
  start(s);
  send(notice("in_progress"));
  send(notice("success"));
  auto got = first(hipchat, 2);
  BOOST_TEST(body_of(got[1])["color"] == "green");
  BOOST_TEST(log_has("error slack: in_progress of octo/app deployment 42 to "
                     "production is dropped: gave up after 3 attempt(s): "));
  BOOST_TEST(log_has("error slack: success of octo/app deployment 42 to "
                     "production is dropped: gave up after 3 attempt(s): "));
  BOOST_TEST(log_has("POST http://127.0.0.1:" + std::to_string(closed_port)
                     + " failed: "));
  BOOST_TEST(logged().find(slack_token) == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(retries_then_delivers_once, notify_fixture) {
  auto calls = std::make_shared<int>(0);
  slack.respond_with([calls](const recorded_request&) {
    auto n = ++*calls;
    if (n == 1)
      return stub_response{503, {}, "unavailable"};
    if (n == 2)
      return stub_response{429, {{"Retry-After", "0"}}, "slow down"};
    return ok();
  });
  start(with_slack(base()));
  send(notice("in_progress"));
  send(notice("success"));
  auto got = first(slack, 4);
  BOOST_TEST(got[0].body == got[1].body);
  BOOST_TEST(got[1].body == got[2].body);
  BOOST_TEST(slack_text(got[2]).find("is deploying") != std::string::npos);
  BOOST_TEST(slack_text(got[3]).find("is done! ") != std::string::npos);
  // 10 ms after the 503, 20 ms after the 429 (its Retry-After of 0 is no
  // sooner than the backoff), and the next message at once.
  BOOST_TEST(times(slack) == (std::vector<int64_t>{0, 10, 30, 30}));
  send(notice("pending", 43));
  got = first(slack, 5);
  settle();
  BOOST_TEST(slack.requests().size() == 5u);
  BOOST_TEST(slack_text(got[4]).find("#43> : ") != std::string::npos);
  BOOST_TEST(log_has("failed (HTTP 429), attempt 2; trying again in 20 ms"));
  BOOST_TEST(logged().find("dropped") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(client_errors_are_not_retried, notify_fixture) {
  auto calls = std::make_shared<int>(0);
  slack.respond_with([calls](const recorded_request&) {
    if (++*calls == 1)
      return stub_response{404, {{"Content-Type", "text/plain"}}, "no_service"};
    if (*calls == 2)
      return stub_response{
        403, {{"Content-Type", "text/plain"}}, "action_prohibited"};
    return ok();
  });
  hipchat.respond_with([](const recorded_request&) {
    return stub_response{401, {}, R"({"error":{"code":401}})"};
  });
  start(with_hipchat(with_slack(base())));
  send(notice("in_progress"));
  send(notice("success"));
  send(notice("failure"));
  auto got = first(slack, 3);
  BOOST_TEST(slack_text(got[2]).find("failed. ") != std::string::npos);
  first(hipchat, 3);
  send(notice("pending", 43));
  first(slack, 4);
  first(hipchat, 4);
  settle();
  BOOST_TEST(slack.requests().size() == 4u);
  BOOST_TEST(hipchat.requests().size() == 4u);
  BOOST_TEST(log_has("error slack: in_progress of octo/app deployment 42 to "
                     "production is dropped: HTTP 404: no_service"));
  BOOST_TEST(log_has("error slack: success of octo/app deployment 42 to "
                     "production is dropped: HTTP 403: action_prohibited"));
  BOOST_TEST(log_has("error hipchat: success of octo/app deployment 42 to "
                     "production is dropped: HTTP 401: the credentials are "
                     "refused"));
}

BOOST_FIXTURE_TEST_CASE(a_request_that_can_never_be_made_is_not_retried,
                        real_notify_fixture) {
  // A scheme curl will not speak: the request never leaves heaven, and the
  // same request would fail the same way on every attempt.
  auto s = with_hipchat();
  s.slack_webhook_url = "htp://127.0.0.1:" + std::to_string(slack.port())
                        + "/services/T000/B000/" + slack_token;
  start(s);
  send(notice("in_progress"));
  send(notice("success"));
  first(hipchat, 2);
  // Both messages were tried once each and dropped.
  for (auto* state : {"in_progress", "success"})
    BOOST_TEST(log_has(std::string{"error slack: "} + state
                       + " of octo/app deployment 42 to production is "
                         "dropped: heaven cannot make the request: "),
               state);
  BOOST_TEST(logged().find("failed (") == std::string::npos, logged());
  BOOST_TEST(slack.requests().empty());
  BOOST_TEST(logged().find(slack_token) == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(no_secret_is_ever_logged_or_stored, notify_fixture) {
  set_revision(base_sha);
  slack.respond_with([](const recorded_request&) {
    return stub_response{503, {}, "down"};
  });
  hipchat.respond_with([](const recorded_request&) {
    return stub_response{401, {}, "unauthorized"};
  });
  campfire.respond_with([](const recorded_request&) {
    return stub_response{500, {}, "oops"};
  });
  flowdock.respond_with([](const recorded_request&) {
    return stub_response{400, {}, R"({"message":"bad flow_token"})"};
  });
  hook.respond_with([](const recorded_request&) {
    return stub_response{502, {}, "bad gateway"};
  });
  auto s = with_hook(
    with_flowdock(with_campfire(with_hipchat(with_slack(base())))));
  s.display_commits = true;
  s.notify_retries = 2;
  start(s);
  for (auto state : {"queued", "in_progress", "success", "error"})
    send(notice(state));
  auto lost = notice("failure", 44);
  lost.room = "nowhere";
  send(lost);
  // slack 4 messages (the commit list is one) x 2 attempts; webhook 5 x 2.
  BOOST_REQUIRE(received(slack, 8));
  BOOST_REQUIRE(received(hook, 10));
  BOOST_REQUIRE(received(hipchat, 5));
  BOOST_REQUIRE(received(campfire, 10));
  BOOST_REQUIRE(received(flowdock, 3));
  BOOST_TEST(log_has("error slack: ", 4));
  BOOST_TEST(log_has("is dropped: gave up after 2 attempt(s): HTTP 503", 4));
  BOOST_TEST(log_has("is dropped: gave up after 2 attempt(s): HTTP 502", 5));
  BOOST_TEST(log_has("is dropped: gave up after 2 attempt(s): HTTP 500", 5));
  BOOST_TEST(log_has("is dropped: HTTP 401: the credentials are refused", 5));
  BOOST_TEST(log_has("is dropped: HTTP 400: ", 3));
  BOOST_TEST(log_has("error flowdock: no flow token for flow 'nowhere'"));
  auto all = logged();
  std::vector<std::string> secrets = {
    slack_token,
    hipchat_token,
    campfire_token,
    flow_token,
    webhook_secret,
    gh_token,
    "Y2FtcGZpcmUtc2VjcmV0LXRva2VuLTAwMDM6WA=="};
  for (auto& secret : secrets)
    BOOST_TEST(all.find(secret) == std::string::npos, secret);
  // The messages wait in the database without them: they are added when a
  // message is sent.
  BOOST_TEST(run_until([&] {
    return unsettled("chat.slack") + unsettled("chat.webhook")
             + unsettled("chat.campfire")
           == 0;
  }));
  auto rows = sql(db, "SELECT kind || ' ' || stream || ' ' || body FROM "
                      "outbox");
  BOOST_TEST(rows.size() > 20u);
  for (auto& row : rows)
    for (auto& secret : secrets)
      BOOST_TEST(row.find(secret) == std::string::npos, secret);
  // Only Slack's own webhook URL carries a token in a request line.
  for (auto* stub : {&hipchat, &campfire, &flowdock, &hook, &github})
    for (auto& r : stub->requests())
      for (auto secret : {hipchat_token, campfire_token, flow_token,
                          webhook_secret, gh_token})
        BOOST_TEST(r.target.find(secret) == std::string::npos);
}

// -- restarts ---------------------------------------------------------------

BOOST_FIXTURE_TEST_CASE(a_notice_left_by_a_stopped_heaven_is_sent_once,
                        notify_fixture) {
  auto s = with_hook(with_slack(base()));
  // heaven accepted two events and stopped before any outbox ran.
  send(notice("in_progress"));
  send(notice("success"));
  BOOST_TEST(unsettled("notice") == 2);
  restart(s);
  auto got = first(slack, 2);
  BOOST_TEST(slack_text(got[0]).find("is deploying") != std::string::npos);
  BOOST_TEST(slack_text(got[1]).find("is done! ") != std::string::npos);
  first(hook, 2);
  BOOST_TEST(run_until([&] {
    return unsettled("notice") + unsettled("chat.slack")
             + unsettled("chat.webhook")
           == 0;
  }));
  // And once only: another restart sends nothing of them again; a new
  // notice, which goes after whatever waited, shows it.
  restart(s);
  send(notice("pending", 43));
  got = first(slack, 3);
  BOOST_TEST(slack_text(got[2]).find("#43> : ") != std::string::npos);
  first(hook, 3);
  BOOST_TEST(slack.requests().size() == 3u);
  BOOST_TEST(hook.requests().size() == 3u);
}

BOOST_FIXTURE_TEST_CASE(messages_queued_before_a_stop_go_after_the_restart,
                        notify_fixture) {
  // Slack is down while heaven runs; the messages wait in the database.
  slack.respond_with([](const recorded_request&) {
    return stub_response{502, {}, "bad gateway"};
  });
  auto s = with_slack(base());
  start(s);
  send(notice("in_progress"));
  send(notice("success"));
  send(notice("failure", 43));
  BOOST_REQUIRE(received(slack, 3));
  BOOST_TEST(run_until([&] { return unsettled("chat.slack") == 3; }));
  stop_outboxes();
  // Nothing was in flight when heaven stopped, and nothing more comes.
  BOOST_TEST(net->waiting().empty());
  auto before = slack.requests().size();
  settle();
  BOOST_TEST(slack.requests().size() == before);
  std::map<std::string, bool> bodies;
  for (auto& r : slack.requests())
    bodies[r.body] = true;
  BOOST_TEST(bodies.size() == 1u); // Only the first was tried: in order.
  // Slack is back, and so is heaven.
  slack.respond_with([](const recorded_request&) { return ok(); });
  restart(s);
  BOOST_REQUIRE(received(slack, before + 3));
  auto all = slack.requests();
  std::vector<recorded_request> after(all.begin() + before, all.end());
  BOOST_REQUIRE_EQUAL(after.size(), 3u);
  BOOST_TEST(slack_text(after[0]).find("is deploying") != std::string::npos);
  BOOST_TEST(slack_text(after[1]).find("#42> : ") != std::string::npos);
  BOOST_TEST(slack_text(after[1]).find("is done! ") != std::string::npos);
  BOOST_TEST(slack_text(after[2]).find("#43> : ") != std::string::npos);
  BOOST_TEST(run_until([&] { return unsettled("chat.slack") == 0; }));
}

BOOST_FIXTURE_TEST_CASE(a_service_down_for_a_while_gets_every_message_in_order,
                        notify_fixture) {
  // 502 for the first ten requests, then 200; what was answered 200, in
  // order, is what Slack shows.
  auto shown = std::make_shared<std::vector<std::string>>();
  auto calls = std::make_shared<int>(0);
  slack.respond_with([=](const recorded_request& r) {
    if (++*calls <= 10)
      return stub_response{502, {}, "bad gateway"};
    shown->push_back(slack_text(r));
    return ok();
  });
  start(with_slack(base()));
  send(notice("in_progress"));
  send(notice("success"));
  send(notice("failure", 43));
  send(notice("error", 44));
  send(notice("pending", 45));
  BOOST_REQUIRE(run_until([&] { return shown->size() >= 5; }));
  BOOST_TEST(run_until([&] { return unsettled("chat.slack") == 0; }));
  BOOST_REQUIRE_EQUAL(shown->size(), 5u);
  std::vector<std::string> expected = {
    "#42> : ", "#42> : ", "#43> : ", "#44> : ", "#45> : "};
  for (std::size_t i = 0; i < 5; ++i)
    BOOST_TEST((*shown)[i].find(expected[i]) != std::string::npos, (*shown)[i]);
  BOOST_TEST((*shown)[0].find("is deploying") != std::string::npos);
  BOOST_TEST((*shown)[1].find("is done! ") != std::string::npos);
  BOOST_TEST(logged().find("dropped") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(the_webhook_keeps_its_delivery_id_across_restarts,
                        notify_fixture) {
  auto down = std::make_shared<bool>(true);
  hook.respond_with([down](const recorded_request&) {
    return *down ? stub_response{502, {}, "bad gateway"} : ok();
  });
  auto s = with_hook(base());
  start(s);
  send(notice("in_progress"));
  send(notice("success"));
  BOOST_REQUIRE(received(hook, 3));
  stop_outboxes();
  // Nothing was in flight when heaven stopped, and nothing more comes.
  BOOST_TEST(net->waiting().empty());
  auto stopped = hook.requests().size();
  settle();
  BOOST_TEST(hook.requests().size() == stopped);
  // Every attempt so far was of the first message, with one id.
  std::set<std::string> ids;
  for (auto& r : hook.requests())
    ids.insert(r.header("x-heaven-delivery"));
  BOOST_REQUIRE_EQUAL(ids.size(), 1u);
  auto first_id = *ids.begin();
  BOOST_TEST(first_id.size() == 36u);
  BOOST_TEST(first_id[14] == '4');
  auto before = hook.requests().size();
  *down = false;
  restart(s);
  BOOST_REQUIRE(received(hook, before + 2));
  auto all = hook.requests();
  BOOST_REQUIRE_EQUAL(all.size(), before + 2);
  BOOST_TEST(all[before].header("x-heaven-delivery") == first_id);
  BOOST_TEST(body_of(all[before])["state"] == "in_progress");
  // The second message has an id of its own, also kept.
  auto second_id = all[before + 1].header("x-heaven-delivery");
  BOOST_TEST(second_id != first_id);
  BOOST_TEST(second_id.size() == 36u);
  BOOST_TEST(body_of(all[before + 1])["state"] == "success");
  // The signature covers the same body on every attempt.
  for (auto& r : all)
    BOOST_TEST(r.header("x-heaven-signature-256")
               == "sha256=" + hmac_sha256_hex(webhook_secret, r.body));
  BOOST_TEST(all[0].body == all[before].body);
}

BOOST_FIXTURE_TEST_CASE(a_notice_settles_without_any_chat_service,
                        notify_fixture) {
  set_revision(base_sha);
  auto s = base();
  s.display_commits = true;
  start(s);
  BOOST_TEST(boxes.size() == 1u); // The notice outbox alone.
  send(notice("success"));
  BOOST_TEST(run_until([&] { return unsettled("notice") == 0; }));
  BOOST_TEST(sql(db, "SELECT outcome FROM outbox WHERE kind = 'notice'")
             == std::vector<std::string>{"delivered: nothing to send"});
  // Nobody to tell: no comparison either; the revision is recorded all
  // the same.
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(revision() == sha);
}

BOOST_AUTO_TEST_SUITE_END()
