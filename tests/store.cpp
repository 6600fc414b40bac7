// Tests of the STORE actor against real SQLite files.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/store.hpp"

using namespace heaven;
namespace fs = std::filesystem;

namespace {

constexpr auto timeout = std::chrono::seconds(30);

/// A fresh directory under the system's temp directory, removed afterwards.
struct temp_dir {
  fs::path path;

  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("heaven-store-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter++) + "-" +
            std::to_string(
                std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// Runs one SQL query on its own connection; the first column of each row.
std::vector<std::string> query(const fs::path &db, const std::string &sql) {
  sqlite3 *conn = nullptr;
  std::vector<std::string> rows;
  BOOST_REQUIRE_EQUAL(
      sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr),
      SQLITE_OK);
  sqlite3_busy_timeout(conn, 5000);
  sqlite3_stmt *stmt = nullptr;
  auto rc = sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr);
  BOOST_REQUIRE_MESSAGE(rc == SQLITE_OK, sqlite3_errmsg(conn));
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto p = sqlite3_column_text(stmt, 0);
    rows.emplace_back(p ? reinterpret_cast<const char *>(p) : "NULL");
  }
  BOOST_CHECK_MESSAGE(rc == SQLITE_DONE, sqlite3_errmsg(conn));
  sqlite3_finalize(stmt);
  sqlite3_close_v2(conn);
  return rows;
}

std::string query_one(const fs::path &db, const std::string &sql) {
  auto rows = query(db, sql);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  return rows.front();
}

deployment_request make_request(int64_t github_id, std::string env) {
  deployment_request r;
  r.github_id = github_id;
  r.repo = "octo/app";
  r.clone_url = "https://github.com/octo/app.git";
  r.sha = "0123456789abcdef0123456789abcdef01234567";
  r.ref = "main";
  r.environment = std::move(env);
  r.task = "deploy:migrations";
  r.description = "Deploying \"app\" — with quotes\nand a newline";
  r.actor = "hubot";
  r.app = "app";
  r.provider = "shell";
  r.environment_url = "https://app.example.com";
  r.payload_json = R"({"name":"app","config":{"provider":"shell"},)"
                   R"("notify":{"room":"ops","user":"ü"}})";
  return r;
}

inbound_event deployment_event(std::string delivery, deployment_request r) {
  inbound_event ev;
  ev.delivery = std::move(delivery);
  ev.type = "deployment";
  ev.body = R"({"deployment":{"id":)" + std::to_string(r.github_id) + "}}";
  ev.deployment = std::move(r);
  return ev;
}

inbound_event other_event(std::string delivery, std::string type) {
  inbound_event ev;
  ev.delivery = std::move(delivery);
  ev.type = std::move(type);
  ev.body = R"({"zen":"Keep it logically awesome."})";
  return ev;
}

void check_same(const deployment_request &x, const deployment_request &y) {
  BOOST_CHECK_EQUAL(x.github_id, y.github_id);
  BOOST_CHECK_EQUAL(x.repo, y.repo);
  BOOST_CHECK_EQUAL(x.clone_url, y.clone_url);
  BOOST_CHECK_EQUAL(x.sha, y.sha);
  BOOST_CHECK_EQUAL(x.ref, y.ref);
  BOOST_CHECK_EQUAL(x.environment, y.environment);
  BOOST_CHECK_EQUAL(x.task, y.task);
  BOOST_CHECK_EQUAL(x.description, y.description);
  BOOST_CHECK_EQUAL(x.actor, y.actor);
  BOOST_CHECK_EQUAL(x.app, y.app);
  BOOST_CHECK_EQUAL(x.provider, y.provider);
  BOOST_CHECK_EQUAL(x.environment_url, y.environment_url);
  BOOST_CHECK_EQUAL(x.payload_json, y.payload_json);
}

bool is_timestamp(const nlohmann::json &x) {
  static const std::regex re{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"};
  return x.is_string() && std::regex_match(x.get<std::string>(), re);
}

/// A temp directory, an actor system and helpers to ask the store.
struct fixture {
  temp_dir dir; // Declared first: removed after the system is gone.
  fs::path db = dir.path / "heaven.sqlite3";
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<store_actor> stores;

  ~fixture() {
    for (auto &s : stores)
      stop(s);
  }

  store_actor start(const fs::path &path) {
    auto s = sys.spawn(store, path.string());
    stores.push_back(s);
    return s;
  }

  store_actor start() { return start(db); }

  /// Stops the store and waits until it is gone (and its database closed).
  void stop(const store_actor &s) {
    self->monitor(s);
    self->send_exit(s, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg &) {},
                  caf::after(timeout) >> [] { BOOST_FAIL("store hangs"); });
  }

  caf::expected<accept_result> accept(const store_actor &s, inbound_event ev) {
    caf::expected<accept_result> out{caf::error{}};
    self->request(s, timeout, accept_atom::value, std::move(ev))
        .receive([&](accept_result r) { out = r; },
                 [&](caf::error &e) { out = std::move(e); });
    return out;
  }

  accept_result accept_ok(const store_actor &s, inbound_event ev) {
    auto r = accept(s, std::move(ev));
    if (!r)
      BOOST_FAIL("store answered " << sys.render(r.error()));
    return *r;
  }

  nlohmann::json list(const store_actor &s, int32_t n) {
    std::string out;
    self->request(s, timeout, list_atom::value, n)
        .receive([&](std::string x) { out = std::move(x); },
                 [&](caf::error &e) { BOOST_FAIL(sys.render(e)); });
    return nlohmann::json::parse(out);
  }

  std::vector<unfinished_deployment> pending(const store_actor &s) {
    std::vector<unfinished_deployment> out;
    self->request(s, timeout, pending_atom::value)
        .receive([&](std::vector<unfinished_deployment> x) { out = x; },
                 [&](caf::error &e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  /// Sends an update; messages from one sender arrive in order, so the next
  /// request sees it.
  void update(const store_actor &s, int64_t id, std::string state,
              std::string description) {
    self->send(s, update_atom::value,
               deployment_update{id, std::move(state), std::move(description)});
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(store_suite, fixture)

BOOST_AUTO_TEST_CASE(accepts_a_deployment_event) {
  auto s = start();
  auto req = make_request(4242, "production");
  auto r = accept_ok(s, deployment_event("d-1", req));
  BOOST_CHECK(!r.duplicate);
  BOOST_CHECK_EQUAL(r.deployment_id, 1);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT event FROM deliveries "
                                  "WHERE delivery = 'd-1'"),
                    "deployment");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT body FROM deliveries"),
                    R"({"deployment":{"id":4242}})");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT delivery || '|' || github_id || "
                                  "'|' || state || '|' || repo || '|' || sha "
                                  "FROM deployments WHERE id = 1"),
                    "d-1|4242|received|octo/app|" + req.sha);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT repo || '|' || active "
                                  "FROM repositories"),
                    "octo/app|1");
  auto received = query_one(db, "SELECT received_at FROM deliveries");
  BOOST_CHECK(is_timestamp(received));
}

