// The HEROKU provider against stand-ins for GitHub (the 302 tarball link),
// Heroku's Platform API and Heroku's build output host. In a virtual world
// (tests/support): the stand-ins behind the fake HTTP client, polls,
// retries, slow answers and cancels on virtual time. A build end to end, and
// what only curl decides, run over real sockets through the real http_client
// actor.
#include "providers/heroku.hpp"
#include "tests/support/logger.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "actors/http_client.hpp"
#include "base/payload_config.hpp"
#include "providers/api_common.hpp"
#include "tests/support/virtual_world.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto sha = "7f3c2a9e1b0d4c5f6a7b8c9d0e1f2a3b4c5d6e7f";
constexpr auto api_key = "heroku-api-key-0123456789";
constexpr auto gh_token = "ghp_heroku_test_token";
constexpr auto tarball_token = "TARBALLTOKEN123";
constexpr auto stream_token = "STREAMTOKEN456";
constexpr auto build_id = "01234567-89ab-cdef-0123-456789abcdef";

/// The build a request that got no answer (or a 5xx) created anyway.
constexpr auto lost_build_id = "fedcba98-7654-3210-fedc-ba9876543210";
constexpr auto other_sha = "0000000000111111111122222222223333333333";
constexpr auto mark = "heaven deployment 42 of octo/app";
constexpr auto first_range = "created_at ..; order=desc,max=20;";
constexpr auto app_builds = "/apps/octo-app-prod/builds";

/// `t` as Heroku writes times: "2024-05-01T10:00:00Z".
std::string iso(std::chrono::system_clock::time_point t) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// A build as Heroku's list shows it.
json listed_build(std::string id, std::string version,
                  std::chrono::system_clock::time_point created,
                  json description = nullptr) {
  return {{"id", std::move(id)},
          {"status", "pending"},
          {"created_at", iso(created)},
          {"source_blob",
           {{"url", "https://example.com/x.tgz"},
            {"version", std::move(version)},
            {"version_description", std::move(description)}}}};
}

struct heroku_world;

/// A scripted page of the build list.
using list_page = std::function<stub_response(heroku_world&)>;

/// A scripted Heroku: answers builds and polls the way its Platform API is
/// documented to; tests change what it says.
struct heroku_world {
  std::mutex mx;
  /// What POST /apps/<app>/builds answers, in turn (the last one repeats).
  std::vector<stub_response> creates;
  /// Which POSTs (0, 1, ...) create a build although their answer does not
  /// say so (dropped, timed out, 5xx): build `lost_build_id`.
  std::set<size_t> created_anyway;
  /// Milliseconds POST n waits before answering (a slow Heroku).
  std::map<size_t, int> create_delay_ms;
  /// How far the stand-in's clock is off when it stamps a build it makes.
  std::chrono::seconds clock_offset{0};
  /// Builds made by POSTs, oldest first.
  std::vector<json> made;
  /// Other builds of the app, newest first, all older than `made`.
  std::vector<json> others;
  /// When not empty, the pages GET /apps/<app>/builds answers in turn;
  /// otherwise one 200 with `made` (newest first) and then `others`.
  std::vector<list_page> pages;
  size_t listed = 0;
  /// What each GET /apps/<app>/builds/<id> says ("pending", "succeeded",
  /// "failed", or an HTTP status as "503"), in turn (the last repeats).
  std::vector<std::string> polls;
  size_t created = 0;
  size_t polled = 0;
};

/// What both fixtures share: the scripted GitHub, Heroku API and output host
/// (at base URLs the fixture sets), the job, what the provider told its
/// deployment and what heaven logged.
struct heroku_common {
  heroku_world world;
  std::shared_ptr<record> rec = std::make_shared<record>();
  /// With the log context, to see which deployment a line is about.
  captured_log log{1000, true};
  std::string github_base;
  std::string api_base;
  std::string output_base;

  heroku_common() {
    world.polls = {"pending", "succeeded"};
  }

  /// GitHub: the 302 with the tarball link.
  stub_response answer_github(const recorded_request& r) const {
    if (r.method == "GET"
        && r.target == std::string{"/repos/octo/app/tarball/"} + sha)
      return stub_response{302, {{"Location", tarball_url()}}, ""};
    return stub_response{404, {}, R"({"message":"Not Found"})"};
  }

  /// The output host: the build's output, at once.
  /// Points heaven at the stand-ins (virtual hosts or real stubs) and
  /// answers as `world` says; `reply(res, delay_ms)` makes Heroku's answer.
  template <class Host, class Reply>
  void serve(Host& gh, Host& api, Host& out, Reply reply) {
    github_base = gh.base_url();
    api_base = api.base_url();
    output_base = out.base_url();
    world.creates = {created_build()};
    gh.respond_with(
      [this](const recorded_request& r) { return answer_github(r); });
    api.respond_with([this, reply](const recorded_request& r) {
      int delay = 0;
      auto res = answer(r, delay);
      return reply(std::move(res), delay);
    });
    out.respond_with(answer_output);
  }

