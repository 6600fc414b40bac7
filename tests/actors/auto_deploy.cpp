// The AUTO_DEPLOY actor and the "deploy" outbox that creates its GitHub
// deployments, in a virtual world (tests/support): a GitHub stand-in behind
// the fake HTTP client, the real store on a real SQLite file (what heaven
// deployed last is scripted by the store's gate), virtual time. What only
// curl decides runs through the real http_client actor to a stand-in on a
// real socket.
#include "actors/auto_deploy.hpp"
#include "tests/support/logger.hpp"
#include "tests/support/virtual_world.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <functional>
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

#include "actors/auto_deployments.hpp"
#include "actors/http_client.hpp"
#include "actors/outbox.hpp"
#include "actors/store.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
constexpr auto other_sha = "b2c3d4e5f60718293a4b5c6d7e8f9012345678a1";
constexpr auto prod_base = "0123456789abcdef0123456789abcdef01234567";
constexpr auto staging_base = "fedcba9876543210fedcba9876543210fedcba98";
constexpr auto qa_base = "1111111111222222222233333333334444444444";
constexpr auto token = "ghp_auto_deploy_secret_token_42";
constexpr auto description
  = "Heaven auto deploy triggered by a commit status change";

// -- a scripted GitHub
// -----------------------------------------------------------

/// What the GitHub stand-in answers; tests change it.
struct github_world {
  /// Answers to the combined status of `sha`, in turn (the last repeats): a
  /// state ("success", "pending", ...) or an HTTP status ("503").
  std::vector<std::string> combined = {"success"};
  size_t combined_asked = 0;
  /// The compare status by base sha (default "ahead"); "404" answers 404.
  std::map<std::string, std::string> compare;
  /// Answers to POST .../deployments, in turn (the last repeats); empty:
  /// 201 with ids 1001, 1002, ...
  std::vector<stub_response> creates;
  size_t created = 0;
  /// Which POSTs (0, 1, ...) create a deployment although their answer
  /// does not say so (dropped, 5xx).
  std::set<size_t> created_anyway;
  /// Milliseconds POST n waits before answering (virtual time).
  std::map<size_t, int> create_delay_ms;
  /// Deployments GitHub has, newest first: those POSTs created, and any a
  /// test adds (others, by people or for other apps).
  std::vector<json> deployments;
  /// When not empty, the answers to GET .../deployments?..., in turn (the
  /// last repeats); otherwise `deployments` filtered by the query.
  std::vector<std::function<stub_response(github_world&)>> listings;
  size_t listed = 0;
};

/// The query parameter `key` of `target`, or "".
std::string query_param(const std::string& target, const std::string& key) {
  auto q = target.find('?');
  if (q == std::string::npos)
    return {};
  auto query = target.substr(q + 1);
  size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    auto part = query.substr(start, amp == std::string::npos ? std::string::npos
                                                             : amp - start);
    auto eq = part.find('=');
    if (part.substr(0, eq) == key)
      return eq == std::string::npos ? "" : part.substr(eq + 1);
    if (amp == std::string::npos)
      break;
    start = amp + 1;
  }
  return {};
}

/// A GitHub deployment as the list shows it.
json github_deployment(int64_t id, std::string commit, std::string environment,
                       std::string desc, json payload) {
  return {{"id", id},
          {"sha", commit},
          {"ref", commit},
          {"task", "deploy"},
          {"environment", environment},
          {"original_environment", environment},
          {"description", std::move(desc)},
          {"payload", std::move(payload)},
          {"created_at", "2024-05-01T10:00:00Z"}};
}

/// A deployed environment as the store reports it.
deployed_environment deployed(std::string environment, std::string base,
                              std::string payload, std::string app = "app") {
  deployed_environment e;
  e.app = std::move(app);
  e.environment = std::move(environment);
  e.sha = std::move(base);
  e.payload_json = std::move(payload);
  e.github_id = 77;
  e.deployment_id = 7;
  return e;
}

/// `e`, locked by `actor`.
deployed_environment locked(deployed_environment e, std::string actor) {
  e.locked = true;
  e.lock.repo = "octo/app";
  e.lock.environment = e.environment;
  e.lock.actor = std::move(actor);
  e.lock.reason = "incident 12";
  e.lock.locked_at = "2024-05-01T10:00:00Z";
  e.lock.deployment_id = 5;
  return e;
}

/// A `status` event: `state` for `sha` on `branches` of octo/app.
commit_status_event status_event(std::string state = "success",
                                 std::vector<std::string> branches = {"main"},
                                 std::string author = "octocat",
                                 std::string commit = sha) {
  commit_status_event ev;
  ev.repo = "octo/app";
  ev.sha = std::move(commit);
  ev.state = std::move(state);
  ev.default_branch = "main";
  ev.branches = std::move(branches);
  ev.author = std::move(author);
  return ev;
}

constexpr auto prod_payload
  = R"({"name":"app","config":{"provider":"heroku",)"
    R"("heroku_name":"octo-app"},"notify":{"room":"ops","user":"alice"},)"
    R"("actor":"alice","sha":"01234567"})";

struct auto_fixture : virtual_world {
  captured_log log{1000};
  /// What the store says heaven last deployed, by repository (none: empty).
  std::map<std::string, std::vector<deployed_environment>> latest;
  github_world world;
  fake_host& github = net->host("http://github.test/");
  /// The "deploy" outbox, as heaven runs it.
  outbox_actor creations;
  outbox_options opts;
  auto_deploy_actor actor;
  size_t baseline = 0;

  auto_fixture() : auto_fixture(false) {
  }

