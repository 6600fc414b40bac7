// The HTTP_CLIENT actor against a real HTTP/2 server over TLS (nghttpd,
// behind a relay that counts connections and can hold the server's bytes
// back): concurrent requests to one host share one connection, each on a
// stream of its own, and each gets exactly its own answer; the server's
// certificate is trusted only through HEAVEN_CA_FILE's setting.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/http_client.hpp"
#include "base/retry.hpp"
#include "tests/support/h2_server.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace std::chrono_literals;

namespace {

struct h2_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  test::h2_server server;
  test::tcp_relay relay{server.port()};
  http_client_actor client;

  ~h2_fixture() {
    if (client)
      caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  }

  /// Starts the client; it trusts the server's certificate when `trust`.
  void start(bool trust) {
    http_limits limits;
    if (trust)
      limits.ca_file = server.cert_file().string();
    client = sys.spawn(bounded_http_client, limits);
  }

  /// The URL of `path` through the relay.
  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(relay.port()) + path;
  }

  http_response call(http_request req) {
    http_response result;
    caf::scoped_actor self{sys};
    self->request(client, 60s, std::move(req))
      .receive([&](http_response& res) { result = std::move(res); },
               [&](caf::error& err) {
                 BOOST_FAIL("request failed: " << sys.render(err));
               });
    return result;
  }
};

/// The served text of file `i`: sizes from 1 byte to past 100 KB, so that
/// answers take several DATA frames (16 KiB each) and interleave.
std::string file_text(int i) {
  std::string text = "file " + std::to_string(i) + "\n";
  for (int n = 0; n < i * i * 1500; ++n)
    text += static_cast<char>('a' + (n + i) % 26);
  return text;
}

/// Twenty GETs: files 0 to 9, then files 0 to 4 twice; `expected` gets
/// each one's answer. (POSTs get a connection each: see
/// posts_get_a_connection_of_their_own.)
std::vector<http_request> twenty_requests(const h2_fixture& f,
                                          std::vector<std::string>& expected) {
  std::vector<http_request> reqs;
  for (int i = 0; i < 20; ++i) {
    int file = i < 10 ? i : (i - 10) % 5;
    http_request req;
    req.url = f.url("/file-" + std::to_string(file) + ".txt");
    expected.push_back(file_text(file));
    reqs.push_back(std::move(req));
  }
  return reqs;
}