  static stub_response answer_output(const recorded_request&) {
    stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    res.body = "-----> Building on the Heroku-22 stack\n-----> Done\n";
    return res;
  }

  /// Heroku's Platform API as documented: create, list and show builds.
  /// `delay_ms` is how long this answer takes.
  stub_response answer(const recorded_request& r, int& delay_ms) {
    std::unique_lock guard{world.mx};
    if (r.method == "POST") {
      auto n = world.created++;
      auto res = world.creates[std::min(n, world.creates.size() - 1)];
      bool answered = res.status == 201 && !res.drop;
      if (answered || world.created_anyway.count(n) != 0) {
        json build = answered ? json::parse(res.body) : lost_build();
        build["created_at"] = iso(std::chrono::system_clock::now()
                                  + world.clock_offset);
        auto sent = json::parse(r.body);
        build["source_blob"] = sent["source_blob"];
        world.made.push_back(build);
      }
      delay_ms = world.create_delay_ms.count(n) ? world.create_delay_ms[n] : 0;
      return res;
    }
    if (r.target == app_builds) {
      auto n = world.listed++;
      if (!world.pages.empty())
        return world.pages[std::min(n, world.pages.size() - 1)](world);
      auto all = json::array();
      for (auto i = world.made.rbegin(); i != world.made.rend(); ++i)
        all.push_back(*i);
      for (auto& b : world.others)
        all.push_back(b);
      return stub_response{
        200, {{"Content-Type", "application/json"}}, all.dump()};
    }
    auto i = std::min(world.polled++, world.polls.size() - 1);
    auto said = world.polls[i];
    if (std::isdigit(static_cast<unsigned char>(said[0])))
      return stub_response{std::stoi(said), {}, R"({"id":"unavailable"})"};
    auto id = r.target.substr(r.target.rfind('/') + 1);
    json build = {{"id", id}, {"status", said}};
    return stub_response{
      200, {{"Content-Type", "application/json"}}, build.dump()};
  }

  /// The build a lost request created (what the list shows of it).
  json lost_build() const {
    return {{"id", lost_build_id},
            {"status", "pending"},
            {"output_stream_url", stream_url(lost_build_id)}};
  }

  /// "METHOD target" of each of `requests`.
  static std::vector<std::string>
  calls_of(const std::vector<recorded_request>& requests) {
    std::vector<std::string> calls;
    for (auto& r : requests)
      calls.push_back(r.method + " " + r.target);
    return calls;
  }

  /// `calls_of(requests)` with the polls of `id` left out.
  static std::vector<std::string>
  calls_but_polls(const std::vector<recorded_request>& requests,
                  const std::string& id) {
    auto poll = std::string{"GET "} + app_builds + "/" + id;
    std::vector<std::string> result;
    for (auto& c : calls_of(requests))
      if (c != poll)
        result.push_back(c);
    return result;
  }

  /// Checks what the list request carried.
  void check_list_request(const recorded_request& r, const std::string& range) {
    BOOST_TEST(r.method == "GET");
    BOOST_TEST(r.target == app_builds);
    BOOST_TEST(r.header("range") == range);
    BOOST_TEST(r.header("accept") == "application/vnd.heroku+json; version=3");
    BOOST_TEST(r.header("authorization") == std::string{"Bearer "} + api_key);
    BOOST_TEST(r.body.empty());
  }

  std::string tarball_url() const {
    return github_base + "codeload/octo/app/legacy.tar.gz/" + sha
           + "?token=" + tarball_token;
  }

  std::string stream_url(const std::string& id = build_id) const {
    return output_base + "streams/" + id + "?token=" + stream_token;
  }

  stub_response created_build() const {
    json build = {{"id", build_id},
                  {"status", "pending"},
                  {"output_stream_url", stream_url()},
                  {"source_blob", {{"url", tarball_url()}, {"version", sha}}}};
    return {201, {{"Content-Type", "application/json"}}, build.dump()};
  }

  heroku_config config_with(http_client_actor http) const {
    heroku_config c;
    c.http = std::move(http);
    c.endpoint = api_base;
    c.api_key = api_key;
    c.github_api = github_base;
    c.github_token = gh_token;
    c.poll_interval_ms = 20;
    c.attempts = 3;
    c.first_backoff_ms = 10;
    c.jitter = 0; // The tests assert exact waits.
    return c;
  }

  provider_job job(std::string config_json
                   = R"({"provider":"heroku","heroku_name":"octo-app",)"
                     R"("heroku_production_name":"octo-app-prod"})") const {
    provider_job j;
    j.id = 42;
    j.request.repo = "octo/app";
    j.request.sha = sha;
    j.request.ref = "main";
    j.request.environment = "production";
    j.request.task = "deploy";
    j.request.payload_json = R"({"name":"app","config":)" + config_json + "}";
    return j;
  }

  /// Every text the provider logged, plus heaven's own log.
  std::string everything_logged() {
    std::string all;
    {
      std::lock_guard guard{rec->mx};
      for (auto& l : rec->lines)
        all += l.text + "\n";
    }
    return all + log.all();
  }

