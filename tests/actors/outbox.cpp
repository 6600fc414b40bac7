// The OUTBOX actor's generic parts with a courier of the test's own: rows
// that lead to rows (follow-ups settled and added in one transaction), a cap
// on attempts, a courier's own hopeless answers, lookups over several pages
// and lookups that are refused. In a virtual world (tests/support): the real
// store on a real SQLite file, a fake HTTP client, virtual time.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/outbox.hpp"
#include "tests/support/logger.hpp"
#include "tests/support/virtual_world.hpp"

using namespace heaven;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// What the collector outbox of kind "pong" was handed.
struct collected {
  std::vector<outbox_row> rows;
};

outbox_actor::behavior_type collector(outbox_actor::pointer,
                                      std::shared_ptr<collected> c) {
  return {
    [c](outbox_atom, std::vector<outbox_row>& rows) {
      for (auto& r : rows)
        c->rows.push_back(r);
    },
    [c](outbox_atom, std::vector<outbox_row>& rows, bool) {
      for (auto& r : rows)
        c->rows.push_back(r);
    },
    [](retry_atom, std::string&) {},
    [](drain_atom) { return true; },
    [](wake_atom) {},
  };
}

struct fixture : test::virtual_world {
  test::captured_log log;
  test::fake_host& stub = net->host("http://ping.test/");
  std::shared_ptr<collected> pongs = std::make_shared<collected>();
  outbox_actor sink;
  // No jitter: the tests assert exact waits.
  outbox_options opts = [] {
    outbox_options o;
    o.jitter = 0;
    return o;
  }();
  outbox_actor box;

  fixture() {
    open_store();
    opts.first_backoff = 10ms;
    opts.max_backoff = 50ms;
    opts.request_timeout_ms = 3000;
    opts.now_ms = clock_ms();
    sink = sys.spawn(collector, pongs);
    ask<std::vector<outbox_row>>(store, subscribe_atom::value,
                                 std::string{"pong"}, sink);
  }

  ~fixture() {
    stop(box);
    stop(sink);
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
    auto ready = std::make_shared<bool>(false);
    opts.ready = [ready] { *ready = true; };
    box = sys.spawn(outbox, store, http, std::move(c), opts);
    run();
    BOOST_REQUIRE(*ready);
  }

  void add(json body, std::string kind = "ping", std::string stream = "s") {
    outbox_change change;
    change.added.push_back(
      {0, std::move(kind), std::move(stream), body.dump(), 0});
    // Past the gate: what it refuses or holds is the outbox's own writes.
    ask<bool>(real_store, outbox_atom::value, change);
  }

  /// The outcomes of the ping rows, once `n` are settled.
  std::vector<std::string> outcomes(size_t n) {
    std::vector<std::string> out;
    BOOST_TEST(run_until([&] {
      out = query("SELECT coalesce(outcome, 'unsettled') FROM outbox WHERE "
                  "kind = 'ping' ORDER BY id");
      return out.size() == n
             && std::count(out.begin(), out.end(), "unsettled") == 0;
    }));
    return out;
  }

  /// The pong rows the collector was handed, as JSON, once there are `n`.
  std::vector<json> pong_bodies(size_t n) {
    BOOST_TEST(run_until([&] { return pongs->rows.size() >= n; }));
    std::vector<json> out;
    for (auto& r : pongs->rows)
      out.push_back(json::parse(r.body));
    BOOST_TEST(out.size() == n);
    return out;
  }

  bool logged(const std::string& text) const {
    return log.has(text);
  }

