// The HTTP_CLIENT actor's bounds on connections and streams, against the
// test HTTP stub on real sockets: the stub counts the connections it
// accepts.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <caf/all.hpp>

#include "actors/http_client.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace std::chrono_literals;

namespace {

struct limits_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  test::http_stub stub;
  http_client_actor client;

  ~limits_fixture() {
    if (client)
      caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  }

  void start(http_limits limits) {
    client = sys.spawn(bounded_http_client, limits);
  }

  http_request get(const std::string& path) const {
    http_request req;
    req.url = stub.base_url() + path;
    return req;
  }

  http_response call(http_request req) {
    http_response result;
    caf::scoped_actor self{sys};
    self->request(client, 30s, std::move(req))
      .receive([&](http_response& res) { result = std::move(res); },
               [&](caf::error& err) {
                 BOOST_FAIL("request failed: " << sys.render(err));
               });
    return result;
  }

  /// Sends `n` requests at once from one actor and returns the bodies of
  /// the 200 answers.
  std::multiset<std::string> burst(const std::string& prefix, int n) {
    caf::scoped_actor self{sys};
    for (int i = 0; i < n; ++i)
      self->send(client, get(prefix + std::to_string(i)));
    std::multiset<std::string> bodies;
    for (int i = 0; i < n; ++i)
      self->receive(
        [&](http_response& res) {
          if (res.status == 200)
            bodies.insert(res.body);
        },
        caf::after(30s) >> [&] { BOOST_FAIL("no answer in time"); });
    return bodies;
  }
};