BOOST_AUTO_TEST_CASE(redelivery_is_a_duplicate_and_changes_nothing) {
  auto s = start();
  BOOST_CHECK_EQUAL(
      accept_ok(s, deployment_event("d-1", make_request(1, "production")))
          .deployment_id,
      1);
  auto again = accept_ok(s, deployment_event("d-1", make_request(1, "prod")));
  BOOST_CHECK(again.duplicate);
  BOOST_CHECK_EQUAL(again.deployment_id, 0);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "1");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "1");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT environment FROM deployments"),
                    "production");
  auto second = accept_ok(s, deployment_event("d-2", make_request(2, "qa")));
  BOOST_CHECK(!second.duplicate);
  BOOST_CHECK_EQUAL(second.deployment_id, 2);
  // Two deployments of one repository: still one repository row.
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM repositories"), "1");
}

BOOST_AUTO_TEST_CASE(other_events_are_recorded_without_a_deployment) {
  auto s = start();
  for (auto type : {"ping", "status", "deployment_status"}) {
    auto r = accept_ok(s, other_event(std::string("e-") + type, type));
    BOOST_CHECK(!r.duplicate);
    BOOST_CHECK_EQUAL(r.deployment_id, 0);
  }
  auto dup = accept_ok(s, other_event("e-ping", "ping"));
  BOOST_CHECK(dup.duplicate);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "3");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT event FROM deliveries "
                                  "WHERE delivery = 'e-status'"),
                    "status");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "0");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM repositories"), "0");
  BOOST_CHECK_EQUAL(list(s, 10), nlohmann::json::array());
}