  /// `with_context`: the log's lines end with their log context (see
  /// captured_log).
  explicit auto_fixture(bool with_context) : log{1000, with_context} {
    github.respond_with([this](const recorded_request& r) {
      int delay = 0;
      auto res = answer(r, delay);
      // A slow GitHub: answers after heaven stopped waiting.
      return fake_reply{res}.after(std::chrono::milliseconds(delay));
    });
    script->latest = [this](const std::string& repo) {
      auto i = latest.find(repo);
      return i == latest.end() ? std::vector<deployed_environment>{}
                               : i->second;
    };
    open_store();
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.jitter = 0;
    opts.request_timeout_ms = 5000;
    opts.max_attempts = 3;
    opts.now_ms = clock_ms();
    start_creations();
    start(config());
  }

  ~auto_fixture() {
    auto all = everything_logged();
    BOOST_TEST(all.find(token) == std::string::npos,
               "the token appears in the log");
    stop(actor);
    stop(creations);
  }

  /// Starts the "deploy" outbox (anew) and runs until it has its rows.
  void start_creations() {
    auto ready = std::make_shared<bool>(false);
    auto o = opts;
    o.ready = [ready] { *ready = true; };
    creations = sys.spawn(
      outbox, real_store, http,
      deployment_courier(github_api{github.base_url(), token}), o);
    run();
    BOOST_REQUIRE(*ready);
  }

  /// heaven stops and starts again on the same database, with `o` for
  /// the "deploy" outbox.
  void restart(outbox_options o) {
    stop(actor);
    actor = nullptr;
    stop(creations);
    close_store();
    opts = std::move(o);
    open_store();
    start_creations();
    baseline = 0;
    start(config());
  }

  auto_deploy_config config() const {
    auto_deploy_config c;
    c.http = http;
    c.store = store;
    c.api_endpoint = github.base_url();
    c.token = token;
    c.attempts = 3;
    c.first_backoff_ms = 10;
    c.jitter = 0;
    return c;
  }

  /// (Re)starts the actor under test with `c`.
  void start(auto_deploy_config c) {
    if (actor) {
      stop(actor);
      actor = nullptr;
      BOOST_REQUIRE_EQUAL(sys.registry().running(), baseline - 1);
    }
    actor = sys.spawn(auto_deploy, std::move(c));
    run();
    // Running now: the client, the stores, the outbox and the actor under
    // test.
    baseline = sys.registry().running();
  }

  /// The outcomes of the "deploy" rows, once none waits.
  std::vector<std::string> creation_outcomes() {
    std::vector<std::string> out;
    BOOST_TEST(run_until([&] {
      out = query("SELECT coalesce(outcome, 'unsettled') FROM outbox WHERE "
                  "kind = 'deploy' ORDER BY id");
      return std::count(out.begin(), out.end(), "unsettled") == 0;
    }));
    return out;
  }

  /// GitHub as documented: combined status, compare, create deployment.
  stub_response answer(const recorded_request& r, int& delay_ms) {
    auto ok = [](json body) {
      return stub_response{
        200, {{"Content-Type", "application/json"}}, body.dump()};
    };
    for (auto commit : {sha, other_sha}) {
      if (r.method == "GET"
          && r.target
               == std::string{"/repos/octo/app/commits/"} + commit
                    + "/status") {
        auto i = std::min(world.combined_asked++, world.combined.size() - 1);
        auto said = world.combined[i];
        if (std::isdigit(static_cast<unsigned char>(said[0])))
          return stub_response{std::stoi(said),
                               {{"Content-Type", "application/json"}},
                               R"({"message":"Server Error"})"};
        return ok({{"state", said},
                   {"sha", commit},
                   {"total_count", 2},
                   {"statuses", json::array()}});
      }
    }
    std::string compare = "/repos/octo/app/compare/";
    if (r.method == "GET" && r.target.rfind(compare, 0) == 0) {
      auto range = r.target.substr(compare.size());
      auto dots = range.find("...");
      auto base = range.substr(0, dots);
      auto status = world.compare.count(base) ? world.compare[base] : "ahead";
      if (status == "404")
        return stub_response{404,
                             {{"Content-Type", "application/json"}},
                             R"({"message":"Not Found"})"};
      return ok({{"status", status},
                 {"ahead_by", status == "ahead" ? 3 : 0},
                 {"behind_by", status == "behind" ? 2 : 0},
                 {"total_commits", 3},
                 {"commits", json::array()}});
    }
    if (r.method == "POST" && r.target == "/repos/octo/app/deployments") {
      auto n = world.created++;
      if (world.create_delay_ms.count(n) != 0)
        delay_ms = world.create_delay_ms[n];
      auto res = world.creates.empty()
                   ? stub_response{201,
                                   {{"Content-Type", "application/json"}},
                                   json{{"id", 1001 + n}}.dump()}
                   : world.creates[std::min(n, world.creates.size() - 1)];
      bool created = res.status == 201 && !res.drop;
      if (created || world.created_anyway.count(n) != 0) {
        auto body = json::parse(r.body);
        auto answered = json::parse(res.body, nullptr, false);
        int64_t id = created && answered.contains("id")
                       ? answered["id"].get<int64_t>()
                       : static_cast<int64_t>(1001 + n);
        world.deployments.insert(
          world.deployments.begin(),
          github_deployment(id, body["ref"], body["environment"],
                            body["description"], body["payload"]));
      }
      return res;
    }
    std::string list = "/repos/octo/app/deployments?";
    if (r.method == "GET" && r.target.rfind(list, 0) == 0) {
      auto n = world.listed++;
      if (!world.listings.empty())
        return world.listings[std::min(n, world.listings.size() - 1)](world);
      auto found = json::array();
      for (auto& d : world.deployments)
        if (d["sha"] == query_param(r.target, "sha")
            && d["environment"] == query_param(r.target, "environment")
            && d["task"] == query_param(r.target, "task"))
          found.push_back(d);
      return ok(found);
    }
    return stub_response{404,
                         {{"Content-Type", "application/json"}},
                         R"({"message":"Not Found"})"};
  }

