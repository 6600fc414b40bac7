// The HEROKU provider against local stand-ins for GitHub (the 302 tarball
// link), Heroku's Platform API and Heroku's build output host, over real
// sockets, through the real http_client actor.
#include "providers/heroku.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
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
#include "providers/api_common.hpp"
#include "tests/support/http_stub.hpp"
#include "tests/support/recorder.hpp"

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

/// A scripted Heroku: answers builds and polls the way its Platform API is
/// documented to; tests change what it says.
struct heroku_world {
  std::mutex mx;
  /// What POST /apps/<app>/builds answers, in turn (the last one repeats).
  std::vector<stub_response> creates;
  /// What each GET /apps/<app>/builds/<id> says ("pending", "succeeded",
  /// "failed", or an HTTP status as "503"), in turn (the last repeats).
  std::vector<std::string> polls;
  size_t created = 0;
  size_t polled = 0;
};

struct heroku_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor http = sys.spawn(http_client);
  std::shared_ptr<record> rec = std::make_shared<record>();
  caf::actor sink = sys.spawn(recorder, rec);
  http_stub github;
  http_stub heroku_api;
  http_stub output;
  heroku_world world;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_sink
    = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  heroku_fixture() {
    auto logger = std::make_shared<spdlog::logger>("test", log_sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
    github.respond_with([this](const recorded_request& r) {
      if (r.method == "GET"
          && r.target == std::string{"/repos/octo/app/tarball/"} + sha)
        return stub_response{302,
                             {{"Location", tarball_url()}},
                             ""};
      return stub_response{404, {}, R"({"message":"Not Found"})"};
    });
    world.creates = {created_build()};
    world.polls = {"pending", "succeeded"};
    heroku_api.respond_with([this](const recorded_request& r) {
      std::lock_guard guard{world.mx};
      if (r.method == "POST") {
        auto i = std::min(world.created++, world.creates.size() - 1);
        return world.creates[i];
      }
      auto i = std::min(world.polled++, world.polls.size() - 1);
      auto said = world.polls[i];
      if (std::isdigit(static_cast<unsigned char>(said[0])))
        return stub_response{std::stoi(said), {}, R"({"id":"unavailable"})"};
      json build = {{"id", build_id}, {"status", said}};
      return stub_response{200, {{"Content-Type", "application/json"}},
                           build.dump()};
    });
    output.respond_with([](const recorded_request&) {
      stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
      res.body = "-----> Building on the Heroku-22 stack\n-----> Done\n";
      return res;
    });
  }

  ~heroku_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(http, caf::exit_reason::user_shutdown);
    spdlog::set_default_logger(previous);
  }

  std::string tarball_url() const {
    return github.base_url() + "codeload/octo/app/legacy.tar.gz/" + sha
           + "?token=" + tarball_token;
  }

  std::string stream_url() const {
    return output.base_url() + "streams/" + build_id + "?token="
           + stream_token;
  }

  stub_response created_build() const {
    json build = {{"id", build_id},
                  {"status", "pending"},
                  {"output_stream_url", stream_url()},
                  {"source_blob", {{"url", tarball_url()}, {"version", sha}}}};
    return {201, {{"Content-Type", "application/json"}}, build.dump()};
  }

  heroku_config config() const {
    heroku_config c;
    c.http = http;
    c.endpoint = heroku_api.base_url();
    c.api_key = api_key;
    c.github_api = github.base_url();
    c.github_token = gh_token;
    c.poll_interval_ms = 20;
    c.attempts = 3;
    c.first_backoff_ms = 10;
    return c;
  }

  provider_job job(std::string config_json
                   = R"({"provider":"heroku","heroku_name":"octo-app",)"
                     R"("heroku_production_name":"octo-app-prod"})") {
    provider_job j;
    j.id = 42;
    j.request.repo = "octo/app";
    j.request.sha = sha;
    j.request.ref = "main";
    j.request.environment = "production";
    j.request.task = "deploy";
    j.request.payload_json = R"({"name":"app","config":)" + config_json
                             + "}";
    return j;
  }

  provider_actor start(heroku_config c, provider_job j) {
    return heroku_provider(std::move(c))(sys, std::move(j), sink);
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

  /// Every text the provider logged, plus heaven's own log.
  std::string everything_logged() {
    std::string all;
    std::lock_guard guard{rec->mx};
    for (auto& l : rec->lines)
      all += l.text + "\n";
    for (auto& l : log_sink->last_formatted())
      all += l;
    return all;
  }

  /// Starts over for another run in the same test: Heroku answers build
  /// creations with `creates` (the last repeats) and no result is recorded.
  void next_run(std::vector<stub_response> creates) {
    {
      std::lock_guard guard{world.mx};
      world.creates = std::move(creates);
      world.created = 0;
    }
    std::lock_guard guard{rec->mx};
    rec->results.clear();
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

  void check_no_secrets() {
    auto all = everything_logged();
    for (auto secret : {api_key, gh_token, tarball_token, stream_token})
      BOOST_TEST(all.find(secret) == std::string::npos, secret << " leaked");
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(heroku, heroku_fixture)

BOOST_AUTO_TEST_CASE(a_build_that_succeeds_makes_exactly_these_requests) {
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
  BOOST_TEST(result.state == "success");
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
  BOOST_TEST(body == (json{{"source_blob",
                            {{"url", tarball_url()}, {"version", sha}}}}));
  for (size_t i = 1; i < api.size(); ++i) {
    BOOST_TEST(api[i].method == "GET");
    BOOST_TEST(api[i].target
               == std::string{"/apps/octo-app-prod/builds/"} + build_id);
  }
  // The signed output link gets no API key: it may be another host.
  auto out = output.requests();
  BOOST_REQUIRE(out.size() == 1u);
  BOOST_TEST(out[0].target == std::string{"/streams/"} + build_id + "?token="
                                + stream_token);
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

BOOST_AUTO_TEST_CASE(heroku_name_is_used_without_an_environment_name) {
  start(config(), job(R"({"provider":"heroku","heroku_name":"octo-app"})"));
  BOOST_TEST(outcome().state == "success");
  BOOST_TEST(heroku_api.requests().at(0).target == "/apps/octo-app/builds");
}

BOOST_AUTO_TEST_CASE(a_failed_build_is_a_failure) {
  world.polls = {"pending", "failed"};
  start();
  auto result = outcome();
  BOOST_TEST(result.state == "failure");
  BOOST_TEST(result.description
             == "Heroku build 01234567 failed on octo-app-prod (see the log)");
  BOOST_TEST(rec->texts(stream::out).size() == 2u);
}

BOOST_AUTO_TEST_CASE(missing_app_key_or_bad_name_end_in_error_before_any_request) {
  start(config(), job(R"({"provider":"heroku"})"));
  auto r1 = outcome();
  BOOST_TEST(r1.state == "error");
  BOOST_TEST(r1.description
             == "payload.config.heroku_production_name or heroku_name is "
                "missing: heaven doesn't know which Heroku app to deploy");
  next_run({created_build()});
  start(config(), job(R"({"provider":"heroku","heroku_name":"../../x?y"})"));
  auto r2 = outcome();
  BOOST_TEST(r2.state == "error");
  BOOST_TEST(r2.description == "invalid Heroku app name '../../x?y'");
  next_run({created_build()});
  auto c = config();
  c.api_key.clear();
  start(c, job());
  auto r3 = outcome();
  BOOST_TEST(r3.state == "error");
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
  BOOST_TEST(result.state == "error");
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
      BOOST_TEST(result.state == "error");
      BOOST_TEST(result.description == c.description);
      BOOST_TEST(heroku_api.requests().size() == before + 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_429_waits_for_retry_after_then_builds) {
  world.creates = {{429, {{"Retry-After", "1"}}, R"({"id":"rate_limit"})"},
                   created_build()};
  start();
  BOOST_TEST(outcome().state == "success");
  auto api = heroku_api.requests();
  BOOST_REQUIRE(api.size() >= 2u);
  BOOST_TEST(api[0].method == "POST");
  BOOST_TEST(api[1].method == "POST");
  auto said = rec->texts(stream::heaven);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "Heroku's build API: HTTP 429; trying again in 1000 "
                        "ms (attempt 2 of 3)")
             == 1);
}

BOOST_AUTO_TEST_CASE(a_request_that_can_never_be_made_is_not_retried) {
  // A Heroku endpoint curl cannot use: the build request never leaves
  // heaven, and every attempt would fail the same way.
  auto c = config();
  c.endpoint = "htp://127.0.0.1:" + std::to_string(heroku_api.port()) + "/";
  start(c, job());
  auto result = outcome();
  BOOST_TEST(result.state == "error");
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
  BOOST_TEST(outcome().state == "success");
  // ...but a Heroku that keeps failing does, after the configured attempts.
  next_run({{503, {}, R"({"id":"unavailable"})"}});
  auto before = heroku_api.requests().size();
  start();
  auto result = outcome();
  BOOST_TEST(result.state == "error");
  BOOST_TEST(result.description == "Heroku could not build octo-app-prod "
                                   "(HTTP 503)");
  BOOST_TEST(heroku_api.requests().size() == before + 3);
}

BOOST_AUTO_TEST_CASE(a_stream_that_is_not_ready_yet_is_opened_again) {
  std::atomic<int> asked{0};
  output.respond_with([&](const recorded_request&) {
    if (asked++ == 0)
      return stub_response{404, {}, "not yet"};
    return stub_response{200, {{"Content-Type", "text/plain"}},
                         "-----> Building\n"};
  });
  world.polls = {"pending", "pending", "pending", "succeeded"};
  start();
  BOOST_TEST(outcome().state == "success");
  BOOST_TEST(output.requests().size() == 2u);
  BOOST_TEST(rec->texts(stream::out) == std::vector<std::string>{"-----> Building"});
}

BOOST_AUTO_TEST_CASE(cancel_stops_the_polling_and_the_stream_at_once) {
  std::atomic<bool> stream_closed{false};
  stream_until_hung_up(stream_closed);
  world.polls = {"pending"};
  auto provider = start();
  BOOST_REQUIRE(rec->wait(
    [&] { return rec->has_line_locked("-----> still building"); }, 20s));
  BOOST_REQUIRE(eventually([&] { return heroku_api.requests().size() >= 3; }));
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == "failure");
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(rec->wait(
    [&] {
      return rec->has_line_locked(std::string{"Stopped following Heroku build "}
                                  + build_id + ": Heroku may still finish it");
    }));
  BOOST_TEST(eventually([&] { return stream_closed.load(); }, 20s));
  // No poll after the cancel: the count stays put over many intervals.
  auto polls = heroku_api.requests().size();
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(heroku_api.requests().size() == polls);
}

BOOST_AUTO_TEST_CASE(a_provider_that_goes_away_ends_its_stream) {
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

BOOST_AUTO_TEST_SUITE_END()