BOOST_AUTO_TEST_CASE(updates_set_state_and_finished_at) {
  auto s = start();
  for (int i = 1; i <= 4; ++i)
    accept_ok(s, deployment_event("d-" + std::to_string(i),
                                  make_request(i, "env" + std::to_string(i))));
  update(s, 1, "running", "Deploying now");
  update(s, 2, "success", "Deployed");
  update(s, 3, "failure", "deploy/run.sh exited with 3");
  update(s, 4, "queued", "Waiting");
  update(s, 4, "error", "Timed out");
  update(s, 99, "success", "nobody"); // Logged, ignored, nothing breaks.
  auto rows = list(s, 10);
  BOOST_REQUIRE_EQUAL(rows.size(), 4u);
  // Newest first: rows[0] is id 4.
  auto &d1 = rows[3];
  BOOST_CHECK_EQUAL(d1["state"], "running");
  BOOST_CHECK_EQUAL(d1["description"], "Deploying now");
  BOOST_CHECK(d1["finished_at"].is_null());
  BOOST_CHECK(is_timestamp(d1["updated_at"]));
  BOOST_CHECK(d1["updated_at"] >= d1["created_at"]);
  auto &d2 = rows[2];
  BOOST_CHECK_EQUAL(d2["state"], "success");
  BOOST_CHECK_EQUAL(d2["description"], "Deployed");
  BOOST_CHECK(is_timestamp(d2["finished_at"]));
  auto &d3 = rows[1];
  BOOST_CHECK_EQUAL(d3["state"], "failure");
  BOOST_CHECK(is_timestamp(d3["finished_at"]));
  auto &d4 = rows[0];
  BOOST_CHECK_EQUAL(d4["state"], "error");
  BOOST_CHECK_EQUAL(d4["description"], "Timed out");
  BOOST_CHECK(is_timestamp(d4["finished_at"]));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "4");
  // Output that is not UTF-8 still lists (with a replacement character).
  update(s, 1, "running", "bad byte \xff here");
  BOOST_CHECK_EQUAL(list(s, 10)[3]["description"], "bad byte \uFFFD here");
}

BOOST_AUTO_TEST_CASE(list_is_newest_first_with_exact_fields) {
  auto s = start();
  for (int i = 1; i <= 5; ++i)
    accept_ok(s, deployment_event("d-" + std::to_string(i),
                                  make_request(100 + i, "production")));
  auto rows = list(s, 3);
  BOOST_REQUIRE_EQUAL(rows.size(), 3u);
  BOOST_CHECK_EQUAL(rows[0]["id"], 5);
  BOOST_CHECK_EQUAL(rows[1]["id"], 4);
  BOOST_CHECK_EQUAL(rows[2]["id"], 3);
  const std::set<std::string> expected{
      "id",    "github_id",   "repo",       "app",        "environment",
      "ref",   "sha",         "task",       "provider",   "actor",
      "state", "description", "created_at", "updated_at", "finished_at"};
  for (auto &row : rows) {
    std::set<std::string> keys;
    for (auto &[k, v] : row.items())
      keys.insert(k);
    BOOST_CHECK(keys == expected);
  }
  auto req = make_request(105, "production");
  auto &top = rows[0];
  BOOST_CHECK_EQUAL(top["github_id"], 105);
  BOOST_CHECK_EQUAL(top["repo"], req.repo);
  BOOST_CHECK_EQUAL(top["app"], req.app);
  BOOST_CHECK_EQUAL(top["environment"], req.environment);
  BOOST_CHECK_EQUAL(top["ref"], req.ref);
  BOOST_CHECK_EQUAL(top["sha"], req.sha);
  BOOST_CHECK_EQUAL(top["task"], req.task);
  BOOST_CHECK_EQUAL(top["provider"], req.provider);
  BOOST_CHECK_EQUAL(top["actor"], req.actor);
  BOOST_CHECK_EQUAL(top["state"], "received");
  BOOST_CHECK_EQUAL(top["description"], req.description);
  BOOST_CHECK(is_timestamp(top["created_at"]));
  BOOST_CHECK(is_timestamp(top["updated_at"]));
  BOOST_CHECK(top["finished_at"].is_null());
  BOOST_CHECK_EQUAL(list(s, 100).size(), 5u);
  BOOST_CHECK_EQUAL(list(s, 0), nlohmann::json::array());
  BOOST_CHECK_EQUAL(list(s, -1), nlohmann::json::array());
}