  /// Sets what the store says heaven last deployed for octo/app.
  void deployed_last(std::vector<deployed_environment> envs) {
    latest["octo/app"] = std::move(envs);
  }

  void send(commit_status_event ev) {
    caf::anon_send(actor, status_atom::value, std::move(ev));
  }

  /// Every line logged, as "<level> <text>".
  std::vector<std::string> logs() const {
    return log.lines();
  }

  std::string everything_logged() const {
    return log.all();
  }

  /// How many logged lines are exactly `line`.
  size_t count_logged(const std::string& line) const {
    auto all = logs();
    return static_cast<size_t>(std::count(all.begin(), all.end(), line));
  }

  /// How many logged lines start with `prefix`.
  size_t count_starting(const std::string& prefix) const {
    size_t n = 0;
    for (auto& l : logs())
      n += l.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }

  /// How many logged lines contain `text`.
  size_t count_containing(const std::string& text) const {
    size_t n = 0;
    for (auto& l : logs())
      n += l.find(text) != std::string::npos ? 1 : 0;
    return n;
  }

  /// Runs until `line` was logged (exactly) `n` times.
  bool wait_logged(const std::string& line, size_t n = 1) {
    return run_until([&] { return count_logged(line) >= n; });
  }

  /// Runs until every job the actor spawned has quit and no creation
  /// waits.
  bool settled() {
    return run_until([&] {
      return sys.registry().running() == baseline
             && query("SELECT count(*) FROM outbox WHERE kind = 'deploy' AND "
                      "settled_at IS NULL")
                  == std::vector<std::string>{"0"};
    });
  }

  /// Waits for `line`, then for the jobs to end; fails the test otherwise.
  void finish_on(const std::string& line, size_t n = 1) {
    BOOST_REQUIRE_MESSAGE(wait_logged(line, n),
                          "not logged: " << line << "\nlog:\n"
                                         << everything_logged());
    BOOST_REQUIRE_MESSAGE(settled(), "a job did not quit");
  }

  std::vector<recorded_request> requests_to(const std::string& method,
                                            const std::string& prefix) const {
    std::vector<recorded_request> result;
    for (auto& r : github.requests())
      if (r.method == method && r.target.rfind(prefix, 0) == 0)
        result.push_back(r);
    return result;
  }

  std::vector<recorded_request> posts() const {
    return requests_to("POST", "/repos/octo/app/deployments");
  }

  /// The POST bodies, parsed, by environment.
  std::map<std::string, json> posted_by_environment() const {
    std::map<std::string, json> result;
    for (auto& r : posts()) {
      auto body = json::parse(r.body);
      result[body.at("environment").get<std::string>()] = body;
    }
    return result;
  }

  /// The claims in the store, as (repo, app, environment, sha).
  std::set<std::tuple<std::string, std::string, std::string, std::string>>
  claims() const {
    std::set<std::tuple<std::string, std::string, std::string, std::string>>
      out;
    for (auto& row : query("SELECT json_array(repo, app, environment, sha) "
                           "FROM auto_deploys")) {
      auto j = json::parse(row);
      out.emplace(j[0], j[1], j[2], j[3]);
    }
    return out;
  }

  int latest_asked() {
    return script->asked["latest"];
  }
};

/// The AUTO_DEPLOY actor through the real http_client actor, to a GitHub
/// stand-in on a real socket: for what only curl decides.
struct real_auto_fixture {
  temp_dir dir; // Declared first: removed after the system is gone.
  captured_log log{1000};
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor http = sys.spawn(http_client);
  std::shared_ptr<store_script> script = std::make_shared<store_script>();
  store_actor real;
  store_actor store;
  http_stub github;
  auto_deploy_actor actor;

  real_auto_fixture() {
    script->latest = [](const std::string&) {
      return std::vector<deployed_environment>{
        deployed("production", prod_base, prod_payload)};
    };
    real = sys.spawn(heaven::store, (dir.path / "heaven.db").string(),
                     std::shared_ptr<health_board>{}, true);
    store = spawn_store_gate(sys, real, script);
  }

  ~real_auto_fixture() {
    BOOST_TEST(log.all().find(token) == std::string::npos,
               "the token appears in the log");
    for (auto a :
         {caf::actor_cast<caf::actor>(actor),
          caf::actor_cast<caf::actor>(store), caf::actor_cast<caf::actor>(real),
          caf::actor_cast<caf::actor>(http)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
};

/// The body heaven must send to deploy `sha` to `environment` with `payload`.
json expected_body(const std::string& environment, json payload) {
  return {{"ref", sha},
          {"environment", environment},
          {"task", "deploy"},
          {"auto_merge", false},
          {"payload", std::move(payload)},
          {"description", description}};
}

/// Checks the headers every GitHub request carries.
void check_headers(const recorded_request& r) {
  BOOST_TEST(r.header("Accept") == "application/vnd.github+json");
  BOOST_TEST(r.header("Authorization") == std::string{"token "} + token);
  BOOST_TEST(r.header("User-Agent") == "heaven");
  BOOST_TEST(r.target.find(token) == std::string::npos);
}

const std::string combined_target = std::string{"/repos/octo/app/commits/"}
                                    + sha + "/status";

std::string compare_target(const std::string& base) {
  return "/repos/octo/app/compare/" + base + "..." + sha;
}

std::string created_line(const std::string& env, int64_t id) {
  return "info Auto-deploying octo/app@a1b2c3d4 to " + env
         + " (app): created GitHub deployment " + std::to_string(id);
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(auto_deploy_tests, auto_fixture)

BOOST_AUTO_TEST_CASE(green_and_ahead_creates_exactly_one_deployment) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  send(status_event());
  finish_on(created_line("production", 1001));
  auto all = github.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 3u);
  BOOST_TEST(all[0].method == "GET");
  BOOST_TEST(all[0].target == combined_target);
  BOOST_TEST(all[1].method == "GET");
  BOOST_TEST(all[1].target == compare_target(prod_base));
  auto& post = all[2];
  BOOST_TEST(post.method == "POST");
  BOOST_TEST(post.target == "/repos/octo/app/deployments");
  for (auto& r : all)
    check_headers(r);
  BOOST_TEST(post.header("Content-Type") == "application/json");
  auto payload = json::parse(prod_payload);
  payload["actor"] = "octocat";
  payload["sha"] = sha;
  BOOST_TEST(json::parse(post.body) == expected_body("production", payload),
             post.body);
  auto claimed = claims();
  BOOST_REQUIRE_EQUAL(claimed.size(), 1u);
  BOOST_TEST((*claimed.begin()
              == std::make_tuple(std::string{"octo/app"}, std::string{"app"},
                                 std::string{"production"}, std::string{sha})));
}

BOOST_AUTO_TEST_CASE(a_combined_status_other_than_success_deploys_nothing) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.combined = {"pending"};
  send(status_event());
  finish_on("info Not auto-deploying octo/app@a1b2c3d4: its combined status "
            "is pending, not success");
  world.combined = {"failure"};
  world.combined_asked = 0;
  send(status_event());
  finish_on("info Not auto-deploying octo/app@a1b2c3d4: its combined status "
            "is failure, not success");
  auto all = github.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 2u);
  for (auto& r : all) {
    BOOST_TEST(r.method == "GET");
    BOOST_TEST(r.target == combined_target);
  }
  BOOST_TEST(claims().empty());
}