  /// Whether the provider told its deployment the line `text`.
  bool has_line(const std::string& text) {
    std::lock_guard guard{rec->mx};
    return rec->has_line_locked(text);
  }

  /// Starts over for another run in the same test: Heroku answers build
  /// creations with `creates` (the last repeats) and no result is recorded.
  void next_run(std::vector<stub_response> creates) {
    {
      std::lock_guard guard{world.mx};
      world.creates = std::move(creates);
      world.created = 0;
      world.created_anyway.clear();
      world.create_delay_ms.clear();
      world.made.clear();
      world.listed = 0;
    }
    std::lock_guard guard{rec->mx};
    rec->results.clear();
  }

  void check_no_secrets() {
    auto all = everything_logged();
    for (auto secret : {api_key, gh_token, tarball_token, stream_token})
      BOOST_TEST(all.find(secret) == std::string::npos, secret << " leaked");
  }
};

/// The provider in a virtual world (tests/support): the services behind the
/// fake HTTP client, polls and retries on virtual time.
struct heroku_fixture : heroku_common, virtual_world {
  fake_host& github = net->host("http://github.test/");
  fake_host& heroku_api = net->host("http://api.heroku.test/");
  fake_host& output = net->host("http://output.heroku.test/");
  deployment_actor sink = keep(sys.spawn(deployment_recorder, rec));

  heroku_fixture() {
    serve(github, heroku_api, output, [](stub_response res, int delay) {
      // A slow Heroku: the answer comes after this much virtual time.
      return fake_reply{res}.after(std::chrono::milliseconds(delay));
    });
  }

  heroku_config config() const {
    return config_with(http);
  }

  provider_actor start(heroku_config c, provider_job j) {
    j.config = read_payload_config(j.request);
    return keep(heroku_provider(std::move(c))(sys, std::move(j), sink).actor);
  }

  provider_actor start() {
    return start(config(), job());
  }

  /// Runs until the provider reports; its one outcome.
  provider_outcome outcome() {
    BOOST_REQUIRE(run_until([&] { return !rec->results.empty(); }));
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  /// The requests to Heroku's API, as "METHOD target".
  std::vector<std::string> api_calls() const {
    return calls_of(heroku_api.requests());
  }

  /// `api_calls()` with the polls of `id` left out.
  std::vector<std::string> api_calls_but_polls(const std::string& id) const {
    return calls_but_polls(heroku_api.requests(), id);
  }
};

/// The provider through the real http_client actor to stand-ins on real
/// sockets: a build end to end, and what only curl decides.
struct real_heroku_fixture : heroku_common {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor http = sys.spawn(http_client);
  deployment_actor sink = sys.spawn(deployment_recorder, rec);
  http_stub github;
  http_stub heroku_api;
  http_stub output;

  real_heroku_fixture() {
    serve(github, heroku_api, output,
          [](stub_response res, int) { return res; });
  }

  ~real_heroku_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(http, caf::exit_reason::user_shutdown);
  }

  heroku_config config() const {
    return config_with(http);
  }

  provider_actor start(heroku_config c, provider_job j) {
    j.config = read_payload_config(j.request);
    return heroku_provider(std::move(c))(sys, std::move(j), sink).actor;
  }

  provider_actor start() {
    return start(config(), job());
  }

  provider_outcome outcome() {
    BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }, 20s));
    std::lock_guard guard{rec->mx};
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  /// The output host streams a line every 20 ms until heaven hangs up
  /// (then sets `closed`), for at most 20 s.
  void stream_until_hung_up(std::atomic<bool>& closed) {
    output.respond_with([&closed](const recorded_request&) {
      stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
      res.stream = [&closed](const chunk_writer& write) {
        for (int i = 0; i < 1000; ++i) {
          if (!write("-----> still building\n"))
            break;
          std::this_thread::sleep_for(20ms);
        }
        closed = true;
      };
      return res;
    });
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(heroku, heroku_fixture)

BOOST_FIXTURE_TEST_CASE(a_build_that_succeeds_makes_exactly_these_requests,
                        real_heroku_fixture) {
  // The output arrives in two pieces; the second is only sent once the
  // first is in the log, which proves the log is fed while the stream is
  // still open.
  output.respond_with([this](const recorded_request&) {
    stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    res.stream = [this](const chunk_writer& write) {
      write("-----> Building on the Heroku-22 stack\n-----> Installing");
      rec->wait([&] {
        return rec->has_line_locked("-----> Building on the Heroku-22 stack");
      });
      write(" ruby 3.2\n-----> Launching... done, v42\n");
    };
    return res;
  });
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build 01234567 succeeded on octo-app-prod");
  auto gh = github.requests();
  BOOST_REQUIRE(gh.size() == 1u);
  BOOST_TEST(gh[0].method == "GET");
  BOOST_TEST(gh[0].target == std::string{"/repos/octo/app/tarball/"} + sha);
  BOOST_TEST(gh[0].header("authorization") == std::string{"token "} + gh_token);
  BOOST_TEST(gh[0].header("accept") == "application/vnd.github+json");
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() >= 3u);
  BOOST_TEST(api[0].method == "POST");
  BOOST_TEST(api[0].target == "/apps/octo-app-prod/builds");
  for (auto& r : api) {
    BOOST_TEST(r.header("accept") == "application/vnd.heroku+json; version=3");
    BOOST_TEST(r.header("authorization") == std::string{"Bearer "} + api_key);
  }
  BOOST_TEST(api[0].header("content-type") == "application/json");
  auto body = json::parse(api[0].body);
  BOOST_TEST(body
             == (json{{"source_blob",
                       {{"url", tarball_url()},
                        {"version", sha},
                        {"version_description", mark}}}}));
  for (size_t i = 1; i < api.size(); ++i) {
    BOOST_TEST(api[i].method == "GET");
    BOOST_TEST(api[i].target
               == std::string{"/apps/octo-app-prod/builds/"} + build_id);
  }
  // The signed output link gets no API key: it may be another host.
  auto out = output.requests();
  BOOST_REQUIRE(out.size() == 1u);
  BOOST_TEST(out[0].target
             == std::string{"/streams/"} + build_id + "?token=" + stream_token);
  BOOST_TEST(out[0].header("authorization").empty());
  auto lines = rec->texts(stream::out);
  std::vector<std::string> expected = {
    "-----> Building on the Heroku-22 stack",
    "-----> Installing ruby 3.2",
    "-----> Launching... done, v42",
  };
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
  check_no_secrets();
}