  /// "POST /ping", "GET /look?page=2", ... for every request so far.
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    for (auto& r : stub.requests())
      out.push_back(r.method + " " + r.target);
    return out;
  }

  /// When each request was sent, in virtual ms after the first.
  std::vector<int64_t> times() const {
    std::vector<int64_t> out;
    auto all = stub.calls();
    for (auto* c : all)
      out.push_back((c->at - all.front()->at).count());
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
  // The clock says two days have passed since the row was written.
  opts.now_ms = clock_ms(48h);
  start(pinger());
  add({{"n", 1}});
  auto out = outcomes(1);
  BOOST_TEST(out.at(0).rfind("dropped: undelivered after", 0) == 0u, out[0]);
  // Its follow-ups would be as old: none is written, and nothing is left
  // to happen later either.
  settle();
  BOOST_TEST(!timers_pending());
  BOOST_TEST(pongs->rows.empty());
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
  // After the first failure 10 ms, then twice that.
  BOOST_TEST(times() == (std::vector<int64_t>{0, 10, 30}));
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

BOOST_AUTO_TEST_CASE(a_401_renews_the_credentials_once_and_sends_again) {
  auto token = std::make_shared<std::string>("t1");
  stub.respond_with([](const test::recorded_request& r) {
    if (r.header("authorization") == "token t1")
      return test::stub_response{401, {}, "bad credentials"};
    return test::stub_response{201, {}, "{}"};
  });
  auto c = pinger();
  auto plain = c.request;
  c.request = [plain, token](const outbox_row& row) {
    auto req = plain(row);
    if (req)
      req->headers.emplace_back("Authorization", "token " + *token);
    return req;
  };
  auto renewed = std::make_shared<std::vector<std::string>>();
  c.renew = [token, renewed](const outbox_row&, const http_request& sent) {
    for (auto& [k, v] : sent.headers)
      if (k == "Authorization")
        renewed->push_back(v);
    *token = "t2";
    return true;
  };
  auto checks = std::make_shared<int>(0);
  c.credentials_check = [checks]() -> std::optional<http_request> {
    ++*checks;
    return std::nullopt;
  };
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  BOOST_TEST(calls() == (std::vector<std::string>{"POST /ping", "POST /ping"}));
  BOOST_TEST(stub.requests()[1].header("authorization") == "token t2");
  BOOST_TEST(*renewed == std::vector<std::string>{"token t1"});
  BOOST_TEST(*checks == 0);
  // At once, not after a backoff.
  BOOST_TEST(times() == (std::vector<int64_t>{0, 0}));
}

BOOST_AUTO_TEST_CASE(a_401_after_renewing_drops_the_row_saying_so) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{401, {}, "bad credentials"};
  });
  auto c = pinger();
  auto renewals = std::make_shared<int>(0);
  c.renew = [renewals](const outbox_row&, const http_request&) {
    ++*renewals;
    return true;
  };
  start(std::move(c));
  add({{"n", 1}});
  add({{"n", 2}});
  auto out = outcomes(2);
  for (auto& o : out)
    BOOST_TEST(
      o.rfind("dropped: HTTP 401 again with renewed credentials", 0) == 0u, o);
  // Each row: its attempt and one with renewed credentials.
  BOOST_TEST(stub.requests().size() == 4u);
  BOOST_TEST(*renewals == 2);
}

BOOST_AUTO_TEST_CASE(a_request_that_cannot_be_made_now_waits_for_later) {
  auto c = pinger();
  auto plain = c.request;
  auto tries = std::make_shared<int>(0);
  c.request = [plain, tries](const outbox_row& row) {
    if (++*tries <= 2)
      throw not_now("no installation token yet: GitHub answered HTTP 502");
    return plain(row);
  };
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  BOOST_TEST(stub.requests().size() == 1u);
  BOOST_TEST(*tries == 3);
  BOOST_TEST(logged("no installation token yet"));
}

BOOST_AUTO_TEST_CASE(
  a_row_whose_credentials_are_being_fetched_costs_no_attempt) {
  auto c = pinger();
  auto plain = c.request;
  auto looks = std::make_shared<std::vector<int64_t>>();
  auto now = opts.now_ms;
  c.request = [plain, looks, now](const outbox_row& row) {
    looks->push_back(now());
    if (looks->size() <= 4)
      throw not_yet("the GitHub App's token for octo/app is being fetched");
    return plain(row);
  };
  // One attempt allowed: four looks while the token is fetched use none.
  opts.max_attempts = 1;
  start(std::move(c));
  add({{"n", 1}});
  BOOST_TEST(outcomes(1) == std::vector<std::string>{"delivered"});
  BOOST_TEST(stub.requests().size() == 1u);
  BOOST_REQUIRE_EQUAL(looks->size(), 5u);
  // Looked at again after 50 ms, doubling.
  std::vector<int64_t> gaps;
  for (std::size_t i = 1; i < looks->size(); ++i)
    gaps.push_back((*looks)[i] - (*looks)[i - 1]);
  BOOST_TEST(gaps == (std::vector<int64_t>{50, 100, 200, 400}));
}

BOOST_AUTO_TEST_CASE(a_503_with_retry_after_is_sent_again_without_a_lookup) {
  int n = 0;
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
  // It refused, and said when to come back: nothing to look up. "Now"
  // is no sooner than the backoff.
  BOOST_TEST(calls() == (std::vector<std::string>{"POST /ping", "POST /ping"}));
  BOOST_TEST(times() == (std::vector<int64_t>{0, 10}));
}