BOOST_AUTO_TEST_CASE(behind_identical_or_diverged_deploys_nothing) {
  deployed_last({deployed("production", prod_base, prod_payload),
                 deployed("staging", staging_base, prod_payload),
                 deployed("qa", qa_base, prod_payload)});
  world.compare = {
    {prod_base, "behind"}, {staging_base, "identical"}, {qa_base, "diverged"}};
  send(status_event());
  BOOST_REQUIRE(wait_logged("info Not auto-deploying octo/app@a1b2c3d4 to "
                            "production: compared with 01234567, deployed "
                            "there last, it is behind, not ahead"));
  BOOST_REQUIRE(wait_logged("info Not auto-deploying octo/app@a1b2c3d4 to "
                            "staging: compared with fedcba98, deployed there "
                            "last, it is identical, not ahead"));
  finish_on("info Not auto-deploying octo/app@a1b2c3d4 to qa: compared with "
            "11111111, deployed there last, it is diverged, not ahead");
  BOOST_TEST(posts().empty());
  BOOST_TEST(requests_to("GET", "/repos/octo/app/compare/").size() == 3u);
  BOOST_TEST(requests_to("GET", combined_target).size() == 1u);
  BOOST_TEST(claims().empty());
}

BOOST_AUTO_TEST_CASE(a_failed_compare_deploys_nothing) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.compare = {{prod_base, "404"}};
  send(status_event());
  finish_on("error Not auto-deploying octo/app@a1b2c3d4 to production: could "
            "not compare it with 01234567, deployed there last: HTTP 404: "
            "Not Found");
  BOOST_TEST(posts().empty());
  // A 404 is an answer, not a passing failure: asked once.
  BOOST_TEST(requests_to("GET", "/repos/octo/app/compare/").size() == 1u);
  BOOST_TEST(claims().empty());
}

BOOST_AUTO_TEST_CASE(no_github_request_unless_success_on_the_default_branch) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  send(status_event("pending"));
  send(status_event("success", {"feature/x", "main-old"}));
  send(status_event("success", {}));
  send(status_event("failure"));
  finish_on("debug Ignoring commit status (pending) for octo/app@a1b2c3d4: "
            "not success");
  finish_on("info Ignoring commit status (success) for "
            "octo/app+feature/x@a1b2c3d4: not on the default branch main");
  finish_on("info Ignoring commit status (success) for octo/app+none@a1b2c3d4: "
            "not on the default branch main");
  finish_on("debug Ignoring commit status (failure) for octo/app@a1b2c3d4: "
            "not success");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(latest_asked() == 0);
}

BOOST_AUTO_TEST_CASE(nothing_deployed_yet_means_nothing_to_auto_deploy) {
  send(status_event());
  finish_on("info Not auto-deploying octo/app@a1b2c3d4: heaven has not "
            "deployed octo/app successfully yet");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(latest_asked() == 1);
}

namespace {

/// The log with each line's log context.
struct context_fixture : auto_fixture {
  context_fixture() : auto_fixture(true) {
  }
};

} // namespace

BOOST_FIXTURE_TEST_CASE(lines_carry_the_repository_and_environment,
                        context_fixture) {
  deployed_last(
    {locked(deployed("production", prod_base, prod_payload), "alice"),
     deployed("staging", staging_base, prod_payload)});
  world.combined = {"503", "success"};
  send(status_event());
  // The job's lines about one environment name it; no heaven deployment
  // exists yet.
  finish_on(created_line("staging", 1001)
            + " [repository=octo/app environment=staging]");
  BOOST_TEST(count_logged("info Not auto-deploying octo/app@a1b2c3d4 to "
                          "production: octo/app is locked on production by "
                          "alice [repository=octo/app environment=production]")
             == 1u);
  BOOST_TEST(count_logged("info Auto-deploying octo/app@a1b2c3d4 to staging "
                          "(app): creating its GitHub deployment "
                          "[repository=octo/app environment=staging]")
             == 1u);
  // Its lines about the commit name the repository only.
  BOOST_TEST(count_logged("warning reading the combined status of "
                          "octo/app@a1b2c3d4 failed (HTTP 503: Server Error), "
                          "attempt 1 of 3; trying again in 10 ms "
                          "[repository=octo/app]")
             == 1u);
  // So do the event's.
  send(status_event("pending"));
  finish_on("debug Ignoring commit status (pending) for octo/app@a1b2c3d4: "
            "not success [repository=octo/app]");
}

