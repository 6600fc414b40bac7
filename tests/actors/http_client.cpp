// The HTTP_CLIENT actor and the test HTTP stub, against real sockets.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/http_client.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace std::chrono_literals;

namespace {

/// The value of response header `name` (already lower-case), or "".
std::string header_of(const http_response& res, const std::string& name) {
  for (auto& [k, v] : res.headers)
    if (k == name)
      return v;
  return "";
}

/// A port on 127.0.0.1 that nothing listens on (bound, then closed).
uint16_t closed_port() {
  auto stub = std::make_unique<test::http_stub>();
  auto port = stub->port();
  stub.reset();
  return port;
}

struct client_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor client = sys.spawn(http_client);
  test::http_stub stub;

  ~client_fixture() {
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
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

  std::string url(const std::string& path) const {
    return stub.base_url() + path;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(http_stub_and_call)

BOOST_AUTO_TEST_CASE(records_requests_and_answers_as_told) {
  test::http_stub stub;
  stub.respond_with([](const test::recorded_request& r) {
    return test::stub_response{
      418, {{"X-Echo", r.method + " " + r.target}}, "body:" + r.body};
  });
  auto res = test::http_call("PUT", stub.base_url() + "a/b?c=d",
                             {{"X-Token", "t1"}}, "payload");
  BOOST_TEST(res.error == "");
  BOOST_TEST(res.status == 418);
  BOOST_TEST(res.body == "body:payload");
  // Header names come back lower-cased.
  BOOST_TEST(header_of(res, "x-echo") == "PUT /a/b?c=d");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].method == "PUT");
  BOOST_TEST(reqs[0].target == "/a/b?c=d");
  BOOST_TEST(reqs[0].body == "payload");
  BOOST_TEST(reqs[0].header("X-TOKEN") == "t1");
  BOOST_TEST(reqs[0].header("x-token") == "t1");
  BOOST_TEST(reqs[0].header("missing") == "");
}

BOOST_AUTO_TEST_CASE(decodes_chunked_request_bodies) {
  test::http_stub stub;
  std::string body(100000, 'z');
  auto res = test::http_call("POST", stub.base_url() + "chunked",
                             {{"Transfer-Encoding", "chunked"}}, body);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(res.body == "{}");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].header("transfer-encoding") == "chunked");
  BOOST_TEST(reqs[0].body == body);
}

BOOST_AUTO_TEST_CASE(head_answers_without_a_body) {
  test::http_stub stub;
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{200, {}, "twelve bytes"};
  });
  auto res = test::http_call("HEAD", stub.base_url() + "h");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "");
  BOOST_TEST(header_of(res, "content-length") == "12");
}

BOOST_AUTO_TEST_CASE(handler_exceptions_become_500) {
  test::http_stub stub;
  stub.respond_with([](const test::recorded_request&) -> test::stub_response {
    throw std::runtime_error("boom");
  });
  auto res = test::http_call("GET", stub.base_url());
  BOOST_TEST(res.status == 500);
  BOOST_TEST(res.body == "boom");
}

BOOST_AUTO_TEST_CASE(wait_for_times_out_and_succeeds) {
  test::http_stub stub;
  BOOST_TEST(!stub.wait_for(1, 50));
  std::thread t{[&] { test::http_call("GET", stub.base_url() + "late"); }};
  BOOST_TEST(stub.wait_for(1));
  t.join();
  BOOST_TEST(stub.requests().at(0).target == "/late");
}

BOOST_AUTO_TEST_CASE(refused_connection_is_status_0) {
  auto res = test::http_call("GET", "http://127.0.0.1:"
                                      + std::to_string(closed_port()) + "/");
  BOOST_TEST(res.status == 0);
  BOOST_TEST(!res.error.empty());
}