BOOST_AUTO_TEST_CASE(a_rate_limit_holds_every_stream_until_retry_after) {
  int posts = 0;
  stub.respond_with([&](const test::recorded_request&) {
    if (++posts == 1)
      return test::stub_response{429, {{"Retry-After", "2"}}, "slow down"};
    return test::stub_response{201, {}, "{}"};
  });
  start(pinger());
  add({{"n", 1}}, "ping", "a");
  BOOST_TEST(stub.requests().size() == 1u);
  // Another stream's row waits too: the limit is the whole outbox's.
  add({{"n", 2}}, "ping", "b");
  advance(1999ms);
  BOOST_TEST(stub.requests().size() == 1u);
  advance(1ms);
  BOOST_TEST(outcomes(2)
             == (std::vector<std::string>{"delivered", "delivered"}));
  BOOST_TEST(times() == (std::vector<int64_t>{0, 2000, 2000}));
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
  int posts = 0;
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
  stop(box);
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

BOOST_AUTO_TEST_CASE(a_settle_the_store_refuses_is_written_a_second_later) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{200, {}, "ok"};
  });
  start(pinger());
  script->refuse = {"outbox"};
  add({{"n", 1}});
  BOOST_TEST(calls() == std::vector<std::string>{"POST /ping"});
  BOOST_TEST(script->refused["outbox"] == 1);
  BOOST_TEST(logged("outbox recording 1 delivered message(s) failed"));
  script->refuse.clear();
  advance(999ms);
  BOOST_TEST(query("SELECT coalesce(outcome, 'unsettled') FROM outbox WHERE "
                   "kind = 'ping'")
             == std::vector<std::string>{"unsettled"});
  advance(1ms);
  BOOST_TEST(query("SELECT coalesce(outcome, 'unsettled') FROM outbox WHERE "
                   "kind = 'ping'")
             == std::vector<std::string>{"delivered"});
  BOOST_TEST(script->asked["outbox"] == 2);
  // Delivered once: only its record was written again.
  BOOST_TEST(calls() == std::vector<std::string>{"POST /ping"});
}

BOOST_AUTO_TEST_CASE(settles_made_while_a_write_is_under_way_go_in_the_next) {
  stub.respond_with([](const test::recorded_request&) {
    return test::stub_response{200, {}, "ok"};
  });
  start(pinger());
  // The store takes its time with the outbox's writes.
  script->hold = {"outbox"};
  add({{"n", 1}});
  add({{"n", 2}});
  add({{"n", 3}});
  // Each row went out after the one before it had left; their settles
  // wait: one write under way, the other two for the next.
  BOOST_TEST(
    calls()
    == (std::vector<std::string>{"POST /ping", "POST /ping", "POST /ping"}));
  BOOST_TEST(script->asked["outbox"] == 1);
  BOOST_TEST(query("SELECT count(*) FROM outbox WHERE kind = 'ping' AND "
                   "settled_at IS NULL")
             == std::vector<std::string>{"3"});
  script->hold.clear();
  release_store();
  BOOST_TEST(
    outcomes(3)
    == (std::vector<std::string>{"delivered", "delivered", "delivered"}));
  BOOST_TEST(script->asked["outbox"] == 2);
  BOOST_TEST(pong_bodies(3).size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_drain_is_answered_once_nothing_is_under_way) {
  // Stream "a" is answered only when the test says; stream "b" fails and
  // waits out its backoff.
  stub.respond_with([](const test::recorded_request& r) -> test::fake_reply {
    if (r.body.find("\"b\"") != std::string::npos)
      return test::stub_response{500, {}, "down"};
    return test::fake_reply::held(test::stub_response{200, {}, "pong"});
  });
  opts.first_backoff = std::chrono::minutes(10);
  opts.max_backoff = std::chrono::minutes(10);
  start(pinger());
  add({{"n", "a"}}, "ping", "a");
  add({{"n", "b"}}, "ping", "b");
  BOOST_REQUIRE(run_until([&] { return stub.requests().size() == 2; }));
  auto drained = std::make_shared<bool>(false);
  keep(sys.spawn([this, drained](caf::event_based_actor* s) {
    s->request(box, caf::infinite, drain_atom::value).then([drained](bool) {
      *drained = true;
    });
  }));
  run();
  advance(1s);
  // "a" is in flight: no answer yet.
  BOOST_TEST(!*drained);
  auto waiting = stub.waiting();
  BOOST_REQUIRE(waiting.size() == 1u);
  net->release(waiting.front()->id);
  // Once "a" is delivered and its settle written, the drain is answered,
  // though "b" still waits out its backoff.
  BOOST_TEST(run_until([&] { return *drained; }, 5s));
  BOOST_TEST(query("SELECT coalesce(outcome, 'unsettled') FROM outbox "
                   "WHERE kind = 'ping' ORDER BY id")
             == (std::vector<std::string>{"delivered", "unsettled"}));
}

BOOST_AUTO_TEST_SUITE_END()