BOOST_AUTO_TEST_CASE(heavens_lines_carry_the_deployment) {
  start();
  BOOST_TEST(outcome().state == deploy_state::success);
  // What the JSON log writes as "deployment", "repository", "environment".
  BOOST_TEST(log.exactly("info deployment 42: Heroku build "
                         "01234567-89ab-cdef-0123-456789abcdef of "
                         "octo-app-prod started [deployment=42 "
                         "repository=octo/app environment=production]")
               == 1u,
             log.all());
  BOOST_TEST(log.containing("deployment 42") > 0u);
  BOOST_TEST(log.containing("deployment 42")
               == log.containing("[deployment=42 repository=octo/app "
                                 "environment=production]"),
             log.all());
}

BOOST_AUTO_TEST_CASE(heroku_name_is_used_without_an_environment_name) {
  start(config(), job(R"({"provider":"heroku","heroku_name":"octo-app"})"));
  BOOST_TEST(outcome().state == deploy_state::success);
  BOOST_TEST(heroku_api.requests().at(0).target == "/apps/octo-app/builds");
}

BOOST_AUTO_TEST_CASE(a_failed_build_is_a_failure) {
  world.polls = {"pending", "failed"};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "Heroku build 01234567 failed on octo-app-prod (see the log)");
  BOOST_TEST(rec->texts(stream::out).size() == 2u);
}

BOOST_AUTO_TEST_CASE(
  missing_app_key_or_bad_name_end_in_error_before_any_request) {
  start(config(), job(R"({"provider":"heroku"})"));
  auto r1 = outcome();
  BOOST_TEST(r1.state == deploy_state::error);
  BOOST_TEST(r1.description
             == "payload.config.heroku_production_name or heroku_name is "
                "missing: heaven doesn't know which Heroku app to deploy");
  next_run({created_build()});
  start(config(), job(R"({"provider":"heroku","heroku_name":"../../x?y"})"));
  auto r2 = outcome();
  BOOST_TEST(r2.state == deploy_state::error);
  BOOST_TEST(r2.description == "invalid Heroku app name '../../x?y'");
  next_run({created_build()});
  auto c = config();
  c.api_key.clear();
  start(c, job());
  auto r3 = outcome();
  BOOST_TEST(r3.state == deploy_state::error);
  BOOST_TEST(r3.description
             == "HEROKU_API_KEY is not set: heaven can't deploy to Heroku");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(heroku_api.requests().empty());
}

BOOST_AUTO_TEST_CASE(no_tarball_link_is_an_error_naming_the_token) {
  github.respond_with([](const recorded_request&) {
    return stub_response{404, {}, R"({"message":"Not Found"})"};
  });
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "could not get GitHub's tarball of octo/app at 7f3c2a9 "
                "(HTTP 404): can GITHUB_TOKEN read the repository?");
  BOOST_TEST(github.requests().size() == 1u); // A 404 is not retried.
  BOOST_TEST(heroku_api.requests().empty());
}

