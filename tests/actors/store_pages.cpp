// Tests of what the web pages read and change through the STORE: the
// filtered list, one deployment's detail, repositories, unlocking, the
// repository switch, queued creations, and schema 5's indexes, on real
// SQLite files and real PostgreSQL databases (store_backends.hpp).
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/pg.hpp"
#include "actors/sqlite_store.hpp"
#include "actors/store.hpp"
#include "base/health.hpp"
#include "tests/actors/store_backends.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto timeout = std::chrono::seconds(30);

/// A fresh directory under the system's temp directory, removed afterwards.
struct scratch_dir {
  fs::path path;

  scratch_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path()
           / ("heaven-store-pages-" + std::to_string(::getpid()) + "-"
              + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }

  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// Runs `sql` on a connection of its own; column `column` of each row.
std::vector<std::string> rows_of(const fs::path& db, const std::string& sql,
                                 int column = 0) {
  sqlite3* conn = nullptr;
  std::vector<std::string> rows;
  BOOST_REQUIRE_EQUAL(sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE,
                                      nullptr),
                      SQLITE_OK);
  sqlite3_busy_timeout(conn, 5000);
  sqlite3_stmt* stmt = nullptr;
  auto rc = sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr);
  BOOST_REQUIRE_MESSAGE(rc == SQLITE_OK, sqlite3_errmsg(conn));
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    auto p = sqlite3_column_text(stmt, column);
    rows.emplace_back(p ? reinterpret_cast<const char*>(p) : "NULL");
  }
  BOOST_CHECK_MESSAGE(rc == SQLITE_DONE, sqlite3_errmsg(conn));
  sqlite3_finalize(stmt);
  sqlite3_close_v2(conn);
  return rows;
}

/// The same on the test's database, SQLite's or PostgreSQL's.
std::vector<std::string> rows_of(const test_db& db, const std::string& sql,
                                 int column = 0) {
  return db.query(sql, column);
}

template <class Db>
std::string one_of(const Db& db, const std::string& sql) {
  auto rows = rows_of(db, sql);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  return rows.front();
}

/// Runs SQL statements on a connection of its own.
void run_sql(const fs::path& db, const std::string& sql) {
  sqlite3* conn = nullptr;
  BOOST_REQUIRE_EQUAL(sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READWRITE,
                                      nullptr),
                      SQLITE_OK);
  sqlite3_busy_timeout(conn, 5000);
  char* msg = nullptr;
  auto rc = sqlite3_exec(conn, sql.c_str(), nullptr, nullptr, &msg);
  BOOST_CHECK_MESSAGE(rc == SQLITE_OK, (msg ? msg : "?"));
  sqlite3_free(msg);
  sqlite3_close_v2(conn);
}

/// The details of SQLite's plan for `sql`, in its order.
std::vector<std::string> plan_of(const fs::path& db, const std::string& sql) {
  return rows_of(db, "EXPLAIN QUERY PLAN " + sql, 3);
}

constexpr auto sha_a = "0123456789abcdef0123456789abcdef01234567";

/// A `deploy` of `repo` (app: its name after the '/') to `env` by alice,
/// GitHub deployment `github_id`.
inbound_event deploy_event(int64_t github_id, const std::string& repo,
                           const std::string& env) {
  inbound_event ev;
  ev.delivery = "d-" + std::to_string(github_id);
  ev.type = event_kind::deployment;
  ev.body = R"({"deployment":{"id":)" + std::to_string(github_id) + "}}";
  ev.repo = repo;
  auto& r = ev.deployment;
  r.github_id = github_id;
  r.repo = repo;
  r.app = repo.substr(repo.find('/') + 1);
  r.clone_url = "https://github.com/" + repo + ".git";
  r.sha = sha_a;
  r.ref = "main";
  r.environment = env;
  r.task = "deploy";
  r.description = "Deploy \"" + r.app + "\" — ü";
  r.actor = "alice";
  r.provider = "shell";
  r.environment_url = "https://" + r.app + ".example.com";
  r.payload_json = R"({"name":")" + r.app + R"(","n":)"
                   + std::to_string(github_id) + "}";
  return ev;
}

std::vector<int64_t> ids(const std::vector<deployment_row>& rows) {
  std::vector<int64_t> out;
  for (auto& r : rows)
    out.push_back(r.id);
  return out;
}

using id_list = std::vector<int64_t>;

deployment_filter filter(std::string repo, std::string env, std::string state,
                         int64_t before = 0, int32_t limit = 50) {
  deployment_filter f;
  f.repo = std::move(repo);
  f.environment = std::move(env);
  f.state = std::move(state);
  f.before = before;
  f.limit = limit;
  return f;
}