BOOST_AUTO_TEST_CASE(a_locked_environment_is_skipped_while_another_deploys) {
  deployed_last(
    {locked(deployed("production", prod_base, prod_payload), "alice"),
     deployed("staging", staging_base, prod_payload)});
  send(status_event());
  BOOST_REQUIRE(wait_logged("info Not auto-deploying octo/app@a1b2c3d4 to "
                            "production: octo/app is locked on production by "
                            "alice"));
  finish_on(created_line("staging", 1001));
  BOOST_REQUIRE_EQUAL(posts().size(), 1u);
  auto bodies = posted_by_environment();
  BOOST_TEST(bodies.count("staging") == 1u);
  BOOST_TEST(bodies.count("production") == 0u);
  // The locked environment is not even compared.
  BOOST_TEST(requests_to("GET", compare_target(prod_base)).empty());
  BOOST_TEST(requests_to("GET", compare_target(staging_base)).size() == 1u);
  BOOST_TEST(claims().size() == 1u);
}

BOOST_AUTO_TEST_CASE(several_green_events_for_one_sha_deploy_it_once) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  // Two CI contexts turn green at once: both events race.
  send(status_event());
  send(status_event());
  BOOST_REQUIRE(wait_logged("info Not auto-deploying octo/app@a1b2c3d4 to "
                            "production: already auto-deployed"));
  finish_on(created_line("production", 1001));
  // And a third, later.
  send(status_event());
  finish_on("info Not auto-deploying octo/app@a1b2c3d4 to production: "
            "already auto-deployed",
            2);
  BOOST_TEST(posts().size() == 1u);
  BOOST_TEST(count_logged(created_line("production", 1001)) == 1u);
  BOOST_TEST(claims().size() == 1u);
}

BOOST_AUTO_TEST_CASE(two_environments_get_two_deployments) {
  deployed_last({deployed("production", prod_base, prod_payload),
                 deployed("staging", staging_base,
                          R"({"name":"app","notify":{"room":"dev"}})")});
  send(status_event());
  // GitHub numbers them in arrival order, which is not fixed.
  BOOST_REQUIRE(run_until(
    [&] { return count_containing(": created GitHub deployment ") == 2u; }));
  BOOST_REQUIRE(settled());
  BOOST_TEST(posts().size() == 2u);
  BOOST_TEST(count_logged(created_line("production", 1001))
               + count_logged(created_line("production", 1002))
             == 1u);
  BOOST_TEST(count_logged(created_line("staging", 1001))
               + count_logged(created_line("staging", 1002))
             == 1u);
  // One combined status for the event, one compare per environment.
  BOOST_TEST(requests_to("GET", combined_target).size() == 1u);
  BOOST_TEST(requests_to("GET", compare_target(prod_base)).size() == 1u);
  BOOST_TEST(requests_to("GET", compare_target(staging_base)).size() == 1u);
  auto bodies = posted_by_environment();
  BOOST_REQUIRE_EQUAL(bodies.size(), 2u);
  auto prod = json::parse(prod_payload);
  prod["actor"] = "octocat";
  prod["sha"] = sha;
  BOOST_TEST(bodies["production"] == expected_body("production", prod));
  json staging = {{"name", "app"},
                  {"notify", {{"room", "dev"}}},
                  {"actor", "octocat"},
                  {"sha", sha}};
  BOOST_TEST(bodies["staging"] == expected_body("staging", staging));
  BOOST_TEST(claims().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_payload_that_is_not_an_object_starts_from_nothing) {
  deployed_last({deployed("production", prod_base, "[1,2]"),
                 deployed("staging", staging_base, "not json at all"),
                 deployed("qa", qa_base, R"("a string")")});
  // No author known: the payload's actor is left alone.
  send(status_event("success", {"main"}, ""));
  BOOST_REQUIRE(run_until(
    [&] { return count_containing(": created GitHub deployment ") == 3u; }));
  BOOST_REQUIRE(settled());
  BOOST_TEST(posts().size() == 3u);
  auto bodies = posted_by_environment();
  BOOST_REQUIRE_EQUAL(bodies.size(), 3u);
  for (auto env : {"production", "staging", "qa"})
    BOOST_TEST(bodies[env] == expected_body(env, {{"sha", sha}}), env);
}

BOOST_AUTO_TEST_CASE(a_5xx_on_the_combined_status_is_retried) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.combined = {"503", "502", "success"};
  send(status_event());
  finish_on(created_line("production", 1001));
  BOOST_TEST(requests_to("GET", combined_target).size() == 3u);
  BOOST_TEST(count_logged("warning reading the combined status of "
                          "octo/app@a1b2c3d4 failed (HTTP 503: Server Error), "
                          "attempt 1 of 3; trying again in 10 ms")
             == 1u);
  BOOST_TEST(count_logged("warning reading the combined status of "
                          "octo/app@a1b2c3d4 failed (HTTP 502: Server Error), "
                          "attempt 2 of 3; trying again in 20 ms")
             == 1u);
  BOOST_TEST(posts().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_combined_status_failing_every_attempt_gives_up) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.combined = {"500"};
  send(status_event());
  finish_on("error Not auto-deploying octo/app@a1b2c3d4: could not read its "
            "combined status: HTTP 500: Server Error");
  BOOST_TEST(requests_to("GET", combined_target).size() == 3u);
  BOOST_TEST(requests_to("GET", "/repos/octo/app/compare/").empty());
  BOOST_TEST(posts().empty());
}