BOOST_AUTO_TEST_CASE(heroku_errors_become_clear_descriptions_without_retries) {
  struct error_case {
    int status;
    std::string body;
    std::string description;
  };
  std::vector<error_case> cases = {
    {401, R"({"id":"unauthorized","message":"Invalid credentials provided."})",
     "Heroku refused HEROKU_API_KEY (401): Invalid credentials provided."},
    {403, R"({"id":"forbidden","message":"You do not have access."})",
     "HEROKU_API_KEY may not build octo-app-prod (403): You do not have "
     "access."},
    {404, R"({"id":"not_found","message":"Couldn't find that app."})",
     "Heroku has no app 'octo-app-prod' that HEROKU_API_KEY can see (404): "
     "Couldn't find that app."},
    {422, R"({"id":"invalid_params","message":"source_blob is invalid"})",
     "Heroku refused to build octo-app-prod (422): source_blob is invalid"},
  };
  for (auto& c : cases) {
    BOOST_TEST_CONTEXT("HTTP " << c.status) {
      next_run({{c.status, {{"Content-Type", "application/json"}}, c.body}});
      auto before = heroku_api.requests().size();
      start();
      auto result = outcome();
      BOOST_TEST(result.state == deploy_state::error);
      BOOST_TEST(result.description == c.description);
      BOOST_TEST(heroku_api.requests().size() == before + 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_429_waits_for_retry_after_then_builds) {
  world.creates = {{429, {{"Retry-After", "1"}}, R"({"id":"rate_limit"})"},
                   created_build()};
  start();
  BOOST_TEST(outcome().state == deploy_state::success);
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() >= 2u);
  BOOST_TEST(api[0].method == "POST");
  BOOST_TEST(api[1].method == "POST");
  // Exactly the second Heroku named.
  auto sent = heroku_api.calls();
  BOOST_TEST((sent[1]->at - sent[0]->at).count() == 1000);
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "Heroku's build API failed (HTTP 429), attempt 1 of "
                        "3; trying again in 1000 ms")
             == 1);
}

BOOST_FIXTURE_TEST_CASE(a_request_that_can_never_be_made_is_not_retried,
                        real_heroku_fixture) {
  // A Heroku endpoint curl cannot use: the build request never leaves
  // heaven, and every attempt would fail the same way.
  auto c = config();
  c.endpoint = "htp://127.0.0.1:" + std::to_string(heroku_api.port()) + "/";
  start(c, job());
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description.find("Protocol \"htp\" not supported")
               != std::string::npos,
             result.description);
  BOOST_TEST(heroku_api.requests().empty());
  BOOST_TEST(everything_logged().find("trying again") == std::string::npos,
             everything_logged());
  // The transient rule itself: no answer is worth a retry unless the
  // request never could be made.
  http_response res;
  res.error = "Out of memory";
  BOOST_TEST(transient(res));
  res.permanent = true;
  BOOST_TEST(!transient(res));
  int attempt = 1;
  api_config cfg;
  BOOST_TEST(!next_retry(res, attempt, cfg, "GitHub's tarball link"));
  BOOST_TEST(attempt == 1);
}

BOOST_AUTO_TEST_CASE(transient_errors_are_retried_then_given_up) {
  // A poll that fails now and then does not end the build...
  world.polls = {"503", "pending", "502", "succeeded"};
  start();
  BOOST_TEST(outcome().state == deploy_state::success);
  // ...but a Heroku that keeps refusing does, after the configured attempts.
  next_run({{503, {{"Retry-After", "0"}}, R"({"id":"unavailable"})"}});
  auto before = heroku_api.requests().size();
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "Heroku could not build octo-app-prod "
                "(HTTP 503)");
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() == before + 3);
  for (auto i = before; i < api.size(); ++i)
    BOOST_TEST(api[i].method + " " + api[i].target
               == std::string{"POST "} + app_builds);
  // A 503 without Retry-After may come from a proxy after Heroku acted:
  // each one is looked up before the next request, and the last one too.
  next_run({{503, {}, R"({"id":"unavailable"})"}});
  before = heroku_api.requests().size();
  start();
  result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "Heroku could not build octo-app-prod "
                "(HTTP 503); no build of it was found");
  api = heroku_api.requests();
  BOOST_REQUIRE(api.size() == before + 6);
  for (auto i = before; i < api.size(); i += 2) {
    BOOST_TEST(api[i].method == "POST");
    check_list_request(api[i + 1], first_range);
  }
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "No build of 7f3c2a9 on octo-app-prod since heaven's "
                        "request: asking Heroku again (attempt 3 of 3)")
             == 1);
}

BOOST_AUTO_TEST_CASE(a_stream_that_is_not_ready_yet_is_opened_again) {
  std::atomic<int> asked{0};
  output.respond_with([&](const recorded_request&) {
    if (asked++ == 0)
      return stub_response{404, {}, "not yet"};
    return stub_response{
      200, {{"Content-Type", "text/plain"}}, "-----> Building\n"};
  });
  world.polls = {"pending", "pending", "pending", "succeeded"};
  start();
  BOOST_TEST(outcome().state == deploy_state::success);
  BOOST_TEST(output.requests().size() == 2u);
  BOOST_TEST(rec->texts(stream::out)
             == std::vector<std::string>{"-----> Building"});
}

