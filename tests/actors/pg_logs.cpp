// Logs from anywhere (several heaven instances on one PostgreSQL): the
// PostgreSQL store's log chunks and shared secrets, the shipping of a log
// book's bytes to a real STORE actor on PostgreSQL, and the ingress serving
// a log from the store that its own log book never had. A real throwaway
// cluster (tools/support/pg_cluster); every case has a database of its own.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>

#include "actors/http_ingress.hpp"
#include "actors/log_shipper.hpp"
#include "actors/pg_store.hpp"
#include "actors/store.hpp"
#include "base/log_book.hpp"
#include "tests/support/pg_databases.hpp"
#include "tools/support/http_call.hpp"

using namespace heaven;
using heaven::test::instance_options;
namespace fs = std::filesystem;

namespace {

constexpr int64_t all = std::numeric_limits<int64_t>::max();

/// A fresh, empty database on the shared cluster; its URL.
std::string fresh_database() {
  return test::fresh_database("logs_");
}

/// Records a queued deployment (GitHub id `github_id`) in `db`; its id.
int64_t queue_deployment(pg_store& db, int64_t github_id) {
  auto ev = test::deployment_event("delivery-" + std::to_string(github_id),
                                   test::make_request(github_id, "production"));
  committed_rows rows;
  auto res = db.accept(ev, rows);
  BOOST_REQUIRE(res.deployment_id > 0);
  return res.deployment_id;
}

/// Makes deployment `id` (in database `url`) instance `owner`'s, as its
/// claim does.
void own(const std::string& url, int64_t id, const std::string& owner) {
  pg::connection conn{url};
  auto r = conn.query("UPDATE deployments SET owner = $1 WHERE id = $2",
                      {owner, pg::int64_param(id)});
  BOOST_REQUIRE_EQUAL(r.affected(), 1);
}

/// Starts and ends deployment `id` (in database `url`) as `db`'s instance.
void end_deployment(const std::string& url, pg_store& db, int64_t id) {
  committed_rows rows;
  own(url, id, db.instance());
  BOOST_REQUIRE(db.start(id, "running", rows));
  BOOST_REQUIRE(
    db.finish(id, provider_outcome{deploy_state::failure, "it broke"}, rows));
}

/// Bytes that are not UTF-8, with NULs, backslashes and quotes.
std::string binary_line() {
  return std::string{"bin \0 \xff\xfe \xc3\x28 \\x00 '\" end\n", 24};
}

/// A temporary directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string text = (fs::temp_directory_path() / "heaven-pglogs-XXXXXX");
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = text;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string file_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

/// A STORE actor on PostgreSQL (database `url`, instance `id`).
store_actor pg_store_actor(caf::actor_system& sys, const std::string& url,
                           const std::string& id) {
  store_opener open = [url, id]() -> std::unique_ptr<store_backend> {
    return std::make_unique<pg_store>(url, instance_options(id));
  };
  return sys.spawn<caf::detached>(open_store, open,
                                  std::shared_ptr<health_board>{});
}

/// The store's read of deployment `id`'s log from `from`.
log_piece read_through(caf::actor_system& sys, const store_actor& store,
                       int64_t id, int64_t from = 0) {
  log_piece piece;
  caf::scoped_actor self{sys};
  self->request(store, std::chrono::seconds(30), log_atom::value, id, from, all)
    .receive([&](log_piece& p) { piece = std::move(p); },
             [&](caf::error& err) {
               BOOST_FAIL(
                 "the store did not read the log: " << sys.render(err));
             });
  return piece;
}

} // namespace

BOOST_AUTO_TEST_SUITE(pg_logs)

BOOST_AUTO_TEST_CASE(chunks_read_from_any_offset_in_order) {
  pg_store db{fresh_database(), instance_options("a")};
  auto id = queue_deployment(db, 1);
  db.append_log(id, 0, "line one\n", "0 1000\n");
  db.append_log(id, 9, "line two\nline three\n", "9 2000\n20 3000\n");
  auto whole = db.read_log(id, 0, all);
  BOOST_TEST(whole.found);
  BOOST_TEST(!whole.ended);
  BOOST_TEST(whole.size == 29);
  BOOST_TEST(whole.bytes == "line one\nline two\nline three\n");
  BOOST_TEST(whole.times == "0 1000\n9 2000\n20 3000\n");
  // From a chunk's start: that chunk on.
  auto second = db.read_log(id, 9, all);
  BOOST_TEST(second.bytes == "line two\nline three\n");
  BOOST_TEST(second.times == "9 2000\n20 3000\n");
  BOOST_TEST(second.size == 29);
  // From inside a chunk: its tail, with the time of the line it is in.
  auto inside = db.read_log(id, 4, all);
  BOOST_TEST(inside.bytes == " one\nline two\nline three\n");
  BOOST_TEST(inside.times == "0 1000\n9 2000\n20 3000\n");
  auto late = db.read_log(id, 25, all);
  BOOST_TEST(late.bytes == "ree\n");
  BOOST_TEST(late.times == "20 3000\n");
  // At most about `max`: whole chunks, at least one.
  auto first = db.read_log(id, 0, 1);
  BOOST_TEST(first.bytes == "line one\n");
  BOOST_TEST(first.times == "0 1000\n");
  BOOST_TEST(first.size == 29);
  // At the end: nothing more, but found and its size.
  auto end = db.read_log(id, 29, all);
  BOOST_TEST(end.found);
  BOOST_TEST(end.bytes.empty());
  BOOST_TEST(end.size == 29);
}