BOOST_FIXTURE_TEST_CASE(a_request_that_can_never_be_made_is_not_retried,
                        real_auto_fixture) {
  // A GitHub endpoint curl cannot use: the request never leaves heaven and
  // would fail the same way on every attempt.
  auto_deploy_config c;
  c.http = http;
  c.store = store;
  c.api_endpoint = "htp://127.0.0.1:" + std::to_string(github.port()) + "/";
  c.token = token;
  c.attempts = 3;
  c.first_backoff_ms = 10;
  actor = sys.spawn(auto_deploy, c);
  auto baseline = sys.registry().running();
  caf::anon_send(actor, status_atom::value, status_event());
  std::string line = "error Not auto-deploying octo/app@a1b2c3d4: could not "
                     "read its combined status: Protocol \"htp\" not "
                     "supported or disabled in libcurl";
  BOOST_REQUIRE_MESSAGE(eventually([&] { return log.exactly(line) == 1; }, 20s),
                        "not logged: " << line << "\nlog:\n"
                                       << log.all());
  // The job quits.
  BOOST_REQUIRE(
    eventually([&] { return sys.registry().running() == baseline; }, 20s));
  BOOST_TEST(github.requests().empty());
  for (auto& l : log.lines())
    BOOST_TEST(l.rfind("warning reading the combined status", 0) != 0u, l);
}

BOOST_AUTO_TEST_CASE(a_422_on_create_is_logged_and_not_retried) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.creates = {stub_response{422,
                                 {{"Content-Type", "application/json"}},
                                 R"({"message":"Validation Failed",)"
                                 R"("errors":[]})"}};
  send(status_event());
  finish_on("error the auto deployment of octo/app@a1b2c3d4 to production "
            "(app) is dropped: HTTP 422: {\"message\":\"Validation "
            "Failed\",\"errors\":[]}");
  BOOST_TEST(posts().size() == 1u);
  BOOST_TEST(creation_outcomes()
             == std::vector<std::string>{
               R"(dropped: HTTP 422: {"message":"Validation Failed",)"
               R"("errors":[]})"});
}

BOOST_AUTO_TEST_CASE(create_is_sent_again_as_it_is_only_when_refused) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  // Rate limited, then "unavailable, come back later": neither created it.
  world.creates = {
    stub_response{429, {}, R"({"message":"Slow down"})"},
    stub_response{503, {{"Retry-After", "0"}}, R"({"message":"Unavailable"})"},
    stub_response{201, {}, R"({"id":555})"}};
  send(status_event());
  finish_on(created_line("production", 555));
  BOOST_TEST(posts().size() == 3u);
  auto bodies = posts();
  for (auto& p : bodies)
    BOOST_TEST(p.body == bodies[0].body);
  BOOST_TEST(requests_to("GET", "/repos/octo/app/deployments").empty());
}

BOOST_AUTO_TEST_CASE(a_create_without_answer_is_looked_up_and_found) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  // GitHub creates the deployment but answers after heaven stopped waiting.
  // (Not a dropped connection: the POST goes over the connection the GETs
  // used, and libcurl itself sends a POST again when a reused connection
  // closes without an answer.)
  auto o = opts;
  o.request_timeout_ms = 2000;
  stop(creations);
  opts = o;
  start_creations();
  world.created_anyway = {0};
  world.create_delay_ms = {{0, 4000}};
  send(status_event());
  finish_on("info Auto-deploying octo/app@a1b2c3d4 to production (app): "
            "found GitHub deployment 1001, created by an earlier request");
  auto all = github.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 4u);
  BOOST_TEST(all[0].target == combined_target);
  BOOST_TEST(all[1].target == compare_target(prod_base));
  BOOST_TEST(all[2].method == "POST");
  BOOST_TEST(all[2].target == "/repos/octo/app/deployments");
  // The POST timed out after 2 s; the lookup came 10 ms later.
  auto sent = github.calls();
  BOOST_TEST(sent[2]->state == fake_call::fate::timed_out);
  BOOST_TEST((sent[3]->at - sent[2]->at).count() == 2010);
  auto& lookup = all[3];
  BOOST_TEST(lookup.method == "GET");
  BOOST_TEST(lookup.target
             == std::string{"/repos/octo/app/deployments?sha="} + sha
                  + "&environment=production&task=deploy&per_page=100");
  BOOST_TEST(lookup.body.empty());
  for (auto& r : all)
    check_headers(r);
  BOOST_TEST(count_starting("warning the auto deployment of "
                            "octo/app@a1b2c3d4 to production (app) failed ")
             == 1u);
  BOOST_TEST(count_starting("error ") == 0u);
  // A 500 after GitHub created it: the same, for another sha.
  world.creates = {stub_response{500, {}, R"({"message":"Oops"})"}};
  world.created = 0;
  world.create_delay_ms.clear();
  send(status_event("success", {"main"}, "octocat", other_sha));
  finish_on("info Auto-deploying octo/app@b2c3d4e5 to production (app): "
            "found GitHub deployment 1001, created by an earlier request");
  BOOST_TEST(posts().size() == 2u);
  auto lookups = requests_to("GET", "/repos/octo/app/deployments?");
  BOOST_REQUIRE_EQUAL(lookups.size(), 2u);
  BOOST_TEST(lookups[1].target
             == std::string{"/repos/octo/app/deployments?sha="} + other_sha
                  + "&environment=production&task=deploy&per_page=100");
  BOOST_TEST(creation_outcomes()
             == (std::vector<std::string>{"delivered", "delivered"}));
}