BOOST_AUTO_TEST_CASE(an_output_that_never_came_is_left_out_with_a_line) {
  // The stream waits for its turn (or the host never answers) past the
  // build's end and the polls given to drain it.
  output.respond_with([](const recorded_request&) {
    return fake_reply::held(
      stub_response{200, {{"Content-Type", "text/plain"}}, ""});
  });
  world.polls = {"succeeded"};
  start();
  BOOST_TEST(outcome().state == deploy_state::success);
  BOOST_TEST(rec->texts(stream::out).empty());
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "The build's output had not arrived when the build "
                        "ended (heaven follows a limited number of outputs "
                        "at once, HEAVEN_HTTP_MAX_STREAMS): it is not in "
                        "this log; Heroku keeps it with build 01234567")
             == 1);
}

BOOST_AUTO_TEST_CASE(cancel_stops_the_polling_and_the_stream_at_once) {
  // The output host streams for as long as heaven listens.
  output.respond_with([](const recorded_request&) {
    return fake_reply::held(
      stub_response{200, {{"Content-Type", "text/plain"}}, ""});
  });
  world.polls = {"pending"};
  auto provider = start();
  BOOST_REQUIRE(run_until([&] { return output.waiting().size() == 1u; }));
  net->push(output.waiting()[0]->id, "-----> still building\n");
  BOOST_REQUIRE(run_until([&] { return has_line("-----> still building"); }));
  BOOST_REQUIRE(run_until([&] { return heroku_api.requests().size() >= 3; }));
  // The cancel ends everything at once: no virtual time passes.
  auto before = now();
  caf::anon_send(provider, cancel_atom::value);
  run();
  BOOST_TEST(now() == before);
  BOOST_REQUIRE_EQUAL(rec->results.size(), 1u);
  BOOST_TEST(rec->results[0].state == deploy_state::failure);
  BOOST_TEST(rec->results[0].description == "cancelled");
  BOOST_TEST(has_line(std::string{"Stopped following Heroku build "} + build_id
                      + ": Heroku may still finish it"));
  BOOST_TEST(output.calls()[0]->state == fake_call::fate::cancelled);
  // No poll after the cancel: the count stays put over many intervals.
  auto polls = heroku_api.requests().size();
  advance(10 * 20ms);
  BOOST_TEST(heroku_api.requests().size() == polls);
  settle();
  BOOST_TEST(heroku_api.requests().size() == polls);
  BOOST_TEST(rec->results.size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_provider_that_goes_away_ends_its_stream,
                        real_heroku_fixture) {
  // The stream's sink is gone: the transfer ends even with no cancel.
  std::atomic<bool> stream_closed{false};
  stream_until_hung_up(stream_closed);
  world.polls = {"pending"};
  auto provider = start();
  BOOST_REQUIRE(rec->wait(
    [&] { return rec->has_line_locked("-----> still building"); }, 20s));
  caf::anon_send_exit(provider, caf::exit_reason::kill);
  BOOST_TEST(eventually([&] { return stream_closed.load(); }, 20s));
}

// -- create once: a build request without a clear answer ---------------------

BOOST_AUTO_TEST_CASE(a_build_request_without_answer_is_looked_up_and_followed) {
  // Heroku reads the request, starts the build and the connection drops
  // before the answer.
  stub_response dropped;
  dropped.drop = true;
  world.creates = {dropped, created_build()};
  world.created_anyway = {0};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build fedcba98 succeeded on octo-app-prod");
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() >= 3u);
  // One build request, then the list, then only polls of the build found.
  BOOST_TEST(api[0].method == "POST");
  BOOST_TEST(api[0].target == app_builds);
  BOOST_TEST(json::parse(api[0].body)["source_blob"]["version_description"]
             == mark);
  check_list_request(api[1], first_range);
  for (size_t i = 2; i < api.size(); ++i)
    BOOST_TEST(api[i].method + " " + api[i].target
               == std::string{"GET "} + app_builds + "/" + lost_build_id);
  // The build found is followed like one heaven was told about: its output.
  auto out = output.requests();
  BOOST_REQUIRE(out.size() == 1u);
  BOOST_TEST(out[0].target
             == std::string{"/streams/"} + lost_build_id
                  + "?token=" + stream_token);
  BOOST_TEST(rec->texts(stream::out).size() == 2u);
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        std::string{"Heroku build "} + lost_build_id
                          + " on octo-app-prod was started by heaven's "
                            "unanswered request: following it")
             == 1);
  check_no_secrets();
}

