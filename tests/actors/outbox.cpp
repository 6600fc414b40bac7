// The OUTBOX actor's generic parts with a courier of the test's own: rows
// that lead to rows (follow-ups settled and added in one transaction), a cap
// on attempts, a courier's own hopeless answers, lookups over several pages
// and lookups that are refused. Against a stand-in on a real socket and the
// real store on a real SQLite file.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/http_client.hpp"
#include "actors/outbox.hpp"
#include "actors/store.hpp"
#include "base/health.hpp"
#include "tests/support/logger.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds limit = 20s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// What the collector outbox of kind "pong" was handed.
struct collected {
  std::mutex mx;
  std::vector<outbox_row> rows;

  std::vector<outbox_row> get() {
    std::lock_guard guard{mx};
    return rows;
  }
};

outbox_actor::behavior_type collector(outbox_actor::pointer,
                                      std::shared_ptr<collected> c) {
  return {
    [c](outbox_atom, std::vector<outbox_row>& rows) {
      std::lock_guard guard{c->mx};
      for (auto& r : rows)
        c->rows.push_back(r);
    },
    [](retry_atom, std::string&) {},
  };
}

struct fixture {
  fs::path dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor client = sys.spawn(http_client);
  store_actor db;
  test::http_stub stub;
  std::shared_ptr<collected> pongs = std::make_shared<collected>();
  outbox_actor sink;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log
    = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(2000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  outbox_options opts;
  outbox_actor box;
  caf::scoped_actor self{sys};

  fixture() {
    dir = fs::temp_directory_path()
          / ("heaven-outbox-" + std::to_string(::getpid()) + "-"
             + std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(dir);
    fs::create_directories(dir);
    db = sys.spawn(store, (dir / "heaven.db").string(),
                   std::shared_ptr<health_board>{});
    log->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", log);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.request_timeout_ms = 3000;
    sink = sys.spawn(collector, pongs);
    self->request(db, 10s, subscribe_atom::value, std::string{"pong"}, sink)
      .receive([](std::vector<outbox_row>&) {},
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  }

  ~fixture() {
    caf::anon_send_exit(box, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(db, caf::exit_reason::user_shutdown);
    heaven::test::restore_logger(previous);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  /// A courier of "ping" rows: POST <stub>/ping with the row's body, or
  /// nothing when the body says "skip"; each row leads to one "pong" row
  /// saying how it left.
  courier pinger() const {
    courier c;
    c.kind = "ping";
    auto base = stub.base_url();
    c.request = [base](const outbox_row& row) -> std::optional<http_request> {
      if (json::parse(row.body).value("skip", false))
        return std::nullopt;
      http_request req;
      req.method = "POST";
      req.url = base + "ping";
      req.body = row.body;
      return req;
    };
    c.describe = [](const outbox_row& row) {
      return "ping " + std::to_string(row.id);
    };
    c.follow_ups = [](const outbox_row& row, const settlement& how) {
      json said = {{"from", row.id},
                   {"delivered", how.delivered},
                   {"found", how.found},
                   {"answer",
                    how.answer ? json(how.answer->status) : json(nullptr)}};
      return std::vector<outbox_row>{{0, "pong", "p", said.dump(), 0}};
    };
    return c;
  }

  void start(courier c) {
    auto ready = std::make_shared<std::atomic<bool>>(false);
    opts.ready = [ready] { *ready = true; };
    box = sys.spawn(outbox, db, client, std::move(c), opts);
    BOOST_REQUIRE(eventually([&] { return ready->load(); }));
  }

  void add(json body, std::string kind = "ping") {
    outbox_change change;
    change.added.push_back({0, std::move(kind), "s", body.dump(), 0});
    self->request(db, 10s, outbox_atom::value, change)
      .receive([](bool) {}, [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  }

  /// The first column of `sql`'s rows.
  std::vector<std::string> query(const std::string& sql) const {
    std::vector<std::string> out;
    sqlite3* conn = nullptr;
    if (sqlite3_open_v2((dir / "heaven.db").c_str(), &conn,
                        SQLITE_OPEN_READONLY, nullptr)
        == SQLITE_OK) {
      sqlite3_busy_timeout(conn, 5000);
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr)
          == SQLITE_OK)
        while (sqlite3_step(stmt) == SQLITE_ROW) {
          auto p = sqlite3_column_text(stmt, 0);
          out.emplace_back(p ? reinterpret_cast<const char*>(p) : "NULL");
        }
      sqlite3_finalize(stmt);
    }
    sqlite3_close_v2(conn);
    return out;
  }

  /// The outcomes of the ping rows, once `n` are settled.
  std::vector<std::string> outcomes(size_t n) {
    std::vector<std::string> out;
    BOOST_TEST(eventually([&] {
      out = query("SELECT coalesce(outcome, 'unsettled') FROM outbox WHERE "
                  "kind = 'ping' ORDER BY id");
      return out.size() == n
             && std::count(out.begin(), out.end(), "unsettled") == 0;
    }));
    return out;
  }

  /// The pong rows the collector was handed, as JSON, once there are `n`.
  std::vector<json> pong_bodies(size_t n) {
    BOOST_TEST(eventually([&] { return pongs->get().size() >= n; }));
    std::vector<json> out;
    for (auto& r : pongs->get())
      out.push_back(json::parse(r.body));
    BOOST_TEST(out.size() == n);
    return out;
  }

  bool logged(const std::string& text) const {
    for (auto& line : log->last_formatted())
      if (line.find(text) != std::string::npos)
        return true;
    return false;
  }

  /// "POST /ping", "GET /look?page=2", ... for every request so far.
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    for (auto& r : stub.requests())
      out.push_back(r.method + " " + r.target);
    return out;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(outbox_tests, fixture)

BOOST_AUTO_TEST_CASE(follow_ups_are_written_with_the_settle_and_handed_on) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{200, {}, "pong"};
  });
  start(pinger());
  add({{"n", 1}});
  add({{"skip", true}});
  BOOST_TEST(
    outcomes(2)
    == (std::vector<std::string>{"delivered", "delivered: nothing to send"}));
  auto ids = query("SELECT id FROM outbox WHERE kind = 'ping' ORDER BY id");
  auto got = pong_bodies(2);
  // The delivered row's follow-up saw the answer; the one with nothing to
  // send was told so, without an answer.
  BOOST_TEST(got[0]
             == json({{"from", std::stoll(ids[0])},
                      {"delivered", true},
                      {"found", false},
                      {"answer", 200}}));
  BOOST_TEST(got[1]
             == json({{"from", std::stoll(ids[1])},
                      {"delivered", true},
                      {"found", false},
                      {"answer", nullptr}}));
  // Each follow-up was committed with its row's settle: same time, and
  // unsettled until its own outbox takes it.
  BOOST_TEST(query("SELECT count(*) FROM outbox p JOIN outbox q ON "
                   "q.kind = 'pong' AND q.created_at = p.settled_at AND "
                   "json_extract(q.body, '$.from') = p.id WHERE p.kind = "
                   "'ping'")
             == std::vector<std::string>{"2"});
  BOOST_TEST(query("SELECT count(*) FROM outbox WHERE kind = 'pong' AND "
                   "settled_at IS NULL")
             == std::vector<std::string>{"2"});
  BOOST_TEST(calls() == std::vector<std::string>{"POST /ping"});
}

BOOST_AUTO_TEST_CASE(a_dropped_row_says_so_to_its_follow_ups) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{422, {}, "never"};
  });
  start(pinger());
  add({{"n", 1}});
  auto out = outcomes(1);
  BOOST_TEST(out.at(0) == "dropped: HTTP 422: never");
  auto got = pong_bodies(1);
  BOOST_TEST(got[0]["delivered"] == false);
  BOOST_TEST(got[0]["answer"] == 422);
}