BOOST_AUTO_TEST_CASE(destructor_does_not_wait_for_idle_keep_alive) {
  // A client that connects and never sends must not block shutdown.
  auto stub = std::make_unique<test::http_stub>();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(stub->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr)
                == 0);
  std::this_thread::sleep_for(20ms); // let the stub accept it
  auto port = stub->port();
  stub.reset(); // returning at all, with the client still silent, is the test
  ::close(fd);
  // And the stub really stopped listening.
  auto res = test::http_call(
    "GET", "http://127.0.0.1:" + std::to_string(port) + "/", {}, "", 2000);
  BOOST_TEST(res.status == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(http_client_actor_tests, client_fixture)

BOOST_AUTO_TEST_CASE(get_round_trip) {
  stub.respond_with([](const test::recorded_request& r) {
    return test::stub_response{200,
                               {{"Content-Type", "text/plain"},
                                {"X-RateLimit-Remaining", "42"}},
                               "hello " + r.target};
  });
  http_request req;
  req.url = url("repos/octo/app?page=2");
  req.headers = {{"Accept", "application/json"}, {"X-Custom", "yes"}};
  auto res = call(req);
  BOOST_TEST(res.error == "");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "hello /repos/octo/app?page=2");
  BOOST_TEST(header_of(res, "content-type") == "text/plain");
  BOOST_TEST(header_of(res, "x-ratelimit-remaining") == "42");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].method == "GET");
  BOOST_TEST(reqs[0].target == "/repos/octo/app?page=2");
  BOOST_TEST(reqs[0].header("accept") == "application/json");
  BOOST_TEST(reqs[0].header("x-custom") == "yes");
  BOOST_TEST(reqs[0].header("expect") == "");
  BOOST_TEST(reqs[0].body == "");
}

BOOST_AUTO_TEST_CASE(a_post_whose_connection_dies_is_sent_once) {
  // libcurl re-sends a request whose reused connection dies before any
  // answer. A server that took a status and then lost the connection must
  // not get it twice: the POST fails instead (its sender looks it up). It
  // was sent on the kept-alive connection: one connection for both.
  stub.respond_with([](const test::recorded_request& r) {
    if (r.method == "GET")
      return test::stub_response{200, {}, "warm"};
    test::stub_response dropped;
    dropped.drop = true;
    return dropped;
  });
  // A kept-alive connection to the host, as every status after the first
  // finds one.
  auto warm = call([&] {
    http_request req;
    req.url = url("warm");
    return req;
  }());
  BOOST_TEST(warm.status == 200);
  http_request req;
  req.method = "POST";
  req.url = url("repos/octo/app/deployments/1/statuses");
  req.headers = {{"Content-Type", "application/json"}};
  req.body = R"({"state":"success"})";
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(!res.error.empty());
  // curl wanted to send it again on a fresh connection; the refused rewind
  // of its body stopped it (curl 7.88's words).
  BOOST_TEST(res.error.find("seek callback returned error")
               != std::string::npos,
             res.error);
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 2u);
  BOOST_TEST(reqs[1].method == "POST");
  BOOST_TEST(reqs[1].body == R"({"state":"success"})");
  // A GET may be repeated: it still reuses the connection.
  auto again = call([&] {
    http_request r;
    r.url = url("warm");
    return r;
  }());
  BOOST_TEST(again.status == 200);
}

BOOST_AUTO_TEST_CASE(posts_reuse_a_kept_alive_connection) {
  // Statuses to one host go out on one connection, one after the other,
  // bodies whole.
  stub.respond_with([](const test::recorded_request& r) {
    return test::stub_response{201, {}, r.body};
  });
  for (int i = 0; i < 3; ++i) {
    http_request req;
    req.method = i == 1 ? "PATCH" : "POST";
    req.url = url("statuses/" + std::to_string(i));
    req.headers = {{"Content-Type", "application/json"}};
    req.body = R"({"n":)" + std::to_string(i) + ","
               + std::string(static_cast<size_t>(i) * 40000, ' ') + "}";
    auto res = call(req);
    BOOST_TEST(res.error == "");
    BOOST_TEST(res.status == 201);
    BOOST_TEST(res.body == req.body);
  }
  BOOST_TEST(stub.connections() == 1u);
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST(reqs[i].method == (i == 1 ? "PATCH" : "POST"));
    BOOST_TEST(reqs[i].header("content-length")
               == std::to_string(reqs[i].body.size()));
    BOOST_TEST(reqs[i].body.size() == 8 + i * 40000);
  }
}