/// The SQL the store runs for the list filtered by one column, and for
/// one deployment's timeline (actors/sqlite_reads.cpp), as it runs them.
constexpr auto row_columns
  = "SELECT id, github_id, repo, app, environment, ref, sha, task, provider, "
    "actor, state, description, created_at, updated_at, finished_at";
const std::string list_by_repo_sql = std::string{row_columns}
                                     + " FROM deployments WHERE 1 AND repo = ? "
                                       "ORDER BY id DESC LIMIT ?";
const std::string list_by_state_sql
  = std::string{row_columns}
    + " FROM deployments WHERE 1 AND state = ? ORDER BY id DESC LIMIT ?";
const std::string timeline_sql
  = "SELECT body, created_at, settled_at, outcome FROM outbox WHERE kind = "
    "'status' AND stream = ? ORDER BY id";

struct store_fixture {
  explicit store_fixture(backend kind) : db(kind, dir.path / "heaven.sqlite3") {
  }

  scratch_dir dir; // Declared first: removed after the system is gone.
  test_db db;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<store_actor> stores;
  std::shared_ptr<health_board> health = std::make_shared<health_board>();

  ~store_fixture() {
    stop_all();
  }

  store_actor start() {
    auto s = db.sqlite() ? sys.spawn(store, db.string(), health, true)
                         : sys.spawn(open_store, db.opener(), health);
    stores.push_back(s);
    return s;
  }

  void stop_all() {
    for (auto& s : stores) {
      self->monitor(s);
      self->send_exit(s, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {},
                    caf::after(timeout) >> [] { BOOST_FAIL("store hangs"); });
    }
    stores.clear();
  }