BOOST_AUTO_TEST_CASE(a_row_too_old_leads_to_nothing) {
  opts.now_ms = [] {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()
                                       + hours(48))
      .count();
  };
  start(pinger());
  add({{"n", 1}});
  auto out = outcomes(1);
  BOOST_TEST(out.at(0).rfind("dropped: undelivered after", 0) == 0u, out[0]);
  // Its follow-ups would be as old: none is written.
  std::this_thread::sleep_for(100ms);
  BOOST_TEST(pongs->get().empty());
  BOOST_TEST(query("SELECT count(*) FROM outbox WHERE kind = 'pong'")
             == std::vector<std::string>{"0"});
  BOOST_TEST(stub.requests().empty());
}

BOOST_AUTO_TEST_CASE(attempts_are_capped_when_asked_to) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{502, {}, "bad gateway"};
  });
  opts.max_attempts = 3;
  start(pinger());
  add({{"n", 1}});
  BOOST_TEST(outcomes(1)
             == std::vector<std::string>{
               "dropped: gave up after 3 attempt(s): HTTP 502"});
  BOOST_TEST(stub.requests().size() == 3u);
  auto got = pong_bodies(1);
  BOOST_TEST(got[0]["delivered"] == false);
  BOOST_TEST(got[0]["answer"].is_null());
  BOOST_TEST(logged("error ping "));
  BOOST_TEST(logged("is dropped: gave up after 3 attempt(s): HTTP 502"));
}