BOOST_AUTO_TEST_CASE(a_timed_out_or_500_build_request_is_looked_up_too) {
  // Heroku takes longer than heaven waits, and starts the build anyway.
  auto c = config();
  c.request_timeout_ms = 2000;
  world.creates = {created_build()};
  world.created_anyway = {0};
  world.create_delay_ms = {{0, 4000}};
  start(c, job());
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  // A 201 that comes too late still names build_id: Heroku made it.
  BOOST_TEST(result.description
             == "Heroku build 01234567 succeeded on octo-app-prod");
  auto calls = api_calls_but_polls(build_id);
  std::vector<std::string> expected = {std::string{"POST "} + app_builds,
                                       std::string{"GET "} + app_builds};
  BOOST_TEST(calls == expected, boost::test_tools::per_element());
  // A 500 after Heroku made the build: the same.
  next_run({{500, {}, R"({"id":"internal_server_error"})"}, created_build()});
  {
    std::lock_guard guard{world.mx};
    world.created_anyway = {0};
  }
  auto before = heroku_api.requests().size();
  start();
  result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build fedcba98 succeeded on octo-app-prod");
  auto all = api_calls();
  calls.clear();
  for (auto i = before; i < all.size(); ++i)
    if (all[i] != std::string{"GET "} + app_builds + "/" + lost_build_id)
      calls.push_back(all[i]);
  BOOST_TEST(calls == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(without_a_build_of_heavens_the_request_is_sent_once_more) {
  stub_response dropped;
  dropped.drop = true;
  world.creates = {dropped, created_build()};
  auto now = std::chrono::system_clock::now();
  // Builds of other shas, one of them just now.
  world.others = {listed_build("11111111-0000-0000-0000-000000000000",
                               other_sha, now),
                  listed_build("22222222-0000-0000-0000-000000000000",
                               other_sha, now - std::chrono::hours(2))};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build 01234567 succeeded on octo-app-prod");
  std::vector<std::string> expected = {std::string{"POST "} + app_builds,
                                       std::string{"GET "} + app_builds,
                                       std::string{"POST "} + app_builds};
  BOOST_TEST(api_calls_but_polls(build_id) == expected,
             boost::test_tools::per_element());
  auto api = heroku_api.requests();
  BOOST_TEST(api[2].body == api[0].body); // The same request, once more.
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "No build of 7f3c2a9 on octo-app-prod since heaven's "
                        "request: asking Heroku again (attempt 2 of 3)")
             == 1);
}

BOOST_AUTO_TEST_CASE(builds_of_the_same_sha_by_others_are_not_adopted) {
  stub_response dropped;
  dropped.drop = true;
  world.creates = {dropped, created_build()};
  auto now = std::chrono::system_clock::now();
  // Newest first: this sha just now by another heaven deployment, then this
  // sha an hour ago without a mark (a deployment before), then more: Heroku
  // says there is a next page, but the hour-old build is older than
  // heaven's request, so the next page is older still and is not read.
  world.pages = {[now](heroku_world&) {
    json page = {listed_build("33333333-0000-0000-0000-000000000000", sha, now,
                              "heaven deployment 41 of octo/app"),
                 listed_build("44444444-0000-0000-0000-000000000000", sha,
                              now - std::chrono::hours(1))};
    return stub_response{206,
                         {{"Content-Type", "application/json"},
                          {"Next-Range", "]44444444-0000-0000-0000-"
                                         "000000000000..; max=20, order=desc"}},
                         page.dump()};
  }};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build 01234567 succeeded on octo-app-prod");
  std::vector<std::string> expected = {std::string{"POST "} + app_builds,
                                       std::string{"GET "} + app_builds,
                                       std::string{"POST "} + app_builds};
  BOOST_TEST(api_calls_but_polls(build_id) == expected,
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_list_is_read_page_by_page_back_to_the_request) {
  stub_response dropped;
  dropped.drop = true;
  world.creates = {dropped, created_build()};
  world.created_anyway = {0};
  // Heroku's clock is 30 s behind heaven's: within the skew allowed.
  world.clock_offset = std::chrono::seconds(-30);
  constexpr auto next = "]55555555-0000-0000-0000-000000000000..; max=20, "
                        "order=desc";
  auto now = std::chrono::system_clock::now();
  world.pages = {[now, next](heroku_world&) {
                   // Newer builds of others fill the first page.
                   json page = {listed_build(
                     "55555555-0000-0000-0000-000000000000", other_sha, now)};
                   return stub_response{206,
                                        {{"Content-Type", "application/json"},
                                         {"Next-Range", next}},
                                        page.dump()};
                 },
                 [](heroku_world& w) {
                   json page = json::array();
                   for (auto& b : w.made)
                     page.push_back(b);
                   return stub_response{
                     200, {{"Content-Type", "application/json"}}, page.dump()};
                 }};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Heroku build fedcba98 succeeded on octo-app-prod");
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() >= 4u);
  BOOST_TEST(api[0].method == "POST");
  check_list_request(api[1], first_range);
  check_list_request(api[2], next);
  for (size_t i = 3; i < api.size(); ++i)
    BOOST_TEST(api[i].target == std::string{app_builds} + "/" + lost_build_id);
}