BOOST_AUTO_TEST_CASE(pending_rebuilds_unfinished_requests) {
  auto s = start();
  std::vector<deployment_request> reqs;
  for (int i = 1; i <= 5; ++i) {
    reqs.push_back(make_request(i, "env" + std::to_string(i)));
    reqs.back().ref = "ref-" + std::to_string(i);
    accept_ok(s, deployment_event("d-" + std::to_string(i), reqs.back()));
  }
  update(s, 2, "success", "done");
  update(s, 3, "queued", "Waiting");
  update(s, 4, "running", "Running");
  update(s, 5, "error", "broken");
  auto xs = pending(s);
  BOOST_REQUIRE_EQUAL(xs.size(), 3u);
  BOOST_CHECK_EQUAL(xs[0].id, 1);
  BOOST_CHECK_EQUAL(xs[0].state, "received");
  check_same(xs[0].request, reqs[0]);
  BOOST_CHECK_EQUAL(xs[1].id, 3);
  BOOST_CHECK_EQUAL(xs[1].state, "queued");
  check_same(xs[1].request, reqs[2]);
  BOOST_CHECK_EQUAL(xs[2].id, 4);
  BOOST_CHECK_EQUAL(xs[2].state, "running");
  check_same(xs[2].request, reqs[3]);
}

BOOST_AUTO_TEST_CASE(data_survives_reopening) {
  auto req = make_request(7, "production");
  {
    auto s = start();
    BOOST_CHECK_EQUAL(accept_ok(s, deployment_event("d-1", req)).deployment_id,
                      1);
    accept_ok(s, deployment_event("d-2", make_request(8, "qa")));
    update(s, 2, "success", "Deployed");
    list(s, 1); // Makes sure the update went through before stopping.
    stop(s);
    stores.clear();
  }
  auto s = start();
  auto again = accept_ok(s, deployment_event("d-1", req));
  BOOST_CHECK(again.duplicate);
  auto xs = pending(s);
  BOOST_REQUIRE_EQUAL(xs.size(), 1u);
  BOOST_CHECK_EQUAL(xs[0].id, 1);
  check_same(xs[0].request, req);
  auto rows = list(s, 10);
  BOOST_REQUIRE_EQUAL(rows.size(), 2u);
  BOOST_CHECK_EQUAL(rows[0]["state"], "success");
  BOOST_CHECK_EQUAL(accept_ok(s, deployment_event("d-3", make_request(9, "qa")))
                        .deployment_id,
                    3);
}

BOOST_AUTO_TEST_CASE(database_is_in_wal_mode_with_a_schema_version) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping"));
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA journal_mode"), "wal");
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "1");
  BOOST_CHECK(fs::exists(dir.path / "heaven.sqlite3-wal"));
  BOOST_CHECK_EQUAL(
      query_one(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                    "AND name = 'deployments_repo_environment'"),
      "1");
}

BOOST_AUTO_TEST_CASE(sqlite_errors_become_error_replies) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping"));
  // Break the schema behind the store's back.
  query(db, "DROP TABLE deployments");
  auto r = accept(s, deployment_event("d-1", make_request(1, "production")));
  BOOST_REQUIRE(!r);
  auto what = sys.render(r.error());
  BOOST_TEST_MESSAGE("error reply: " << what);
  BOOST_CHECK(what.find("store: ") != std::string::npos);
  BOOST_CHECK(what.find("deployments") != std::string::npos);
  // One transaction: the failed deployment left no delivery behind.
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries "
                                  "WHERE delivery = 'd-1'"),
                    "0");
  // The actor lives on.
  BOOST_CHECK(!accept_ok(s, other_event("p-2", "ping")).duplicate);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "2");
}

BOOST_AUTO_TEST_CASE(unopenable_database_answers_with_errors) {
  auto s = start(dir.path / "missing" / "heaven.sqlite3");
  auto r = accept(s, other_event("p-1", "ping"));
  BOOST_REQUIRE(!r);
  auto what = sys.render(r.error());
  BOOST_CHECK(what.find("store: cannot open") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