BOOST_AUTO_TEST_CASE(without_heavens_deployment_the_create_is_sent_once_more) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.creates = {stub_response{502, {}, R"({"message":"Bad Gateway"})"},
                   stub_response{201, {}, R"({"id":777})"}};
  // What GitHub lists for this sha and environment, none of it heaven's
  // auto deployment of app: one by a person, one for another app, one of
  // another environment (a list that ignored the filter).
  auto auto_payload = json::parse(prod_payload);
  auto other_app = auto_payload;
  other_app["name"] = "other-app";
  world.listings = {[=](github_world&) {
    json list = {
      github_deployment(901, sha, "production", "Deploy request from hubot",
                        auto_payload),
      github_deployment(902, sha, "production", description, other_app),
      github_deployment(903, sha, "staging", description, auto_payload)};
    return stub_response{
      200, {{"Content-Type", "application/json"}}, list.dump()};
  }};
  send(status_event());
  finish_on(created_line("production", 777));
  auto all = github.requests();
  BOOST_REQUIRE_EQUAL(all.size(), 5u);
  BOOST_TEST(all[2].method == "POST");
  BOOST_TEST(all[3].method == "GET");
  BOOST_TEST(all[3].target
             == std::string{"/repos/octo/app/deployments?sha="} + sha
                  + "&environment=production&task=deploy&per_page=100");
  BOOST_TEST(all[4].method == "POST");
  BOOST_TEST(all[4].body == all[2].body);
  BOOST_TEST(count_logged("warning the auto deployment of octo/app@a1b2c3d4 "
                          "to production (app) failed (HTTP 502), attempt "
                          "1 of 3; trying again in 10 ms")
             == 1u);
}

BOOST_AUTO_TEST_CASE(the_lookup_reads_the_next_page_and_a_string_payload) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.creates = {stub_response{504, {}, R"({"message":"Timeout"})"}};
  auto payload = json::parse(prod_payload);
  payload["sha"] = sha;
  world.listings = {
    [](github_world&) {
      json list = {
        github_deployment(904, sha, "production", "by hand", json::object())};
      return stub_response{
        200,
        {{"Content-Type", "application/json"},
         {"Link", "<https://api.github.com/repositories/1/deployments?"
                  "page=2>; rel=\"next\""}},
        list.dump()};
    },
    [=](github_world&) {
      // Older deployments keep their payload as a JSON string.
      json list = {
        github_deployment(905, sha, "production", description, payload.dump())};
      return stub_response{
        200, {{"Content-Type", "application/json"}}, list.dump()};
    }};
  send(status_event());
  finish_on("info Auto-deploying octo/app@a1b2c3d4 to production (app): "
            "found GitHub deployment 905, created by an earlier request");
  auto lookups = requests_to("GET", "/repos/octo/app/deployments?");
  BOOST_REQUIRE_EQUAL(lookups.size(), 2u);
  BOOST_TEST(lookups[1].target
             == std::string{"/repos/octo/app/deployments?sha="} + sha
                  + "&environment=production&task=deploy&per_page=100"
                    "&page=2");
  BOOST_TEST(posts().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_failed_lookup_posts_nothing_more) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.creates = {stub_response{500, {}, R"({"message":"Oops"})"}};
  world.listings = {[](github_world&) {
    return stub_response{404,
                         {{"Content-Type", "application/json"}},
                         R"({"message":"Not Found"})"};
  }};
  send(status_event());
  finish_on("error the auto deployment of octo/app@a1b2c3d4 to production "
            "(app) is dropped: could not find out whether an earlier "
            "attempt arrived (looking it up: HTTP 404); not sending it "
            "again, so that it arrives once at most");
  BOOST_TEST(posts().size() == 1u);
  BOOST_TEST(requests_to("GET", "/repos/octo/app/deployments?").size() == 1u);
}

BOOST_AUTO_TEST_CASE(unanswered_every_time_and_never_found_gives_up) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  world.creates = {stub_response{500, {}, R"({"message":"Oops"})"}};
  send(status_event());
  finish_on("error the auto deployment of octo/app@a1b2c3d4 to production "
            "(app) is dropped: gave up after 3 attempt(s): HTTP 500");
  // Each POST is looked up before the next one.
  std::vector<std::string> seen;
  for (auto& r : github.requests())
    if (r.target.rfind("/repos/octo/app/deployments", 0) == 0)
      seen.push_back(r.method);
  std::vector<std::string> expected = {"POST", "GET", "POST", "GET", "POST"};
  BOOST_TEST(seen == expected, boost::test_tools::per_element());
}

// -- restarts ---------------------------------------------------------------

namespace {

/// The body of the creation of `sha` in production with prod_payload.
std::string production_request() {
  auto payload = json::parse(prod_payload);
  payload["actor"] = "octocat";
  payload["sha"] = sha;
  return json{{"ref", sha},         {"environment", "production"},
              {"task", "deploy"},   {"auto_merge", false},
              {"payload", payload}, {"description", description}}
    .dump();
}

} // namespace

BOOST_AUTO_TEST_CASE(a_claim_left_by_a_killed_heaven_is_created_once) {
  // heaven claimed the sha and died before its request went out: the claim
  // and the request are one row in the store.
  stop(creations);
  BOOST_REQUIRE(ask<bool>(real_store, claim_atom::value,
                          auto_deployment{"octo/app", "app", "production", sha,
                                          production_request()}));
  BOOST_TEST(github.requests().empty());
  // The next heaven does not know whether it went out: it looks first.
  restart(opts);
  BOOST_REQUIRE(wait_logged(created_line("production", 1001)));
  BOOST_REQUIRE(settled());
  std::vector<std::string> seen;
  for (auto& r : github.requests())
    seen.push_back(r.method + " " + r.target);
  BOOST_TEST(seen
             == (std::vector<std::string>{
               std::string{"GET /repos/octo/app/deployments?sha="} + sha
                 + "&environment=production&task=deploy&per_page=100",
               "POST /repos/octo/app/deployments"}));
  BOOST_TEST(json::parse(posts().at(0).body)
             == json::parse(production_request()));
  check_headers(posts().at(0));
  // And a green status for that sha does not claim it again.
  deployed_last({deployed("production", prod_base, prod_payload)});
  send(status_event());
  finish_on("info Not auto-deploying octo/app@a1b2c3d4 to production: "
            "already auto-deployed");
  BOOST_TEST(posts().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_create_whose_answer_died_with_heaven_is_not_repeated) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  // GitHub creates it but answers only after heaven is gone.
  world.created_anyway = {0};
  world.create_delay_ms = {{0, 3000}};
  send(status_event());
  BOOST_REQUIRE(run_until([&] { return posts().size() == 1u; }));
  restart(opts);
  finish_on("info Auto-deploying octo/app@a1b2c3d4 to production (app): "
            "found GitHub deployment 1001, created by an earlier request");
  BOOST_TEST(posts().size() == 1u);
  BOOST_TEST(requests_to("GET", "/repos/octo/app/deployments?").size() == 1u);
  BOOST_TEST(claims().size() == 1u);
  BOOST_TEST(creation_outcomes() == std::vector<std::string>{"delivered"});
}