/// Answers `200 <target>` after a short while, so that requests overlap.
void slow_echo(test::http_stub& stub) {
  stub.respond_with([](const test::recorded_request& r) {
    std::this_thread::sleep_for(20ms);
    return test::stub_response{200, {}, r.target};
  });
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(http_client_limits, limits_fixture)

BOOST_AUTO_TEST_CASE(concurrent_requests_to_one_host_stay_within_its_bound) {
  http_limits limits;
  limits.max_host_connections = 2;
  start(limits);
  slow_echo(stub);
  auto bodies = burst("n/", 20);
  BOOST_TEST(bodies.size() == 20u);
  for (int i = 0; i < 20; ++i)
    BOOST_TEST(bodies.count("/n/" + std::to_string(i)) == 1u);
  // The twenty overlapping requests took turns on two connections, kept
  // open between them.
  BOOST_TEST(stub.connections() >= 1u);
  BOOST_TEST(stub.connections() <= 2u);
}

BOOST_AUTO_TEST_CASE(a_request_waiting_its_turn_is_not_timed_out_by_the_wait) {
  http_limits limits;
  limits.max_host_connections = 1;
  start(limits);
  stub.respond_with([](const test::recorded_request& r) {
    std::this_thread::sleep_for(100ms);
    return test::stub_response{200, {}, r.target};
  });
  // Twenty requests take two seconds in turn; each may take one second,
  // counted from when it leaves heaven.
  caf::scoped_actor self{sys};
  for (int i = 0; i < 20; ++i) {
    auto req = get("t/" + std::to_string(i));
    req.timeout_ms = 1000;
    self->send(client, std::move(req));
  }
  int answered = 0;
  for (int i = 0; i < 20; ++i)
    self->receive(
      [&](http_response& res) {
        BOOST_TEST(res.error == "");
        answered += res.status == 200;
      },
      caf::after(30s) >> [&] { BOOST_FAIL("no answer in time"); });
  BOOST_TEST(answered == 20);
  BOOST_TEST(stub.connections() == 1u);
}

BOOST_AUTO_TEST_CASE(a_total_bound_of_one_still_serves_two_hosts) {
  http_limits limits;
  limits.max_host_connections = 1;
  limits.max_connections = 1;
  start(limits);
  test::http_stub other;
  slow_echo(stub);
  slow_echo(other);
  caf::scoped_actor self{sys};
  for (int i = 0; i < 5; ++i) {
    self->send(client, get("a/" + std::to_string(i)));
    auto req = get("b/" + std::to_string(i));
    req.url = other.base_url() + "b/" + std::to_string(i);
    self->send(client, std::move(req));
  }
  std::multiset<std::string> bodies;
  for (int i = 0; i < 10; ++i)
    self->receive(
      [&](http_response& res) {
        if (res.status == 200)
          bodies.insert(res.body);
      },
      caf::after(30s) >> [&] { BOOST_FAIL("no answer in time"); });
  BOOST_TEST(bodies.size() == 10u);
  BOOST_TEST(stub.requests().size() == 5u);
  BOOST_TEST(other.requests().size() == 5u);
}

BOOST_AUTO_TEST_CASE(sequential_requests_reuse_one_connection) {
  start(http_limits{});
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(call(get("seq/" + std::to_string(i))).status == 201);
  BOOST_TEST(stub.requests().size() == 5u);
  BOOST_TEST(stub.connections() == 1u);
}

BOOST_AUTO_TEST_CASE(a_stream_does_not_hold_up_a_post_to_its_host) {
  http_limits limits;
  limits.max_host_connections = 1;
  limits.max_connections = 1;
  limits.max_streams = 1;
  start(limits);
  std::atomic<bool> release{false};
  stub.respond_with([&](const test::recorded_request& r) {
    if (r.target != "/stream")
      return test::stub_response{201, {}, "posted"};
    test::stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    res.stream = [&](const test::chunk_writer& write) {
      write("started\n");
      for (int i = 0; i < 6000 && !release; ++i)
        std::this_thread::sleep_for(5ms);
      write("ended\n");
    };
    return res;
  });
  caf::scoped_actor sink{sys};
  sink->send(client, stream_atom::value, get("stream"),
             caf::actor_cast<chunk_sink>(sink));
  sink->receive([](chunk_atom, std::string&) {},
                caf::after(30s) >> [] { BOOST_FAIL("no chunk"); });
  // The stream is open (its build goes on until released); the POST to the
  // same host is answered all the same.
  http_request post = get("statuses");
  post.method = "POST";
  post.body = "{}";
  auto res = call(post);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(res.body == "posted");
  BOOST_TEST(!release.load());
  release = true;
  http_response streamed;
  bool done = false;
  while (!done)
    sink->receive([](chunk_atom, std::string&) {},
                  [&](http_response& r) {
                    streamed = std::move(r);
                    done = true;
                  },
                  caf::after(30s) >> [&] { BOOST_FAIL("no answer"); });
  BOOST_TEST(streamed.status == 200);
  BOOST_TEST(stub.connections() == 2u);
}

BOOST_AUTO_TEST_CASE(streams_past_the_bound_wait_their_turn_or_a_cancel) {
  http_limits limits;
  limits.max_streams = 1;
  start(limits);
  std::atomic<bool> release{false};
  stub.respond_with([&](const test::recorded_request& r) {
    test::stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    auto name = r.target;
    res.stream = [&release, name](const test::chunk_writer& write) {
      write("output of " + name + "\n");
      if (name == "/a")
        for (int i = 0; i < 6000 && !release; ++i)
          std::this_thread::sleep_for(5ms);
    };
    return res;
  });
  caf::scoped_actor a{sys};
  caf::scoped_actor b{sys};
  caf::scoped_actor c{sys};
  auto open = [&](caf::scoped_actor& sink, const std::string& path) {
    sink->send(client, stream_atom::value, get(path),
               caf::actor_cast<chunk_sink>(sink));
  };
  open(a, "a");
  std::string first;
  a->receive([&](chunk_atom, std::string& piece) { first = piece; },
             caf::after(30s) >> [] { BOOST_FAIL("no chunk of a"); });
  BOOST_TEST(first == "output of /a\n");
  open(b, "b");
  open(c, "c");
  // The stream client handles a cancel after the submissions before it:
  // once c's answer is here, b and c had their turn to start.
  c->send(client, cancel_atom::value, caf::actor_cast<chunk_sink>(c));
  http_response cancelled;
  c->receive([&](http_response& r) { cancelled = std::move(r); },
             [](chunk_atom, std::string&) { BOOST_FAIL("c was streamed"); },
             caf::after(30s) >> [] { BOOST_FAIL("no answer for c"); });
  BOOST_TEST(cancelled.status == 0);
  BOOST_TEST(cancelled.error == "cancelled");
  // While a is open, b waits: no second stream reaches the server.
  BOOST_TEST(!stub.wait_for(2, 300));
  release = true;
  auto finish = [&](caf::scoped_actor& sink) {
    std::string body;
    http_response res;
    bool done = false;
    while (!done)
      sink->receive([&](chunk_atom, std::string& piece) { body += piece; },
                    [&](http_response& r) {
                      res = std::move(r);
                      done = true;
                    },
                    caf::after(30s) >> [&] { BOOST_FAIL("no answer"); });
    BOOST_TEST(res.status == 200);
    return body;
  };
  BOOST_TEST(finish(a) == "");
  BOOST_TEST(finish(b) == "output of /b\n");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 2u);
  BOOST_TEST(reqs[0].target == "/a");
  BOOST_TEST(reqs[1].target == "/b");
  // b went over a's connection, free again.
  BOOST_TEST(stub.connections() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