BOOST_AUTO_TEST_CASE(a_chunk_already_stored_is_not_stored_again) {
  pg_store db{fresh_database(), instance_options("a")};
  auto id = queue_deployment(db, 1);
  db.append_log(id, 0, "first\n", "0 1000\n");
  db.append_log(id, 0, "other!\n", "0 5000\n");
  db.append_log(id, 6, "second\n", "");
  db.append_log(id, 6, "second\n", "");
  auto piece = db.read_log(id, 0, all);
  BOOST_TEST(piece.bytes == "first\nsecond\n");
  BOOST_TEST(piece.times == "0 1000\n");
  BOOST_TEST(piece.size == 13);
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_text_come_back_exactly) {
  pg_store db{fresh_database(), instance_options("a")};
  auto id = queue_deployment(db, 1);
  auto bytes = binary_line();
  BOOST_REQUIRE_EQUAL(bytes.size(), 24u);
  BOOST_REQUIRE_EQUAL(bytes[4], '\0');
  db.append_log(id, 0, bytes, "");
  db.append_log(id, 24, std::string(3, '\0'), "");
  auto piece = db.read_log(id, 0, all);
  BOOST_TEST(piece.bytes == bytes + std::string(3, '\0'));
  BOOST_TEST(piece.size == 27);
  BOOST_TEST(db.read_log(id, 5, all).bytes
             == bytes.substr(5) + std::string(3, '\0'));
}

BOOST_AUTO_TEST_CASE(a_read_stops_at_a_piece_not_stored_yet) {
  pg_store db{fresh_database(), instance_options("a")};
  auto id = queue_deployment(db, 1);
  db.append_log(id, 0, "one\n", "");
  db.append_log(id, 8, "three\n", "");
  BOOST_TEST(db.read_log(id, 0, all).bytes == "one\n");
  db.append_log(id, 4, "two\n", "");
  BOOST_TEST(db.read_log(id, 0, all).bytes == "one\ntwo\nthree\n");
}

BOOST_AUTO_TEST_CASE(ended_once_the_deployment_has_a_terminal_state) {
  auto url = fresh_database();
  pg_store db{url, instance_options("a")};
  auto id = queue_deployment(db, 1);
  auto none = db.read_log(id, 0, all);
  BOOST_TEST(!none.found);
  BOOST_TEST(!none.ended);
  BOOST_TEST(none.size == 0);
  db.append_log(id, 0, "working\n", "");
  BOOST_TEST(!db.read_log(id, 0, all).ended);
  end_deployment(url, db, id);
  auto ended = db.read_log(id, 0, all);
  BOOST_TEST(ended.ended);
  BOOST_TEST(ended.found);
  BOOST_TEST(ended.bytes == "working\n");
  // Another deployment's log is its own; no deployment, no log.
  auto other = db.read_log(id + 1, 0, all);
  BOOST_TEST(!other.found);
  BOOST_TEST(!other.ended);
}

BOOST_AUTO_TEST_CASE(a_secret_is_made_once_by_racing_instances) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  for (int round = 0; round < 20; ++round) {
    auto name = "key" + std::to_string(round);
    std::string got_a, got_b;
    std::latch go{2};
    std::thread ta{[&] {
      go.arrive_and_wait();
      got_a = a.shared_secret(name, "from-a");
    }};
    std::thread tb{[&] {
      go.arrive_and_wait();
      got_b = b.shared_secret(name, "from-b");
    }};
    ta.join();
    tb.join();
    BOOST_TEST(got_a == got_b);
    BOOST_TEST((got_a == "from-a" || got_a == "from-b"));
    BOOST_TEST(a.shared_secret(name, "later") == got_a);
  }
  pg::connection conn{url};
  BOOST_TEST(conn.query("SELECT count(*) FROM secrets").int64(0, 0) == 20);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_log_shipping)

