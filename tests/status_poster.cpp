// The STATUS_POSTER actor against a GitHub stand-in on a real socket.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "actors/http_client.hpp"
#include "actors/status_poster.hpp"
#include "tests/support/http_stub.hpp"

using namespace heaven;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto token = "ghp_secret_token_123";

github_status make_status(std::string state, std::string description = "") {
  github_status s;
  s.repo = "octo/app";
  s.github_id = 7;
  s.state = std::move(state);
  s.description = std::move(description);
  return s;
}

struct poster_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor client = sys.spawn(http_client);
  test::http_stub stub;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink
    = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  poster_fixture() {
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }

  ~poster_fixture() {
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    spdlog::set_default_logger(previous);
  }

  github_api api(int attempts = 5) const {
    return github_api{stub.base_url(), token, attempts, 10ms};
  }

  /// Spawns a poster, queues `statuses` at once and waits until it quits.
  void post_all(github_api a, const std::vector<github_status>& statuses) {
    auto poster = sys.spawn(status_poster, client, std::move(a));
    caf::scoped_actor self{sys};
    self->monitor(poster);
    for (auto& s : statuses)
      self->send(poster, status_atom::value, s);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; },
                  caf::after(30s) >> [] {});
    BOOST_REQUIRE_MESSAGE(down, "the status poster did not quit");
  }

  std::vector<std::string> logs() const {
    return sink->last_formatted();
  }

  bool logged(const std::string& text) const {
    for (auto& line : logs())
      if (line.find(text) != std::string::npos)
        return true;
    return false;
  }

  void check_no_token_logged() const {
    for (auto& line : logs())
      BOOST_TEST(line.find(token) == std::string::npos, line);
  }
};

std::vector<std::string> states_of(
  const std::vector<test::recorded_request>& reqs) {
  std::vector<std::string> out;
  for (auto& r : reqs)
    out.push_back(json::parse(r.body).at("state").get<std::string>());
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(status_poster_tests)

BOOST_AUTO_TEST_CASE(body_has_only_non_empty_urls) {
  auto s = make_status("success", "Deployed");
  BOOST_TEST(json::parse(status_body(s))
             == json({{"state", "success"}, {"description", "Deployed"}}));
  s.log_url = "https://heaven.example/deployments/3/log";
  s.environment_url = "https://app.example";
  BOOST_TEST(json::parse(status_body(s))
             == json({{"state", "success"},
                      {"description", "Deployed"},
                      {"log_url", "https://heaven.example/deployments/3/log"},
                      {"target_url",
                       "https://heaven.example/deployments/3/log"},
                      {"environment_url", "https://app.example"}}));
}

BOOST_AUTO_TEST_CASE(terminal_states) {
  BOOST_TEST(terminal_state("success"));
  BOOST_TEST(terminal_state("failure"));
  BOOST_TEST(terminal_state("error"));
  BOOST_TEST(!terminal_state("queued"));
  BOOST_TEST(!terminal_state("in_progress"));
  BOOST_TEST(!terminal_state("pending"));
}

BOOST_FIXTURE_TEST_CASE(posts_in_order_with_exact_requests, poster_fixture) {
  // Slow answers: a poster that did not wait would overlap requests.
  std::atomic<int> busy{0};
  std::atomic<int> max_busy{0};
  stub.respond_with([&](const test::recorded_request&) {
    auto now = ++busy;
    int seen = max_busy.load();
    while (now > seen && !max_busy.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(30ms);
    --busy;
    return test::stub_response{};
  });
  auto queued = make_status("queued", "Deployment queued");
  auto running = make_status("in_progress", "Deploying");
  running.log_url = "https://heaven.example/deployments/1/log";
  auto done = make_status("success", "Deployed in 3s");
  done.log_url = running.log_url;
  done.environment_url = "https://app.example";
  post_all(api(), {queued, running, done});
  BOOST_TEST(max_busy.load() == 1);
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 3u);
  for (auto& r : reqs) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/repos/octo/app/deployments/7/statuses");
    BOOST_TEST(r.header("accept") == "application/vnd.github+json");
    BOOST_TEST(r.header("authorization") == "token ghp_secret_token_123");
    BOOST_TEST(r.header("content-type") == "application/json");
    BOOST_TEST(r.header("user-agent") == "heaven");
  }
  BOOST_TEST(json::parse(reqs[0].body)
             == json({{"state", "queued"},
                      {"description", "Deployment queued"}}));
  BOOST_TEST(json::parse(reqs[1].body)
             == json({{"state", "in_progress"},
                      {"description", "Deploying"},
                      {"log_url", "https://heaven.example/deployments/1/log"},
                      {"target_url",
                       "https://heaven.example/deployments/1/log"}}));
  BOOST_TEST(json::parse(reqs[2].body)
             == json({{"state", "success"},
                      {"description", "Deployed in 3s"},
                      {"log_url", "https://heaven.example/deployments/1/log"},
                      {"target_url",
                       "https://heaven.example/deployments/1/log"},
                      {"environment_url", "https://app.example"}}));
  check_no_token_logged();
}

BOOST_FIXTURE_TEST_CASE(endpoint_joins_with_one_slash, poster_fixture) {
  for (std::string endpoint :
       {stub.base_url() + "api/v3", stub.base_url() + "api/v3/"}) {
    auto a = api();
    a.endpoint = endpoint;
    post_all(a, {make_status("error", "boom")});
  }
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 2u);
  BOOST_TEST(reqs[0].target == "/api/v3/repos/octo/app/deployments/7/statuses");
  BOOST_TEST(reqs[1].target == "/api/v3/repos/octo/app/deployments/7/statuses");
}

