// Tests for the live log's follower (actors/ingress_log) on its own: a real
// socket pair over 127.0.0.1, a real log book, the response read back with
// Beast.
#include <boost/test/unit_test.hpp>

// Boost 1.74's Asio needs <utility> first under C++20.
#include <utility>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "actors/ingress_log.hpp"
#include "base/log_book.hpp"

using namespace heaven;
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

/// A log book in a temporary directory, removed at the end.
struct book_dir {
  fs::path path;
  std::shared_ptr<log_book> logs;
  book_dir() {
    std::string text = (fs::temp_directory_path() / "heaven-follow-XXXXXX");
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = text;
    logs = std::make_shared<log_book>(path.string(),
                                      std::vector<std::string>{});
  }
  ~book_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// One connection: the server's end wrapped for a follower, the client's
/// end to read the response.
struct connection {
  net::io_context io;
  tcp::socket client{io};
  beast::tcp_stream server{io};
  net::steady_timer timer{io};
  connection() {
    tcp::acceptor acceptor{io, {net::ip::make_address("127.0.0.1"), 0}};
    client.connect(acceptor.local_endpoint());
    server.socket() = acceptor.accept();
  }
};

struct outcome {
  bool failed = false;
  bool complete = false;
  bool ended = false;
  std::string body;
};

/// Follows log `id` from `from` until the response ends (`during` runs
/// meanwhile, on this thread, while the follower runs on another); the
/// body the client reads.
template <class During>
outcome follow(book_dir& dir, int64_t id, uint64_t from, During during) {
  connection c;
  outcome out;
  auto owner = std::make_shared<int>(0);
  log_follower follower{c.server, c.timer, dir.logs};
  BOOST_REQUIRE(follower.open(id, from));
  follower.start(11, false, owner,
                 {[&] { out.failed = true; }, [&] { out.complete = true; },
                  [&](beast::error_code ec, bool) { out.ended = !ec; }});
  std::thread runner{[&] { c.io.run(); }};
  during();
  runner.join();
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(c.client, buf, res);
  BOOST_TEST(res.result_int() == 200);
  BOOST_TEST(res.chunked());
  out.body = res.body();
  return out;
}

outcome follow(book_dir& dir, int64_t id, uint64_t from) {
  return follow(dir, id, from, [] {});
}

} // namespace

BOOST_AUTO_TEST_SUITE(log_follower_tests)

BOOST_AUTO_TEST_CASE(an_ended_log_is_sent_from_the_offset_asked) {
  book_dir dir;
  dir.logs->open(5);
  dir.logs->append(5, stream::heaven, "start"); // 14 bytes.
  dir.logs->append(5, stream::out, "two");
  dir.logs->close(5);
  auto all = follow(dir, 5, 0);
  BOOST_TEST(all.body == "heaven: start\ntwo\n");
  BOOST_TEST(all.complete);
  BOOST_TEST(all.ended);
  BOOST_TEST(!all.failed);
  BOOST_TEST(follow(dir, 5, 14).body == "two\n");
  BOOST_TEST(follow(dir, 5, 15).body == "wo\n");
  // Past the end: clamped, so nothing but the end of the response.
  auto past = follow(dir, 5, 18);
  BOOST_TEST(past.body == "");
  BOOST_TEST(past.ended);
  BOOST_TEST(follow(dir, 5, 1000).body == "");
}

BOOST_AUTO_TEST_CASE(a_live_log_is_followed_from_the_offset_to_its_end) {
  book_dir dir;
  dir.logs->open(6);
  dir.logs->append(6, stream::out, "seen on the page");
  auto out = follow(dir, 6, 17, [&] {
    dir.logs->append(6, stream::out, "then this");
    dir.logs->append(6, stream::heaven, "done");
    dir.logs->close(6);
  });
  BOOST_TEST(out.body == "then this\nheaven: done\n");
  BOOST_TEST(out.ended);
}

BOOST_AUTO_TEST_CASE(no_log_no_follower) {
  book_dir dir;
  connection c;
  log_follower follower{c.server, c.timer, dir.logs};
  BOOST_TEST(!follower.open(7));
  BOOST_TEST(!follower.open(7, 3));
}

BOOST_AUTO_TEST_SUITE_END()