BOOST_AUTO_TEST_CASE(a_lookup_that_fails_ends_in_error_without_asking_again) {
  stub_response dropped;
  dropped.drop = true;
  world.creates = {dropped, created_build()};
  world.pages = {[](heroku_world&) {
    return stub_response{403,
                         {{"Content-Type", "application/json"}},
                         R"({"id":"forbidden","message":"No access."})"};
  }};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  auto prefix = std::string{"Heroku may have started a build on "
                            "octo-app-prod ("};
  auto suffix = std::string{"); listing its builds failed (HTTP 403)"};
  BOOST_TEST(result.description.rfind(prefix, 0) == 0u, result.description);
  BOOST_TEST(result.description.size() > prefix.size() + suffix.size());
  BOOST_TEST(
    result.description.substr(result.description.size() - suffix.size())
    == suffix);
  std::vector<std::string> expected = {std::string{"POST "} + app_builds,
                                       std::string{"GET "} + app_builds};
  BOOST_TEST(api_calls() == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_request_that_can_never_succeed_is_not_retried) {
  // The HTTP client fails every request to Heroku on heaven's side
  // (`permanent`); GitHub hands out the tarball link.
  heroku_api.respond_with([](const recorded_request&) {
    http_response res;
    res.error = "URL rejected: Malformed input to a URL function";
    res.permanent = true;
    return fake_reply{res};
  });
  start();
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "Heroku could not build octo-app-prod (URL rejected: "
                "Malformed input to a URL function)");
  // The tarball link, one build request; no lookup, no second request,
  // however long heaven goes on.
  settle();
  BOOST_TEST(github.requests().size() == 1u);
  auto api = heroku_api.requests();
  BOOST_REQUIRE_EQUAL(api.size(), 1u);
  BOOST_TEST(api[0].method == "POST");
}

BOOST_AUTO_TEST_SUITE_END()

// -- api_common's rules, as pure functions ------------------------------------

BOOST_AUTO_TEST_SUITE(api_common)

BOOST_AUTO_TEST_CASE(create_answers_are_classified_per_status) {
  auto answer = [](int status, string_pairs headers = {},
                   bool permanent = false) {
    http_response res;
    res.status = status;
    res.headers = std::move(headers);
    res.permanent = permanent;
    return classify_create(res);
  };
  BOOST_TEST((answer(201) == create_answer::created));
  BOOST_TEST((answer(200) == create_answer::created));
  BOOST_TEST((answer(429) == create_answer::refused));
  BOOST_TEST((answer(503, {{"retry-after", "5"}}) == create_answer::refused));
  BOOST_TEST((answer(503) == create_answer::unknown));
  BOOST_TEST((answer(0) == create_answer::unknown));
  BOOST_TEST((answer(500) == create_answer::unknown));
  BOOST_TEST((answer(502) == create_answer::unknown));
  BOOST_TEST((answer(504) == create_answer::unknown));
  BOOST_TEST((answer(0, {}, true) == create_answer::failed));
  BOOST_TEST((answer(422) == create_answer::failed));
  BOOST_TEST((answer(404) == create_answer::failed));
  BOOST_TEST((answer(302) == create_answer::failed));
}

BOOST_AUTO_TEST_CASE(a_permanent_failure_is_never_transient) {
  http_response res;
  res.error = "could not start the transfer";
  BOOST_TEST(transient(res));
  res.permanent = true;
  BOOST_TEST(!transient(res));
  api_config cfg;
  int attempt = 1;
  BOOST_TEST(!next_retry(res, attempt, cfg, "x").has_value());
  BOOST_TEST(attempt == 1);
}

BOOST_AUTO_TEST_CASE(times_are_read_as_apis_write_them) {
  using namespace std::chrono;
  auto at = [](const char* text) {
    auto t = parse_time(text);
    BOOST_REQUIRE_MESSAGE(t.has_value(), text);
    return duration_cast<seconds>(t->time_since_epoch()).count();
  };
  BOOST_TEST(at("1970-01-01T00:00:00Z") == 0);
  BOOST_TEST(at("2012-01-01T12:00:00Z") == 1325419200);
  BOOST_TEST(at("2012-01-01T12:00:00.123Z") == 1325419200);
  BOOST_TEST(at("2014-04-23T02:47:04+00:00") == 1398221224);
  BOOST_TEST(at("2014-04-23T04:47:04+02:00") == 1398221224);
  BOOST_TEST(at("2014-04-22T21:47:04-05:00") == 1398221224);
  // Kept to the millisecond (a log line's time is one).
  auto ms = [](const char* text) {
    auto t = parse_time(text);
    BOOST_REQUIRE_MESSAGE(t.has_value(), text);
    return duration_cast<milliseconds>(t->time_since_epoch()).count();
  };
  BOOST_TEST(ms("2012-01-01T12:00:00.123Z") == 1325419200123);
  BOOST_TEST(ms("2012-01-01T12:00:00.5Z") == 1325419200500);
  BOOST_TEST(ms("2012-01-01T12:00:00.098765Z") == 1325419200098);
  BOOST_TEST(ms("2014-04-23T04:47:04.250+02:00") == 1398221224250);
  for (auto bad : {"", "2012-01-01", "2012-01-01T12:00:00", "yesterday",
                   "2012-13-01T12:00:00Z", "2012-01-01T12:00:00Zjunk",
                   "2012-01-01T12:00:00+0100"})
    BOOST_TEST(!parse_time(bad).has_value(), bad);
}

BOOST_AUTO_TEST_SUITE_END()