namespace {

constexpr auto migrations_description = "Migrations for alice's ticket 42";

/// The body of a deployment of `sha` to production a person asked for:
/// task deploy:migrations, their own description.
json migrations_request() {
  return json{{"ref", sha},
              {"environment", "production"},
              {"task", "deploy:migrations"},
              {"auto_merge", false},
              {"payload", json::parse(prod_payload)},
              {"description", migrations_description}};
}

/// GitHub deployment `id` of `sha` to production with `task` and `desc`.
json listed(int64_t id, std::string task, std::string desc) {
  auto d = github_deployment(id, sha, "production", std::move(desc),
                             json::parse(prod_payload));
  d["task"] = std::move(task);
  return d;
}

} // namespace

BOOST_AUTO_TEST_CASE(
  a_created_deployment_is_found_by_its_task_and_description) {
  // A creation queued before heaven stopped: the next heaven looks first.
  stop(creations);
  BOOST_REQUIRE(ask<bool>(real_store, create_atom::value,
                          auto_deployment{"octo/app", "app", "production", sha,
                                          migrations_request().dump()}));
  // Only 903 has both the row's task and its description: 901 has the
  // auto-deploy description, 902 the task "deploy".
  world.listings = {[](github_world&) {
    json list = {listed(901, "deploy:migrations", description),
                 listed(902, "deploy", migrations_description),
                 listed(903, "deploy:migrations", migrations_description)};
    return stub_response{
      200, {{"Content-Type", "application/json"}}, list.dump()};
  }};
  restart(opts);
  finish_on("info Auto-deploying octo/app@a1b2c3d4 to production (app): "
            "found GitHub deployment 903, created by an earlier request");
  std::vector<std::string> seen;
  for (auto& r : github.requests())
    seen.push_back(r.method + " " + r.target);
  BOOST_TEST(seen
             == (std::vector<std::string>{
               std::string{"GET /repos/octo/app/deployments?sha="} + sha
               + "&environment=production&task=deploy%3Amigrations"
                 "&per_page=100"}));
  BOOST_TEST(posts().empty());
  BOOST_TEST(creation_outcomes() == std::vector<std::string>{"delivered"});
}

BOOST_AUTO_TEST_CASE(a_deployment_with_another_task_or_description_is_not_it) {
  stop(creations);
  BOOST_REQUIRE(ask<bool>(real_store, create_atom::value,
                          auto_deployment{"octo/app", "app", "production", sha,
                                          migrations_request().dump()}));
  world.listings = {[](github_world&) {
    json list = {listed(901, "deploy:migrations", description),
                 listed(902, "deploy", migrations_description)};
    return stub_response{
      200, {{"Content-Type", "application/json"}}, list.dump()};
  }};
  restart(opts);
  finish_on(created_line("production", 1001));
  BOOST_TEST(requests_to("GET", "/repos/octo/app/deployments?").size() == 1u);
  BOOST_REQUIRE_EQUAL(posts().size(), 1u);
  BOOST_TEST(json::parse(posts()[0].body) == migrations_request());
}

BOOST_AUTO_TEST_CASE(no_token_means_no_request) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  auto c = config();
  c.token.clear();
  start(c);
  send(status_event());
  finish_on("warning Not auto-deploying octo/app@a1b2c3d4: GITHUB_TOKEN is "
            "not set (GitHub's API needs it)");
  BOOST_TEST(count_logged("warning Not auto-deploying octo/app@a1b2c3d4: "
                          "GITHUB_TOKEN is not set (GitHub's API needs it)")
             == 1u);
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(latest_asked() == 0);
}

BOOST_AUTO_TEST_CASE(jobs_stop_when_the_actor_exits) {
  deployed_last({deployed("production", prod_base, prod_payload)});
  auto c = config();
  c.first_backoff_ms = 600000;
  start(c);
  world.combined = {"503"};
  send(status_event());
  BOOST_REQUIRE(wait_logged("warning reading the combined status of "
                            "octo/app@a1b2c3d4 failed (HTTP 503: Server "
                            "Error), attempt 1 of 3; trying again in 600000 "
                            "ms"));
  // The job waits ten minutes for its retry...
  advance(599999ms);
  BOOST_TEST(requests_to("GET", combined_target).size() == 1u);
  // ...unless heaven stops: then it stops at once, without a timer.
  auto before = now();
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  run();
  BOOST_TEST(now() == before);
  BOOST_TEST(count_logged("warning Stopping the auto deploy of "
                          "octo/app@a1b2c3d4: heaven's auto_deploy actor is "
                          "gone")
             == 1u);
  BOOST_TEST(sys.registry().running() == baseline - 1);
  // Its retry never comes.
  settle();
  BOOST_TEST(requests_to("GET", combined_target).size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