BOOST_AUTO_TEST_CASE(a_post_after_the_server_closed_an_idle_connection) {
  // A server whose keep-alive timeout ran out closes the connection between
  // two statuses. The next POST sees it closed before it is sent, goes out
  // on a new connection and succeeds: no failure, no second copy.
  stub.respond_with([](const test::recorded_request& r) {
    test::stub_response res{201, {}, r.body};
    res.close_after = true;
    return res;
  });
  for (int i = 0; i < 3; ++i) {
    http_request req;
    req.method = "POST";
    req.url = url("repos/octo/app/deployments/1/statuses");
    req.headers = {{"Content-Type", "application/json"}};
    req.body = R"({"state":")" + std::to_string(i) + R"("})";
    auto res = call(req);
    BOOST_TEST(res.error == "");
    BOOST_TEST(res.status == 201);
    BOOST_TEST(res.body == req.body);
    // Let the close reach the client before the next one, as the idle
    // time before a server's timeout would.
    BOOST_TEST(stub.wait_idle());
  }
  BOOST_TEST(stub.connections() == 3u);
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    BOOST_TEST(reqs[i].body == R"({"state":")" + std::to_string(i) + R"("})");
}

BOOST_AUTO_TEST_CASE(post_round_trip) {
  stub.respond_with([](const test::recorded_request& r) {
    return test::stub_response{201, {}, "{\"id\":1}"};
  });
  http_request req;
  req.method = "POST";
  req.url = url("things");
  req.headers = {{"Content-Type", "application/json"}};
  req.body = "{\"name\":\"x\"}";
  auto res = call(req);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(res.body == "{\"id\":1}");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 1u);
  BOOST_TEST(reqs[0].method == "POST");
  BOOST_TEST(reqs[0].target == "/things");
  BOOST_TEST(reqs[0].header("content-type") == "application/json");
  BOOST_TEST(reqs[0].header("content-length") == "12");
  BOOST_TEST(reqs[0].body == "{\"name\":\"x\"}");
}

BOOST_AUTO_TEST_CASE(other_methods_carry_their_bodies) {
  for (std::string method : {"PUT", "PATCH", "DELETE"}) {
    http_request req;
    req.method = method;
    req.url = url("m");
    req.body = "body of " + method;
    auto res = call(req);
    BOOST_TEST(res.status == 201);
  }
  http_request head;
  head.method = "HEAD";
  head.url = url("m");
  auto res = call(head);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(res.body == "");
  BOOST_TEST(header_of(res, "content-length") == "2");
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 4u);
  BOOST_TEST(reqs[0].method == "PUT");
  BOOST_TEST(reqs[0].body == "body of PUT");
  BOOST_TEST(reqs[1].method == "PATCH");
  BOOST_TEST(reqs[1].body == "body of PATCH");
  BOOST_TEST(reqs[2].method == "DELETE");
  BOOST_TEST(reqs[2].body == "body of DELETE");
  BOOST_TEST(reqs[3].method == "HEAD");
}

BOOST_AUTO_TEST_CASE(redirects_are_followed_only_when_asked) {
  stub.respond_with([this](const test::recorded_request& r) {
    if (r.target == "/archive")
      return test::stub_response{302, {{"Location", url("blob")}}, "moved"};
    return test::stub_response{200, {{"X-Final", "1"}}, "the blob"};
  });
  http_request req;
  req.url = url("archive");
  auto res = call(req);
  BOOST_TEST(res.status == 302);
  BOOST_TEST(header_of(res, "location") == url("blob"));
  BOOST_TEST(stub.requests().size() == 1u);
  req.follow_redirects = true;
  res = call(req);
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "the blob");
  // Only the final response's headers are reported.
  BOOST_TEST(header_of(res, "x-final") == "1");
  BOOST_TEST(header_of(res, "location") == "");
  BOOST_TEST(stub.requests().size() == 3u);
}