/// Checks the answers of `twenty_requests`, received in order.
template <class Handles>
void check_answers(caf::actor_system& sys, Handles& pending,
                   const std::vector<http_request>& reqs,
                   const std::vector<std::string>& expected) {
  for (size_t i = 0; i < pending.size(); ++i) {
    http_response res;
    pending[i].receive([&](http_response& r) { res = std::move(r); },
                       [&](caf::error& err) {
                         BOOST_FAIL("request "
                                    << i << " failed: " << sys.render(err));
                       });
    BOOST_TEST_CONTEXT("request " << i << " " << reqs[i].method << " "
                                  << reqs[i].url) {
      BOOST_TEST(res.error == "");
      BOOST_TEST(res.status == 200);
      BOOST_TEST(res.body == expected[i]);
      BOOST_TEST(header_value(res, "content-length")
                 == std::to_string(expected[i].size()));
    }
  }
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(http_client_h2, h2_fixture)

BOOST_AUTO_TEST_CASE(
  concurrent_requests_to_an_http2_host_share_one_connection) {
  start(true);
  for (int i = 0; i < 10; ++i)
    server.serve("file-" + std::to_string(i) + ".txt", file_text(i));
  // One request first: the connection it opens is known to speak HTTP/2
  // once it is answered (a burst to a host without one opens several: the
  // client does not wait for the first handshake, see CURLOPT_PIPEWAIT in
  // actors/http_client.cpp).
  http_request first;
  first.url = url("/file-3.txt");
  auto warm = call(first);
  BOOST_TEST(warm.error == "");
  BOOST_TEST(warm.status == 200);
  BOOST_TEST(warm.body == file_text(3));
  BOOST_TEST(relay.accepted() == 1u);
  BOOST_TEST(server.requests() == 1u);

  // Twenty GETs at once. The relay holds every answer back until the server has
  // received all twenty: they are in flight together, so they cannot have
  // taken turns on one connection.
  relay.hold();
  std::vector<std::string> expected;
  auto reqs = twenty_requests(*this, expected);
  caf::scoped_actor self{sys};
  using handle = decltype(self->request(client, 60s, http_request{}));
  std::vector<handle> pending;
  for (auto& req : reqs)
    pending.push_back(self->request(client, 60s, req));
  bool all_in = test::eventually([&] { return server.requests() == 21u; }, 20s);
  relay.release();
  BOOST_TEST(all_in, "the server received " << server.requests() - 1
                                            << " of the 20 requests while "
                                               "the answers were held back");
  check_answers(sys, pending, reqs, expected);
  // One TCP connection, one TLS handshake, HTTP/2: the twenty-one requests
  // were streams of it.
  BOOST_TEST(relay.accepted() == 1u);
  BOOST_TEST(server.negotiated() == std::vector<std::string>{"h2"},
             boost::test_tools::per_element());
  BOOST_TEST(server.requests() == 21u);
}

BOOST_AUTO_TEST_CASE(a_burst_to_a_new_http2_host_opens_up_to_its_bound) {
  // Without a connection to the host yet, each request handed to curl
  // opens one (no CURLOPT_PIPEWAIT, see actors/http_client.cpp), up to the
  // host's bound; the requests after them share those connections.
  http_limits limits;
  limits.max_host_connections = 4;
  limits.ca_file = server.cert_file().string();
  client = sys.spawn(bounded_http_client, limits);
  for (int i = 0; i < 10; ++i)
    server.serve("file-" + std::to_string(i) + ".txt", file_text(i));
  // Held, no handshake ends before all four connections are open.
  relay.hold();
  std::vector<std::string> expected;
  auto reqs = twenty_requests(*this, expected);
  caf::scoped_actor self{sys};
  using handle = decltype(self->request(client, 60s, http_request{}));
  std::vector<handle> pending;
  for (auto& req : reqs)
    pending.push_back(self->request(client, 60s, req));
  bool opened = test::eventually([&] { return relay.accepted() == 4u; }, 20s);
  relay.release();
  BOOST_TEST(opened,
             "the client opened " << relay.accepted() << " connections, not 4");
  check_answers(sys, pending, reqs, expected);
  BOOST_TEST(relay.accepted() == 4u);
  BOOST_TEST(server.negotiated()
               == std::vector<std::string>(4, std::string{"h2"}),
             boost::test_tools::per_element());
  BOOST_TEST(server.requests() == 20u);
}

BOOST_AUTO_TEST_CASE(posts_share_the_connection) {
  // POSTs reuse the connection like GETs (one TLS handshake for many
  // statuses); libcurl cannot re-send one behind heaven's back, as it
  // would have to rewind its body (see `prepare` in
  // actors/http_client.cpp).
  start(true);
  server.serve("file-1.txt", file_text(1));
  http_request first;
  first.url = url("/file-1.txt");
  BOOST_TEST(call(first).status == 200);
  BOOST_TEST(relay.accepted() == 1u);
  for (int i = 0; i < 3; ++i) {
    http_request req;
    req.method = "POST";
    req.url = url("/echo/" + std::to_string(i));
    req.headers = {{"Content-Type", "text/plain"}};
    req.body = "request " + std::to_string(i) + " "
               + std::string(static_cast<size_t>(i + 1) * 997, 'x');
    auto res = call(req);
    BOOST_TEST(res.error == "");
    BOOST_TEST(res.status == 200);
    BOOST_TEST(res.body == req.body);
    BOOST_TEST(header_value(res, "nghttpd-response") == "echo");
  }
  BOOST_TEST(call(first).status == 200);
  BOOST_TEST(relay.accepted() == 1u);
  BOOST_TEST(server.negotiated() == std::vector<std::string>{"h2"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_streamed_body_comes_whole_over_http2) {
  start(true);
  server.serve("output.txt", file_text(9));
  http_request req;
  req.url = url("/output.txt");
  caf::scoped_actor self{sys};
  self->send(client, stream_atom::value, req,
             caf::actor_cast<chunk_sink>(self));
  std::string all;
  http_response res;
  bool done = false;
  while (!done)
    self->receive([&](chunk_atom, std::string& piece) { all += piece; },
                  [&](http_response& r) {
                    res = std::move(r);
                    done = true;
                  },
                  caf::after(60s) >> [&] { BOOST_FAIL("no answer"); });
  BOOST_TEST(res.error == "");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "");
  BOOST_TEST(all == file_text(9));
  BOOST_TEST(server.negotiated() == std::vector<std::string>{"h2"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(without_the_ca_file_the_self_signed_server_is_refused) {
  start(false);
  server.serve("secret.txt", "never read\n");
  http_request req;
  req.url = url("/secret.txt");
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(res.error == "SSL certificate problem: self-signed certificate");
  BOOST_TEST(res.body == "");
  BOOST_TEST(res.headers.empty());
  // The server may be fixed (or the setting): it is tried again.
  BOOST_TEST(!res.permanent);
  // The handshake ended before a request was sent.
  BOOST_TEST(server.requests() == 0u);
  BOOST_TEST(relay.accepted() == 1u);
}

BOOST_AUTO_TEST_CASE(a_ca_file_of_another_authority_is_refused_too) {
  // The other server's certificate is a valid authority, but not the one
  // that signed this server's.
  test::h2_server other;
  http_limits limits;
  limits.ca_file = other.cert_file().string();
  client = sys.spawn(bounded_http_client, limits);
  server.serve("secret.txt", "never read\n");
  http_request req;
  req.url = url("/secret.txt");
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(res.error == "SSL certificate problem: self-signed certificate");
  BOOST_TEST(server.requests() == 0u);
}

BOOST_AUTO_TEST_CASE(a_missing_ca_file_fails_every_request_for_good) {
  http_limits limits;
  limits.ca_file = server.cert_file().string() + ".missing";
  client = sys.spawn(bounded_http_client, limits);
  http_request req;
  req.url = url("/anything");
  auto res = call(req);
  BOOST_TEST(res.status == 0);
  BOOST_TEST(res.error == "error setting certificate file: " + limits.ca_file);
  BOOST_TEST(res.permanent);
  BOOST_TEST(server.requests() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