BOOST_AUTO_TEST_CASE(a_courier_names_its_own_hopeless_answers) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{403, {}, "forbidden"};
  });
  auto c = pinger();
  c.hopeless = [](const http_response& res) { return res.status == 403; };
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1)
             == std::vector<std::string>{"dropped: HTTP 403: forbidden"});
  BOOST_TEST(stub.requests().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_503_with_retry_after_is_sent_again_without_a_lookup) {
  std::atomic<int> n{0};
  stub.respond_with([&](const test::recorded_request& r) {
    if (r.method == "GET")
      return test::stub_response{200, {}, "[]"};
    if (++n == 1)
      return test::stub_response{503, {{"Retry-After", "0"}}, "later"};
    return test::stub_response{201, {}, "{}"};
  });
  auto c = pinger();
  auto base = stub.base_url();
  c.lookup = [base](const outbox_row&) -> std::optional<http_request> {
    http_request req;
    req.url = base + "look";
    return req;
  };
  c.found = [](const outbox_row&, const http_response&) { return false; };
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  // It refused, and said when to come back: nothing to look up.
  BOOST_TEST(calls() == (std::vector<std::string>{"POST /ping", "POST /ping"}));
}

namespace {

/// A lookup over `/look?page=N`: page 1 and 2 list other things and say
/// there is a next page; page 3 shows the row.
courier paging(courier c, std::string base) {
  c.lookup = [base](const outbox_row&) -> std::optional<http_request> {
    http_request req;
    req.url = base + "look?page=1";
    return req;
  };
  c.found = [](const outbox_row& row, const http_response& res) {
    return json::parse(res.body).contains(std::to_string(row.id));
  };
  c.next_page = [](const outbox_row&, const http_request& looked,
                   const http_response&) -> std::optional<http_request> {
    auto page = looked.url.back() - '0';
    if (page >= 3)
      return std::nullopt;
    auto next = looked;
    next.url.back() = static_cast<char>('0' + page + 1);
    return next;
  };
  return c;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_lookup_reads_the_pages_it_is_pointed_to) {
  std::atomic<int> posts{0};
  stub.respond_with([&](const test::recorded_request& r) {
    if (r.method == "POST") {
      ++posts;
      return test::stub_response{504, {}, "timeout"}; // It arrived though.
    }
    if (r.target == "/look?page=3") {
      auto ids = json::object();
      ids["1"] = true; // The only ping row's id.
      return test::stub_response{200, {}, ids.dump()};
    }
    return test::stub_response{200, {}, R"({"other":true})"};
  });
  start(paging(pinger(), stub.base_url()));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  BOOST_TEST(
    calls()
    == (std::vector<std::string>{"POST /ping", "GET /look?page=1",
                                 "GET /look?page=2", "GET /look?page=3"}));
  BOOST_TEST(logged("ping 1 had arrived already: not sending it again"));
  auto got = pong_bodies(1);
  BOOST_TEST(got[0]["delivered"] == true);
  BOOST_TEST(got[0]["found"] == true);
  BOOST_TEST(got[0]["answer"] == 200);
}

BOOST_AUTO_TEST_CASE(a_refused_lookup_sends_again_unless_that_would_harm) {
  stub.respond_with([](const test::recorded_request& r) {
    if (r.method == "GET")
      return test::stub_response{404, {}, "no such list"};
    return test::stub_response{500, {}, "oops"};
  });
  // The default: a status is better twice than never.
  auto c = pinger();
  auto base = stub.base_url();
  c.lookup = [base](const outbox_row&) -> std::optional<http_request> {
    http_request req;
    req.url = base + "look";
    return req;
  };
  c.found = [](const outbox_row&, const http_response&) { return false; };
  opts.max_attempts = 2;
  start(c);
  add({{"n", 1}});
  BOOST_TEST(outcomes(1)
             == std::vector<std::string>{
               "dropped: gave up after 2 attempt(s): HTTP 500"});
  BOOST_TEST(
    calls()
    == (std::vector<std::string>{"POST /ping", "GET /look", "POST /ping"}));
  // A deployment is not: the row is dropped rather than sent blind.
  caf::anon_send_exit(box, caf::exit_reason::user_shutdown);
  c.send_unseen = false;
  start(c);
  add({{"n", 2}});
  auto out = outcomes(2);
  BOOST_TEST(out.at(1)
             == "dropped: could not find out whether an earlier attempt "
                "arrived (looking it up: HTTP 404); not sending it again, so "
                "that it arrives once at most");
  auto all = calls();
  BOOST_TEST(std::vector<std::string>(all.begin() + 3, all.end())
             == (std::vector<std::string>{"POST /ping", "GET /look"}));
}

BOOST_AUTO_TEST_CASE(follow_ups_that_throw_add_nothing) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{200, {}, "ok"};
  });
  auto c = pinger();
  c.follow_ups = [](const outbox_row&,
                    const settlement&) -> std::vector<outbox_row> {
    throw std::runtime_error("no idea");
  };
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  BOOST_TEST(logged("error ping 1 leads to nothing: no idea"));
  BOOST_TEST(query("SELECT count(*) FROM outbox WHERE kind = 'pong'")
             == std::vector<std::string>{"0"});
}

BOOST_AUTO_TEST_SUITE_END()