BOOST_AUTO_TEST_CASE(refused_connection_is_status_0_with_error) {
  http_request req;
  req.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/x";
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(!res.error.empty());
  // Nobody listens now; somebody may later: worth another try.
  BOOST_TEST(!res.permanent);
  BOOST_TEST_MESSAGE("refused: " << res.error);
}

BOOST_AUTO_TEST_CASE(timeout_is_status_0_with_error) {
  stub.respond_with([](const test::recorded_request&) {
    std::this_thread::sleep_for(500ms);
    return test::stub_response{};
  });
  http_request req;
  req.url = url("slow");
  req.timeout_ms = 100;
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(!res.error.empty());
  BOOST_TEST(!res.permanent);
  BOOST_TEST_MESSAGE("timeout: " << res.error);
}

BOOST_AUTO_TEST_CASE(requests_curl_refuses_are_permanent_and_never_sent) {
  auto port = std::to_string(stub.port());
  const std::string huge(2 * 1024 * 1024, 'n');
  struct bad {
    std::string what;
    http_request req;
  };
  std::vector<bad> cases;
  auto add = [&](std::string what, std::string url, string_pairs headers = {}) {
    http_request req;
    req.method = "POST";
    req.url = std::move(url);
    req.headers = std::move(headers);
    req.body = "{}";
    cases.push_back({std::move(what), std::move(req)});
  };
  // A scheme heaven does not speak.
  add("ftp", "ftp://127.0.0.1:" + port + "/x");
  add("file", "file:///etc/passwd");
  // Not a URL curl can read.
  add("port out of range", "http://127.0.0.1:99999/x");
  add("unclosed bracket", "http://[127.0.0.1:" + port + "/x");
  // A request head past curl's 1 MB limit (a 1 MB repository name in a
  // status URL was the case that made heaven retry for 42 s): curl says
  // "Out of memory".
  add("2 MB path", url("repos/octo/" + huge + "/deployments/1/statuses"));
  add("2 MB header", url("x"), {{"X-Big", huge}});
  for (auto& c : cases) {
    auto res = call(c.req);
    BOOST_TEST(res.status == 0, c.what);
    BOOST_TEST(res.permanent, c.what << ": " << res.error);
    BOOST_TEST(!res.error.empty(), c.what);
    BOOST_TEST_MESSAGE(c.what << ": " << res.error);
  }
  // Not one of them reached the server.
  BOOST_TEST(stub.requests().empty());
  // The same client still sends a sound request.
  http_request ok;
  ok.url = url("ok");
  auto res = call(ok);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(!res.permanent);
  BOOST_TEST(stub.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(many_concurrent_requests_all_answered) {
  stub.respond_with([](const test::recorded_request& r) {
    return test::stub_response{200, {}, "answer to " + r.target};
  });
  constexpr int n = 200;
  caf::scoped_actor self{sys};
  for (int i = 0; i < n; ++i) {
    http_request req;
    req.url = url("n/" + std::to_string(i));
    self->send(client, std::move(req));
  }
  // Replies come back in completion order; each must match its request.
  std::set<std::string> bodies;
  int failures = 0;
  for (int i = 0; i < n; ++i)
    self->receive(
      [&](http_response& res) {
        if (res.status != 200)
          ++failures;
        bodies.insert(res.body);
      },
      caf::after(30s) >> [&] { BOOST_FAIL("no answer in time"); });
  BOOST_TEST(failures == 0);
  BOOST_REQUIRE_EQUAL(bodies.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    BOOST_TEST(bodies.count("answer to /n/" + std::to_string(i)) == 1u);
  BOOST_TEST(stub.requests().size() == static_cast<size_t>(n));
}

BOOST_AUTO_TEST_CASE(exit_with_transfers_in_flight_ends_cleanly) {
  stub.respond_with([](const test::recorded_request&) {
    std::this_thread::sleep_for(300ms);
    return test::stub_response{};
  });
  auto other = sys.spawn(http_client);
  caf::scoped_actor self{sys};
  for (int i = 0; i < 5; ++i) {
    http_request req;
    req.url = url("pending");
    self->send(other, std::move(req));
  }
  BOOST_TEST(stub.wait_for(5));
  self->monitor(other);
  caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(20s) >> [] {});
  BOOST_TEST(down);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(http_client_streaming, client_fixture)

/// Collects what a sink receives: chunks, then the final answer.
struct stream_result {
  std::vector<std::string> chunks;
  http_response response;
};

BOOST_AUTO_TEST_CASE(a_streamed_body_reaches_the_sink_while_it_arrives) {
  std::atomic<bool> first_seen{false};
  stub.respond_with([&](const test::recorded_request&) {
    test::stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    res.stream = [&](const test::chunk_writer& write) {
      write("first\n");
      // The second piece waits until the first was delivered: proof that
      // pieces are handed on as they come, not at the end.
      for (int i = 0; i < 2000 && !first_seen; ++i)
        std::this_thread::sleep_for(5ms);
      write("second\n");
    };
    return res;
  });
  stream_result got;
  caf::scoped_actor self{sys};
  http_request req;
  req.url = url("stream");
  self->send(client, stream_atom::value, req,
             caf::actor_cast<chunk_sink>(self));
  bool done = false;
  while (!done)
    self->receive(
      [&](chunk_atom, std::string& piece) {
        got.chunks.push_back(piece);
        first_seen = true;
      },
      [&](http_response& res) {
        got.response = std::move(res);
        done = true;
      },
      caf::after(30s) >> [&] { BOOST_FAIL("no answer"); });
  BOOST_TEST(got.response.status == 200);
  BOOST_TEST(got.response.body.empty());
  std::string all;
  for (auto& c : got.chunks)
    all += c;
  BOOST_TEST(all == "first\nsecond\n");
  BOOST_TEST(got.chunks.size() >= 2u);
}

BOOST_AUTO_TEST_CASE(an_error_answer_is_not_streamed) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{
      404, {{"Content-Type", "text/plain"}}, "no such stream"};
  });
  caf::scoped_actor self{sys};
  http_request req;
  req.url = url("stream");
  http_response res;
  self
    ->request(client, 30s, stream_atom::value, req,
              caf::actor_cast<chunk_sink>(self))
    .receive([&](http_response& r) { res = std::move(r); },
             [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_TEST(res.status == 404);
  BOOST_TEST(res.body == "no such stream");
  // Nothing was streamed: the next message is the timeout.
  bool chunk = false;
  self->receive([&](chunk_atom, std::string&) { chunk = true; },
                caf::after(std::chrono::milliseconds(50)) >> [] {});
  BOOST_TEST(!chunk);
}

BOOST_AUTO_TEST_CASE(cancel_ends_a_stream_that_would_go_on) {
  std::atomic<bool> closed{false};
  stub.respond_with([&](const test::recorded_request&) {
    test::stub_response res{200, {{"Content-Type", "text/plain"}}, ""};
    res.stream = [&](const test::chunk_writer& write) {
      for (int i = 0; i < 3000; ++i) {
        if (!write("tick\n"))
          break;
        std::this_thread::sleep_for(10ms);
      }
      closed = true;
    };
    return res;
  });
  caf::scoped_actor self{sys};
  http_request req;
  req.url = url("stream");
  req.timeout_ms = 600000;
  self->send(client, stream_atom::value, req,
             caf::actor_cast<chunk_sink>(self));
  self->receive([](chunk_atom, std::string&) {},
                caf::after(30s) >> [] { BOOST_FAIL("no chunk"); });
  self->send(client, cancel_atom::value, caf::actor_cast<chunk_sink>(self));
  http_response res;
  bool done = false;
  while (!done)
    self->receive([](chunk_atom, std::string&) {},
                  [&](http_response& r) {
                    res = std::move(r);
                    done = true;
                  },
                  caf::after(30s) >> [&] { BOOST_FAIL("no answer"); });
  BOOST_TEST(res.status == 0);
  BOOST_TEST(res.error == "cancelled");
  BOOST_TEST(test::eventually([&] { return closed.load(); }));
}

BOOST_AUTO_TEST_SUITE_END()