BOOST_FIXTURE_TEST_CASE(retries_5xx_and_429_then_succeeds, poster_fixture) {
  std::atomic<int> calls{0};
  stub.respond_with([&](const test::recorded_request&) {
    switch (++calls) {
      case 1:
        return test::stub_response{502, {}, "bad gateway"};
      case 2:
        return test::stub_response{429, {}, "slow down"};
      default:
        return test::stub_response{};
    }
  });
  post_all(api(), {make_status("queued"), make_status("success")});
  auto reqs = stub.requests();
  BOOST_TEST(states_of(reqs)
               == (std::vector<std::string>{"queued", "queued", "queued",
                                            "success"}),
             boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(reqs.size(), 4u);
  BOOST_TEST(reqs[0].body == reqs[2].body);
}

BOOST_FIXTURE_TEST_CASE(gives_up_after_attempts_then_posts_next,
                        poster_fixture) {
  stub.respond_with([](const test::recorded_request& r) {
    if (json::parse(r.body).at("state") == "queued")
      return test::stub_response{500, {}, "oops"};
    return test::stub_response{};
  });
  post_all(api(3), {make_status("queued"), make_status("failure", "bad")});
  BOOST_TEST(states_of(stub.requests())
               == (std::vector<std::string>{"queued", "queued", "queued",
                                            "failure"}),
             boost::test_tools::per_element());
  BOOST_TEST(logged("gave up posting status queued for octo/app deployment 7"
                    " after 3 attempt(s): HTTP 500"));
  check_no_token_logged();
}

BOOST_FIXTURE_TEST_CASE(does_not_retry_422, poster_fixture) {
  stub.respond_with([](const test::recorded_request& r) {
    if (json::parse(r.body).at("state") == "in_progress")
      return test::stub_response{422, {}, "{\"message\":\"Validation\"}"};
    return test::stub_response{};
  });
  post_all(api(), {make_status("in_progress"), make_status("success")});
  BOOST_TEST(states_of(stub.requests())
               == (std::vector<std::string>{"in_progress", "success"}),
             boost::test_tools::per_element());
  BOOST_TEST(logged("HTTP 422"));
}

BOOST_FIXTURE_TEST_CASE(network_failures_are_retried_then_given_up,
                        poster_fixture) {
  auto a = api(3);
  {
    test::http_stub gone;
    a.endpoint = gone.base_url();
  }
  post_all(a, {make_status("error", "it broke")});
  int warnings = 0;
  for (auto& line : logs())
    if (line.find("posting status error for octo/app deployment 7 failed")
        != std::string::npos)
      ++warnings;
  BOOST_TEST(warnings == 2);
  BOOST_TEST(logged("gave up posting status error for octo/app deployment 7"
                    " after 3 attempt(s)"));
  check_no_token_logged();
}

BOOST_FIXTURE_TEST_CASE(a_request_curl_refuses_is_not_retried,
                        poster_fixture) {
  // The case: a 1 MB repository name makes a URL whose request head
  // passes curl's limit ("Out of memory"). It can never be sent: one
  // attempt, an error, and the next status goes out at once.
  auto huge = make_status("queued");
  huge.repo = "octo/" + std::string(1024 * 1024, 'n');
  post_all(api(5), {huge, make_status("success")});
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(states_of(reqs) == std::vector<std::string>{"success"});
  BOOST_TEST(logged("error could not post status queued for octo/"));
  BOOST_TEST(logged("; not retried, the same request would fail again"));
  BOOST_TEST(!logged("posting status queued"));
  BOOST_TEST(!logged("gave up"));
  check_no_token_logged();
}

BOOST_FIXTURE_TEST_CASE(truncates_long_descriptions, poster_fixture) {
  std::string long_text(200, 'x');
  post_all(api(), {make_status("failure", long_text)});
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  auto description
    = json::parse(reqs[0].body).at("description").get<std::string>();
  BOOST_TEST(description.size() <= 140u);
  BOOST_TEST(description.size() >= 130u);
  BOOST_TEST(description.substr(description.size() - 3) == "...");
  BOOST_TEST(long_text.substr(0, description.size() - 3)
             == description.substr(0, description.size() - 3));
}

BOOST_FIXTURE_TEST_CASE(without_token_posts_nothing, poster_fixture) {
  auto a = api();
  a.token = "";
  post_all(a, {make_status("queued"), make_status("success")});
  BOOST_TEST(stub.requests().empty());
  BOOST_TEST(logged("info status queued for octo/app deployment 7 not posted:"
                    " GITHUB_TOKEN is not set"));
  BOOST_TEST(logged("info status success for octo/app deployment 7 not "
                    "posted: GITHUB_TOKEN is not set"));
}

BOOST_FIXTURE_TEST_CASE(keeps_running_until_a_terminal_status,
                        poster_fixture) {
  auto poster = sys.spawn(status_poster, client, api());
  caf::scoped_actor self{sys};
  self->monitor(poster);
  self->send(poster, status_atom::value, make_status("queued"));
  BOOST_REQUIRE(stub.wait_for(1));
  bool down = false;
  // Not terminal yet: the poster must still be there.
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(100ms) >> [] {});
  BOOST_TEST(!down);
  self->send(poster, status_atom::value, make_status("success"));
  self->receive([&](caf::down_msg&) { down = true; },
                caf::after(30s) >> [] {});
  BOOST_TEST(down);
  BOOST_TEST(states_of(stub.requests())
               == (std::vector<std::string>{"queued", "success"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