// The whole log, byte for byte, is in the store before its deployment's end:
// the poller never runs here, only the shipment `close` makes.
BOOST_AUTO_TEST_CASE(the_last_bytes_are_stored_before_the_end) {
  auto url = fresh_database();
  int64_t id = 0;
  {
    pg_store db{url, instance_options("a")};
    id = queue_deployment(db, 1);
    own(url, id, "a");
  }
  temp_dir dir;
  auto logs = std::make_shared<log_book>(dir.path.string(),
                                         std::vector<std::string>{"s3cr3t!"});
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto store = pg_store_actor(sys, url, "a");
  ship_logs(sys, logs, store, std::chrono::hours(1));
  BOOST_TEST(logs->shared());
  logs->open(id);
  logs->append(id, stream::heaven, "Deploying app");
  logs->append(id, stream::out, binary_line());
  logs->append(id, stream::err, "token s3cr3t! is redacted");
  caf::scoped_actor self{sys};
  bool started = false;
  self
    ->request(store, std::chrono::seconds(30), start_atom::value, id,
              std::string{"running"})
    .receive([&](bool ok) { started = ok; },
             [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_REQUIRE(started);
  logs->append(id, stream::heaven, "failure: it broke");
  // As a deployment ends: the log closed, then the end sent to the store.
  logs->close(id);
  bool ended = false;
  self
    ->request(store, std::chrono::seconds(30), finish_atom::value, id,
              provider_outcome{deploy_state::failure, "it broke"})
    .receive([&](bool ok) { ended = ok; },
             [&](caf::error& err) { BOOST_FAIL(sys.render(err)); });
  BOOST_REQUIRE(ended);
  // Read straight from the database: whoever sees the end has it all.
  pg_store reader{url, pg_options{}};
  auto piece = reader.read_log(id, 0, all);
  auto file = file_text(logs->path(id));
  BOOST_TEST(piece.ended);
  BOOST_TEST(piece.bytes == file);
  BOOST_TEST(piece.size == static_cast<int64_t>(file.size()));
  BOOST_TEST(piece.times == file_text(logs->times_path(id)));
  BOOST_TEST(file.find("token [redacted] is redacted\n") != std::string::npos);
  BOOST_TEST(file.find(binary_line()) != std::string::npos);
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

// What a live log gains reaches the store while it is written, in pieces
// that follow each other.
BOOST_AUTO_TEST_CASE(a_live_log_is_shipped_while_it_grows) {
  auto url = fresh_database();
  int64_t id = 0;
  {
    pg_store db{url, instance_options("a")};
    id = queue_deployment(db, 1);
  }
  temp_dir dir;
  auto logs = std::make_shared<log_book>(dir.path.string(),
                                         std::vector<std::string>{});
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto store = pg_store_actor(sys, url, "a");
  ship_logs(sys, logs, store, std::chrono::milliseconds(50));
  logs->open(id);
  std::string expected;
  for (int i = 0; i < 5; ++i) {
    logs->append(id, stream::out, "line " + std::to_string(i));
    expected += "line " + std::to_string(i) + "\n";
    // Waits for the poller (no close): the log stays live.
    log_piece piece;
    for (int tries = 0; tries < 600 && piece.bytes != expected; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      piece = read_through(sys, store, id);
    }
    BOOST_TEST(piece.bytes == expected);
    BOOST_TEST(!piece.ended);
  }
  BOOST_TEST(logs->live(id));
  pg::connection conn{url};
  BOOST_TEST(conn.query("SELECT count(*) FROM log_chunks").int64(0, 0) == 5);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

// The log book's side: what it hands on, when, and at which offsets; a
// book without ship_to keeps and hands on nothing.
BOOST_AUTO_TEST_CASE(a_book_hands_on_what_each_log_gains_in_order) {
  temp_dir dir;
  int64_t ms = 1000;
  log_book logs{dir.path.string(), {}, 0, [&ms] { return ms; }};
  std::vector<log_shipment> got;
  logs.open(7);
  logs.append(7, stream::out, "before shipping");
  BOOST_TEST(!logs.shared());
  logs.ship_pending();
  logs.close(7);
  BOOST_TEST(got.empty());
  logs.ship_to([&got](log_shipment s) { got.push_back(std::move(s)); }, 20);
  BOOST_TEST(logs.shared());
  // Reopened: what the file had before is not shipped again.
  logs.open(7);
  ms = 2500;
  logs.append(7, stream::out, "one");
  logs.append(7, stream::heaven, "two");
  BOOST_TEST(got.empty());
  logs.ship_pending();
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_TEST(got[0].id == 7);
  BOOST_TEST(got[0].offset == 16u);
  BOOST_TEST(got[0].bytes == "one\nheaven: two\n");
  BOOST_TEST(got[0].times == "16 2500\n");
  logs.ship_pending();
  BOOST_TEST(got.size() == 1u);
  // More than 20 bytes waiting: shipped at once.
  logs.append(7, stream::out, "a line longer than twenty");
  BOOST_REQUIRE_EQUAL(got.size(), 2u);
  BOOST_TEST(got[1].offset == 32u);
  BOOST_TEST(got[1].bytes == "a line longer than twenty\n");
  BOOST_TEST(got[1].times == "");
  ms = 4000;
  logs.append(7, stream::err, "last");
  logs.close(7);
  BOOST_REQUIRE_EQUAL(got.size(), 3u);
  BOOST_TEST(got[2].offset == 58u);
  BOOST_TEST(got[2].bytes == "last\n");
  BOOST_TEST(got[2].times == "58 4000\n");
  BOOST_TEST(file_text(logs.path(7))
             == "before shipping\none\nheaven: two\na line longer than "
                "twenty\nlast\n");
  logs.ship_pending();
  BOOST_TEST(got.size() == 3u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_log_link)

// Another instance ran the deployment: this ingress's log book never had
// its log, and serves it from the store, all of it and from an offset.
BOOST_AUTO_TEST_CASE(the_log_link_serves_a_log_only_the_store_has) {
  auto url = fresh_database();
  int64_t id = 0;
  auto bytes = "heaven: Deploying app\n" + binary_line() + "done\n";
  {
    pg_store other{url, instance_options("b")};
    id = queue_deployment(other, 1);
    other.append_log(id, 0, bytes.substr(0, 22), "0 1000\n");
    other.append_log(id, 22, bytes.substr(22), "");
    end_deployment(url, other, id);
  }
  temp_dir dir;
  auto logs = std::make_shared<log_book>(dir.path.string(),
                                         std::vector<std::string>{});
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto store = pg_store_actor(sys, url, "a");
  ship_logs(sys, logs, store);
  ingress_options opts;
  opts.listen = "127.0.0.1:0";
  opts.insecure = true;
  opts.logs = logs;
  opts.log_key = "the shared key";
  auto srv = start_ingress(sys, opts, receiver_actor{}, store);
  auto base = "http://127.0.0.1:" + std::to_string(srv->port())
              + "/deployments/" + std::to_string(id)
              + "/log?token=" + log_token(opts.log_key, id);
  BOOST_TEST(!fs::exists(logs->path(id)));
  auto res = test::http_call("GET", base);
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == bytes);
  auto tail = test::http_call("GET", base + "&from=25");
  BOOST_TEST(tail.status == 200);
  BOOST_TEST(tail.body == bytes.substr(25));
  auto wrong = test::http_call(
    "GET", "http://127.0.0.1:" + std::to_string(srv->port()) + "/deployments/"
             + std::to_string(id) + "/log?token=" + log_token("x", id));
  BOOST_TEST(wrong.status == 404);
  srv->stop();
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

// A live follow through this instance of a deployment another instance
// runs: what is stored is sent, then what comes, and the response ends once
// the deployment ended.
BOOST_AUTO_TEST_CASE(the_live_follow_ends_when_the_deployment_ends) {
  auto url = fresh_database();
  pg_store other{url, instance_options("b")};
  auto id = queue_deployment(other, 1);
  own(url, id, "b");
  committed_rows rows;
  BOOST_REQUIRE(other.start(id, "running", rows));
  other.append_log(id, 0, "first\n", "");
  temp_dir dir;
  auto logs = std::make_shared<log_book>(dir.path.string(),
                                         std::vector<std::string>{});
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto store = pg_store_actor(sys, url, "a");
  ship_logs(sys, logs, store);
  ingress_options opts;
  opts.listen = "127.0.0.1:0";
  opts.insecure = true;
  opts.logs = logs;
  opts.log_key = "the shared key";
  auto srv = start_ingress(sys, opts, receiver_actor{}, store);
  auto link = "http://127.0.0.1:" + std::to_string(srv->port())
              + "/deployments/" + std::to_string(id)
              + "/log?token=" + log_token(opts.log_key, id);
  http_response res;
  std::thread reader{[&] { res = test::http_call("GET", link); }};
  // Gives the follower time to send "first\n" and wait for more (the
  // assertions hold either way).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  other.append_log(id, 6, "second\n", "");
  other.append_log(id, 13, "failure: it broke\n", "");
  BOOST_REQUIRE(other.finish(
    id, provider_outcome{deploy_state::failure, "it broke"}, rows));
  reader.join();
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "first\nsecond\nfailure: it broke\n");
  srv->stop();
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_SUITE_END()