  /// Asks `s` and fails the test on an error.
  template <class T, class... Ts>
  T ask(const store_actor& s, Ts&&... xs) {
    T out{};
    self->request(s, timeout, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  /// Asks `s` for an error; the error's text ("" when it answered).
  template <class T, class... Ts>
  std::string ask_error(const store_actor& s, Ts&&... xs) {
    std::string out;
    self->request(s, timeout, std::forward<Ts>(xs)...)
      .receive([&](T&) {}, [&](caf::error& e) { out = sys.render(e); });
    return out;
  }

  /// Eight deployments, written through the store's contract:
  ///  1 octo/app production success   5 octo/lib staging success
  ///  2 octo/lib production failure   6 octo/app production error (busy)
  ///  3 octo/app staging queued       7 octo/app qa success
  ///  4 octo/app production running   8 octo/lib production queued
  void write_eight(store_backend& st) {
    committed_rows rows;
    auto add = [&](int64_t n, const std::string& repo, const std::string& env) {
      auto res = st.accept(deploy_event(n, repo, env), rows);
      BOOST_REQUIRE_EQUAL(res.deployment_id, n);
      return n;
    };
    auto end = [&](int64_t id, deploy_state state) {
      BOOST_REQUIRE(st.start(id, "Deploying", rows));
      BOOST_REQUIRE(st.finish(id, provider_outcome{state, "Ended"}, rows));
    };
    end(add(1, "octo/app", "production"), deploy_state::success);
    end(add(2, "octo/lib", "production"), deploy_state::failure);
    add(3, "octo/app", "staging");
    BOOST_REQUIRE(
      st.start(add(4, "octo/app", "production"), "Deploying", rows));
    end(add(5, "octo/lib", "staging"), deploy_state::success);
    add(6, "octo/app", "production"); // "Already deploying."
    end(add(7, "octo/app", "qa"), deploy_state::success);
    add(8, "octo/lib", "production");
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(store_pages_suite)

// -- the filtered list
// ---------------------------------------------------------

STORE_CASE(the_list_filters_by_each_field_alone_and_combined) {
  auto opened = db.open();
  auto& st = *opened;
  write_eight(st);
  auto list = [&](deployment_filter f) { return ids(st.list(f)); };
  BOOST_TEST(list(filter("", "", "")) == (id_list{8, 7, 6, 5, 4, 3, 2, 1}));
  // Each filter alone.
  BOOST_TEST(list(filter("octo/app", "", "")) == (id_list{7, 6, 4, 3, 1}));
  BOOST_TEST(list(filter("octo/lib", "", "")) == (id_list{8, 5, 2}));
  BOOST_TEST(list(filter("", "production", "")) == (id_list{8, 6, 4, 2, 1}));
  BOOST_TEST(list(filter("", "staging", "")) == (id_list{5, 3}));
  BOOST_TEST(list(filter("", "", "success")) == (id_list{7, 5, 1}));
  BOOST_TEST(list(filter("", "", "queued")) == (id_list{8, 3}));
  BOOST_TEST(list(filter("", "", "running")) == (id_list{4}));
  BOOST_TEST(list(filter("", "", "failure")) == (id_list{2}));
  BOOST_TEST(list(filter("", "", "error")) == (id_list{6}));
  BOOST_TEST(list(filter("", "", "", 6)) == (id_list{5, 4, 3, 2, 1}));
  BOOST_TEST(list(filter("", "", "", 0, 2)) == (id_list{8, 7}));
  // Combined.
  BOOST_TEST(list(filter("octo/app", "production", "")) == (id_list{6, 4, 1}));
  BOOST_TEST(list(filter("octo/app", "production", "success")) == (id_list{1}));
  BOOST_TEST(list(filter("octo/lib", "", "queued")) == (id_list{8}));
  BOOST_TEST(list(filter("", "staging", "success")) == (id_list{5}));
  BOOST_TEST(list(filter("", "production", "error")) == (id_list{6}));
  BOOST_TEST(list(filter("octo/app", "", "", 6)) == (id_list{4, 3, 1}));
  BOOST_TEST(list(filter("", "production", "", 4, 1)) == (id_list{2}));
  BOOST_TEST(list(filter("octo/app", "production", "success", 2, 5))
             == (id_list{1}));
  BOOST_TEST(list(filter("octo/app", "production", "success", 1)).empty());
  // What no row has: a state, a repository, an environment, a combination.
  BOOST_TEST(list(filter("", "", "received")).empty());
  BOOST_TEST(list(filter("", "", "in_progress")).empty());
  BOOST_TEST(list(filter("octo/none", "", "")).empty());
  BOOST_TEST(list(filter("", "qa", "failure")).empty());
  BOOST_TEST(list(filter("octo/lib", "", "running")).empty());
  // None for a limit of zero or less (SQLite's LIMIT -1 would be all).
  BOOST_TEST(list(filter("", "", "", 0, 0)).empty());
  BOOST_TEST(list(filter("", "", "", 0, -1)).empty());
  BOOST_TEST(list(filter("octo/app", "", "", 0, -5)).empty());
  // The count-only list is the unfiltered one.
  BOOST_TEST(ids(st.list(int32_t{3})) == (id_list{8, 7, 6}));
  BOOST_TEST(st.list(int32_t{0}).empty());
}

STORE_CASE(a_listed_row_has_every_field_of_its_deployment) {
  auto opened = db.open();
  auto& st = *opened;
  write_eight(st);
  auto rows = st.list(filter("octo/lib", "production", "failure"));
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  auto& x = rows[0];
  BOOST_TEST(x.id == 2);
  BOOST_TEST(x.github_id == 2);
  BOOST_TEST(x.repo == "octo/lib");
  BOOST_TEST(x.app == "lib");
  BOOST_TEST(x.environment == "production");
  BOOST_TEST(x.ref == "main");
  BOOST_TEST(x.sha == sha_a);
  BOOST_TEST(x.task == "deploy");
  BOOST_TEST(x.provider == "shell");
  BOOST_TEST(x.actor == "alice");
  BOOST_TEST(to_string(x.state) == "failure");
  BOOST_TEST(x.description == "Ended");
  BOOST_TEST(x.created_at
             == one_of(db, "SELECT created_at FROM deployments WHERE id = 2"));
  BOOST_TEST(x.finished_at
             == one_of(db, "SELECT finished_at FROM deployments WHERE id = 2"));
  BOOST_TEST(x.updated_at
             == one_of(db, "SELECT updated_at FROM deployments WHERE id = 2"));
  BOOST_TEST(!x.finished_at.empty());
  // Unfinished: no finished_at.
  auto queued = st.list(filter("octo/lib", "production", "queued"));
  BOOST_REQUIRE_EQUAL(queued.size(), 1u);
  BOOST_TEST(queued[0].finished_at == "");
  BOOST_TEST(queued[0].description
             == "Queued main (0123456) for production by alice");
}

STORE_CASE(pages_before_the_last_id_cover_everything_once) {
  auto opened = db.open();
  auto& st = *opened;
  write_eight(st);
  for (auto f : {filter("", "", ""), filter("octo/app", "", ""),
                 filter("", "production", ""), filter("", "", "success")}) {
    auto all = ids(st.list(f));
    BOOST_REQUIRE(!all.empty());
    for (int32_t size : {1, 2, 3}) {
      auto page = f;
      page.limit = size;
      std::vector<int64_t> seen;
      std::vector<size_t> sizes;
      for (;;) {
        auto got = ids(st.list(page));
        if (got.empty())
          break;
        sizes.push_back(got.size());
        seen.insert(seen.end(), got.begin(), got.end());
        page.before = got.back();
        BOOST_REQUIRE(sizes.size() <= all.size());
      }
      // In order, none twice, none left out; every page full but the last.
      BOOST_TEST(seen == all);
      for (size_t i = 0; i + 1 < sizes.size(); ++i)
        BOOST_TEST(sizes[i] == static_cast<size_t>(size));
      BOOST_TEST(sizes.size() == (all.size() + size - 1) / size);
    }
  }
}

STORE_CASE(the_store_actor_lists_by_filter) {
  {
    auto opened = db.open();
    auto& st = *opened;
    write_eight(st);
  }
  auto s = start();
  auto list = [&](deployment_filter f) {
    return ids(ask<std::vector<deployment_row>>(s, list_atom::value, f));
  };
  BOOST_TEST(list(filter("", "", "")) == (id_list{8, 7, 6, 5, 4, 3, 2, 1}));
  BOOST_TEST(list(filter("octo/app", "", "")) == (id_list{7, 6, 4, 3, 1}));
  BOOST_TEST(list(filter("", "staging", "")) == (id_list{5, 3}));
  BOOST_TEST(list(filter("", "", "queued")) == (id_list{8, 3}));
  BOOST_TEST(list(filter("octo/app", "production", "running")) == (id_list{4}));
  BOOST_TEST(list(filter("", "", "", 3)) == (id_list{2, 1}));
  BOOST_TEST(list(filter("", "", "", 0, 3)) == (id_list{8, 7, 6}));
  BOOST_TEST(list(filter("", "", "", 6, 3)) == (id_list{5, 4, 3}));
  BOOST_TEST(list(filter("", "", "", 0, 0)).empty());
  BOOST_TEST(list(filter("", "", "received")).empty());
  // A deployment accepted through the actor is listed first.
  auto res = ask<accept_result>(s, accept_atom::value,
                                deploy_event(9, "octo/lib", "qa"));
  BOOST_TEST(res.deployment_id == 9);
  BOOST_TEST(list(filter("octo/lib", "", "queued")) == (id_list{9, 8}));
}

// -- one deployment
// ------------------------------------------------------------

STORE_CASE(a_missing_deployment_is_not_found) {
  auto opened = db.open();
  auto& st = *opened;
  auto d = st.detail(1);
  BOOST_TEST(!d.found);
  BOOST_TEST(d.row.id == 0);
  BOOST_TEST(d.row.repo == "");
  BOOST_TEST(d.statuses.empty());
  BOOST_TEST(d.started_at == "");
  BOOST_TEST(d.current_sha == "");
  write_eight(st);
  BOOST_TEST(!st.detail(9).found);
  BOOST_TEST(!st.detail(0).found);
  BOOST_TEST(!st.detail(-1).found);
  BOOST_TEST(st.detail(8).found);
}

STORE_CASE(a_deployment_that_ran_shows_its_request_and_timeline) {
  auto opened = db.open();
  auto& st = *opened;
  committed_rows rows;
  auto ev = deploy_event(41, "octo/app", "production");
  auto id = st.accept(ev, rows).deployment_id;
  BOOST_REQUIRE_EQUAL(id, 1);
  // Another deployment's statuses are not its own (d1 is no prefix of d11).
  for (int64_t n = 42; n < 52; ++n)
    st.accept(deploy_event(n, "octo/lib", "env" + std::to_string(n)), rows);
  BOOST_REQUIRE(st.start(id, "Deploying main to production", rows));
  BOOST_REQUIRE(
    st.finish(id, provider_outcome{deploy_state::success, "Deployed"}, rows));
  auto d = st.detail(id);
  BOOST_REQUIRE(d.found);
  BOOST_TEST(d.row.id == 1);
  BOOST_TEST(d.row.github_id == 41);
  BOOST_TEST(d.row.repo == "octo/app");
  BOOST_TEST(d.row.environment == "production");
  BOOST_TEST(to_string(d.row.state) == "success");
  BOOST_TEST(d.row.description == "Deployed");
  BOOST_TEST(!d.row.finished_at.empty());
  // The request as it was accepted.
  auto& r = d.request;
  auto& x = ev.deployment;
  BOOST_TEST(r.github_id == x.github_id);
  BOOST_TEST(r.repo == x.repo);
  BOOST_TEST(r.clone_url == x.clone_url);
  BOOST_TEST(r.sha == x.sha);
  BOOST_TEST(r.ref == x.ref);
  BOOST_TEST(r.environment == x.environment);
  BOOST_TEST(r.task == x.task);
  BOOST_TEST(r.description == x.description);
  BOOST_TEST(r.actor == x.actor);
  BOOST_TEST(r.app == x.app);
  BOOST_TEST(r.provider == x.provider);
  BOOST_TEST(r.environment_url == x.environment_url);
  BOOST_TEST(r.payload_json == R"({"name":"app","n":41})");
  BOOST_TEST(d.started_at
             == one_of(db, "SELECT started_at FROM deployments WHERE id = 1"));
  BOOST_TEST(d.started_at.size() == 24u);
  // Queued, in progress, success, in order, each as its outbox row.
  BOOST_REQUIRE_EQUAL(d.statuses.size(), 3u);
  std::vector<std::string> seen;
  for (auto& e : d.statuses)
    seen.push_back(e.state + ": " + e.description);
  BOOST_TEST(
    seen
    == (std::vector<std::string>{
      "queued: Queued main (0123456) for production by alice",
      "in_progress: Deploying main to production", "success: Deployed"}));
  auto queued_at = rows_of(db, "SELECT created_at FROM outbox WHERE kind = "
                               "'status' AND stream = 'd1' ORDER BY id");
  BOOST_REQUIRE_EQUAL(queued_at.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    BOOST_TEST(std::to_string(d.statuses[i].queued_ms) == queued_at[i]);
    BOOST_TEST(d.statuses[i].queued_ms > 0);
    BOOST_TEST(d.statuses[i].settled_ms == 0);
    BOOST_TEST(d.statuses[i].outcome == "");
  }
  // It put its sha there.
  BOOST_TEST(d.current_sha == sha_a);
  // The first status is settled: its time and outcome show.
  outbox_change change;
  change.settled = {{std::stoll(one_of(db, "SELECT min(id) FROM outbox WHERE "
                                           "stream = 'd1'")),
                     "delivered"}};
  st.change_outbox(change, rows);
  auto after = st.detail(id);
  BOOST_REQUIRE_EQUAL(after.statuses.size(), 3u);
  BOOST_TEST(after.statuses[0].outcome == "delivered");
  BOOST_TEST(after.statuses[0].settled_ms >= after.statuses[0].queued_ms);
  BOOST_TEST(std::to_string(after.statuses[0].settled_ms)
             == one_of(db, "SELECT settled_at FROM outbox WHERE stream = 'd1' "
                           "AND outcome IS NOT NULL"));
  BOOST_TEST(after.statuses[1].settled_ms == 0);
  BOOST_TEST(after.statuses[1].outcome == "");
  BOOST_TEST(after.statuses[2].outcome == "");
}

STORE_CASE(a_waiting_deployment_shows_what_runs_there_now) {
  auto opened = db.open();
  auto& st = *opened;
  committed_rows rows;
  auto first = deploy_event(1, "octo/app", "production");
  BOOST_REQUIRE_EQUAL(st.accept(first, rows).deployment_id, 1);
  BOOST_REQUIRE(st.start(1, "Deploying", rows));
  BOOST_REQUIRE(
    st.finish(1, provider_outcome{deploy_state::success, "Deployed"}, rows));
  auto second = deploy_event(2, "octo/app", "production");
  second.deployment.sha = std::string(40, 'b');
  BOOST_REQUIRE_EQUAL(st.accept(second, rows).deployment_id, 2);
  auto staging = deploy_event(3, "octo/app", "staging");
  BOOST_REQUIRE_EQUAL(st.accept(staging, rows).deployment_id, 3);
  auto d = st.detail(2);
  BOOST_REQUIRE(d.found);
  BOOST_TEST(to_string(d.row.state) == "queued");
  BOOST_TEST(d.row.sha == std::string(40, 'b'));
  BOOST_TEST(d.started_at == "");
  BOOST_TEST(d.current_sha == sha_a); // Production's revision, not its own.
  BOOST_REQUIRE_EQUAL(d.statuses.size(), 1u);
  BOOST_TEST(d.statuses[0].state == "queued");
  // Nothing deployed to staging yet.
  BOOST_TEST(st.detail(3).current_sha == "");
}

STORE_CASE(the_store_actor_reads_one_deployment) {
  auto s = start();
  auto res = ask<accept_result>(s, accept_atom::value,
                                deploy_event(7, "octo/app", "production"));
  BOOST_REQUIRE_EQUAL(res.deployment_id, 1);
  BOOST_REQUIRE(
    ask<bool>(s, start_atom::value, int64_t{1}, std::string{"Deploying"}));
  BOOST_REQUIRE(ask<bool>(s, finish_atom::value, int64_t{1},
                          provider_outcome{deploy_state::success, "Deployed"}));
  auto d = ask<deployment_detail>(s, detail_atom::value, int64_t{1});
  BOOST_REQUIRE(d.found);
  BOOST_TEST(d.row.github_id == 7);
  BOOST_TEST(d.request.payload_json == R"({"name":"app","n":7})");
  BOOST_REQUIRE_EQUAL(d.statuses.size(), 3u);
  BOOST_TEST(d.statuses[0].state == "queued");
  BOOST_TEST(d.statuses[1].state == "in_progress");
  BOOST_TEST(d.statuses[1].description == "Deploying");
  BOOST_TEST(d.statuses[2].state == "success");
  BOOST_TEST(d.current_sha == sha_a);
  BOOST_TEST(!ask<deployment_detail>(s, detail_atom::value, int64_t{2}).found);
}

// -- repositories, locks, creations
// ---------------------------------------------

STORE_CASE(repositories_are_listed_and_switched) {
  auto s = start();
  ask<accept_result>(s, accept_atom::value,
                     deploy_event(1, "octo/lib", "production"));
  ask<accept_result>(s, accept_atom::value,
                     deploy_event(2, "octo/app", "production"));
  auto repos = ask<std::vector<repository_record>>(s, repos_atom::value);
  BOOST_REQUIRE_EQUAL(repos.size(), 2u);
  BOOST_TEST(repos[0].repo == "octo/app");
  BOOST_TEST(repos[0].active);
  BOOST_TEST(repos[1].repo == "octo/lib");
  BOOST_TEST(repos[1].active);
  auto lib_seen = repos[1].first_seen;
  BOOST_TEST(lib_seen.size() == 24u);
  BOOST_TEST(ask<bool>(s, switch_atom::value, std::string{"octo/lib"}, false));
  repos = ask<std::vector<repository_record>>(s, repos_atom::value);
  BOOST_REQUIRE_EQUAL(repos.size(), 2u);
  BOOST_TEST(repos[0].active);
  BOOST_TEST(!repos[1].active);
  BOOST_TEST(repos[1].first_seen == lib_seen);
  // A disabled repository's deployments are ignored.
  BOOST_TEST(ask<accept_result>(s, accept_atom::value,
                                deploy_event(3, "octo/lib", "staging"))
               .ignored);
  // Switching one heaven never heard of records it.
  BOOST_TEST(ask<bool>(s, switch_atom::value, std::string{"octo/new"}, false));
  BOOST_TEST(ask<bool>(s, switch_atom::value, std::string{"octo/lib"}, true));
  repos = ask<std::vector<repository_record>>(s, repos_atom::value);
  BOOST_REQUIRE_EQUAL(repos.size(), 3u);
  BOOST_TEST(repos[1].repo == "octo/lib");
  BOOST_TEST(repos[1].active);
  BOOST_TEST(repos[2].repo == "octo/new");
  BOOST_TEST(!repos[2].active);
  BOOST_TEST(repos[2].first_seen.size() == 24u);
  BOOST_TEST(one_of(db, db.sqlite()
                          ? "SELECT group_concat(repo || '=' || active, ' ') "
                            "FROM (SELECT * FROM repositories ORDER BY repo)"
                          : "SELECT string_agg(repo || '=' || active, ' ' "
                            "ORDER BY repo) FROM repositories")
             == "octo/app=1 octo/lib=1 octo/new=0");
}

STORE_CASE(unlock_says_whether_a_lock_was_removed) {
  auto s = start();
  auto lock = deploy_event(1, "octo/app", "production");
  lock.deployment.task = "deploy:lock";
  lock.lock_action = lock_task::lock;
  BOOST_REQUIRE(
    to_string(ask<accept_result>(s, accept_atom::value, lock).lock_state)
    == "locked");
  BOOST_REQUIRE_EQUAL(ask<std::vector<env_lock>>(s, locks_atom::value).size(),
                      1u);
  auto unlock = [&](std::string repo, std::string env) {
    return ask<bool>(s, unlock_atom::value, std::move(repo), std::move(env));
  };
  BOOST_TEST(!unlock("octo/app", "staging"));
  BOOST_TEST(!unlock("octo/lib", "production"));
  BOOST_TEST(ask<std::vector<env_lock>>(s, locks_atom::value).size() == 1u);
  BOOST_TEST(unlock("octo/app", "production"));
  BOOST_TEST(ask<std::vector<env_lock>>(s, locks_atom::value).empty());
  BOOST_TEST(one_of(db, "SELECT count(*) FROM locks") == "0");
  BOOST_TEST(!unlock("octo/app", "production"));
}

STORE_CASE(a_creation_is_queued_each_time_and_handed_on) {
  auto s = start();
  caf::scoped_actor inbox{sys};
  auto sink = caf::actor_cast<outbox_actor>(inbox->address());
  auto before = ask<std::vector<outbox_row>>(s, subscribe_atom::value,
                                             std::string{"deploy"}, sink);
  BOOST_TEST(before.empty());
  auto sha = std::string(40, 'c');
  auto body = R"({"ref":")" + sha + R"(","environment":"production",)"
              + R"("task":"deploy:migrations","description":"by alice"})";
  auto_deployment x{"octo/app", "app", "production", sha, body};
  auto expected = nlohmann::json{{"repo", "octo/app"},
                                 {"app", "app"},
                                 {"environment", "production"},
                                 {"sha", sha},
                                 {"request", nlohmann::json::parse(body)}};
  // Twice is two rows (unlike a claim), each handed on once committed.
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(ask<bool>(s, create_atom::value, x));
    std::vector<outbox_row> got;
    inbox->receive(
      [&](outbox_atom, std::vector<outbox_row>& rows) { got = rows; },
      caf::after(timeout) >> [] { BOOST_FAIL("no row was handed on"); });
    BOOST_REQUIRE_EQUAL(got.size(), 1u);
    BOOST_TEST(got[0].kind == "deploy");
    BOOST_TEST(got[0].stream == "octo/app:app:production");
    BOOST_TEST(nlohmann::json::parse(got[0].body) == expected);
    BOOST_TEST(got[0].id
               == std::stoll(one_of(db, "SELECT max(id) FROM outbox")));
  }
  auto stored = rows_of(db, "SELECT stream || ' ' || body FROM outbox WHERE "
                            "kind = 'deploy' AND settled_at IS NULL "
                            "ORDER BY id");
  BOOST_REQUIRE_EQUAL(stored.size(), 2u);
  BOOST_TEST(stored[0] == stored[1]);
  BOOST_TEST(one_of(db, "SELECT count(*) FROM auto_deploys") == "0");
  // A body that is no JSON object is refused, and nothing is written.
  for (auto bad : {"not json", "[1,2]", "\"text\"", ""}) {
    auto refused = x;
    refused.body = bad;
    auto e = ask_error<bool>(s, create_atom::value, refused);
    BOOST_TEST(e.find("is not a JSON object") != std::string::npos, e);
  }
  BOOST_TEST(one_of(db, "SELECT count(*) FROM outbox") == "2");
  bool more = false;
  inbox->receive([&](outbox_atom, std::vector<outbox_row>&) { more = true; },
                 caf::after(std::chrono::seconds(0)) >> [] {});
  BOOST_TEST(!more);
  // A refused request says nothing of the disk: the store stays healthy,
  // and the next creation is queued.
  BOOST_TEST(health->problems().empty());
  BOOST_TEST(ask<bool>(s, create_atom::value, x));
  BOOST_TEST(one_of(db, "SELECT count(*) FROM outbox WHERE kind = 'deploy'")
             == "3");
}

// -- schema 5
// ------------------------------------------------------------------

SQLITE_CASE(the_pages_queries_read_through_their_indexes) {
  {
    sqlite_store st{db.string(), open_mode::create};
    write_eight(st);
  }
  BOOST_TEST(plan_of(db, list_by_repo_sql)
             == (std::vector<std::string>{
               "SEARCH deployments USING INDEX deployments_repo_id (repo=?)"}));
  BOOST_TEST(plan_of(db, list_by_state_sql)
             == (std::vector<std::string>{"SEARCH deployments USING INDEX "
                                          "deployments_state_id (state=?)"}));
  BOOST_TEST(plan_of(db, timeline_sql)
             == (std::vector<std::string>{
               "SEARCH outbox USING INDEX outbox_status_stream (stream=?)"}));
  // The SQL above is what the store runs: it lists and reads the same.
  sqlite_store st{db.string(), open_mode::existing};
  BOOST_TEST(ids(st.list(filter("octo/app", "", "", 0, 50)))
             == (id_list{7, 6, 4, 3, 1}));
}

POSTGRESQL_CASE(the_pages_queries_read_through_their_indexes_on_postgresql) {
  {
    auto opened = db.open();
    write_eight(*opened);
  }
  // PostgreSQL's generic plan (without costs) for `sql` with parameters
  // `args`, as actors/pg_reads.cpp runs it: eight rows fit in one page, so
  // the sequential scan that is cheapest for them is switched off.
  auto plan_of = [&](const std::string& sql, const std::string& args) {
    pg::connection conn{db.url()};
    conn.exec("SET enable_seqscan = off; SET plan_cache_mode = "
              "force_generic_plan; PREPARE q AS "
              + sql);
    auto res = conn.query("EXPLAIN (COSTS OFF) EXECUTE q(" + args + ")");
    std::vector<std::string> out;
    for (int i = 0; i < res.rows(); ++i)
      out.push_back(res.text(i, 0));
    return out;
  };
  auto list_sql = [](const std::string& column) {
    return std::string{row_columns} + " FROM deployments WHERE true AND "
           + column + " = $1 ORDER BY id DESC LIMIT $2";
  };
  BOOST_TEST(plan_of(list_sql("repo"), "'octo/app', 50")
             == (std::vector<std::string>{
               "Limit",
               "  ->  Index Scan Backward using deployments_repo_id on "
               "deployments",
               "        Index Cond: (repo = $1)"}));
  BOOST_TEST(plan_of(list_sql("state"), "'queued', 50")
             == (std::vector<std::string>{
               "Limit",
               "  ->  Index Scan Backward using deployments_state_id on "
               "deployments",
               "        Index Cond: (state = $1)"}));
  BOOST_TEST(plan_of("SELECT body, created_at, settled_at, outcome FROM outbox "
                     "WHERE kind = 'status' AND stream = $1 ORDER BY id",
                     "'d1'")
             == (std::vector<std::string>{
               "Index Scan using outbox_status_stream on outbox",
               "  Index Cond: (stream = $1)"}));
  // The SQL above is what the store runs: it lists the same.
  BOOST_TEST(ids(db.open_existing()->list(filter("octo/app", "", "", 0, 50)))
             == (id_list{7, 6, 4, 3, 1}));
}

SQLITE_CASE(a_version_4_database_is_migrated_to_5) {
  {
    sqlite_store st{db.string(), open_mode::create};
    write_eight(st);
  }
  // What version 5 added taken away: the file as heaven 4 left it.
  run_sql(db, "DROP INDEX deployments_repo_id; DROP INDEX "
              "deployments_state_id; DROP INDEX outbox_status_stream; "
              "PRAGMA user_version=4;");
  auto indexes = [&] {
    return rows_of(db, "SELECT name FROM sqlite_master WHERE type = 'index' "
                       "AND name IN ('deployments_repo_id', "
                       "'deployments_state_id', 'outbox_status_stream') "
                       "ORDER BY name");
  };
  BOOST_REQUIRE(indexes().empty());
  BOOST_TEST(plan_of(db, list_by_repo_sql)
             != (std::vector<std::string>{
               "SEARCH deployments USING INDEX deployments_repo_id (repo=?)"}));
  auto s = start();
  auto rows = ask<std::vector<deployment_row>>(s, list_atom::value,
                                               filter("octo/app", "", ""));
  BOOST_TEST(ids(rows) == (id_list{7, 6, 4, 3, 1}));
  BOOST_TEST(one_of(db, "PRAGMA user_version") == "5");
  BOOST_TEST(
    indexes()
    == (std::vector<std::string>{"deployments_repo_id", "deployments_state_id",
                                 "outbox_status_stream"}));
  BOOST_TEST(one_of(db, "SELECT sql FROM sqlite_master WHERE name = "
                        "'outbox_status_stream'")
             == "CREATE INDEX outbox_status_stream\n  ON outbox(stream, id) "
                "WHERE kind = 'status'");
  BOOST_TEST(plan_of(db, list_by_repo_sql)
             == (std::vector<std::string>{
               "SEARCH deployments USING INDEX deployments_repo_id (repo=?)"}));
  BOOST_TEST(plan_of(db, list_by_state_sql)
             == (std::vector<std::string>{"SEARCH deployments USING INDEX "
                                          "deployments_state_id (state=?)"}));
  BOOST_TEST(plan_of(db, timeline_sql)
             == (std::vector<std::string>{
               "SEARCH outbox USING INDEX outbox_status_stream (stream=?)"}));
  // Nothing else changed.
  BOOST_TEST(one_of(db, "SELECT count(*) FROM deployments") == "8");
  BOOST_TEST(
    ask<deployment_detail>(s, detail_atom::value, int64_t{1}).statuses.size()
    == 3u);
  // Opening it again migrates nothing.
  stop_all();
  start();
  BOOST_TEST(ids(ask<std::vector<deployment_row>>(
               stores.back(), list_atom::value, filter("", "", "success")))
             == (id_list{7, 5, 1}));
  BOOST_TEST(one_of(db, "PRAGMA user_version") == "5");
}

BOOST_AUTO_TEST_SUITE_END()
