// Tests of the STORE actor against real SQLite files and real PostgreSQL
// databases (store_backends.hpp): each case runs on both unless it is about
// SQLite itself.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/ingress_answers.hpp"
#include "actors/store.hpp"
#include "base/health.hpp"
#include "tests/actors/store_backends.hpp"
#include "tests/support/logger.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto timeout = std::chrono::seconds(30);

/// A fresh directory under the system's temp directory, removed afterwards.
struct temp_dir {
  fs::path path;

  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path()
           / ("heaven-store-" + std::to_string(::getpid()) + "-"
              + std::to_string(counter++) + "-"
              + std::to_string(
                std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// Runs one SQL query on its own connection; the first column of each row.
std::vector<std::string> query(const fs::path& db, const std::string& sql) {
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
    auto p = sqlite3_column_text(stmt, 0);
    rows.emplace_back(p ? reinterpret_cast<const char*>(p) : "NULL");
  }
  BOOST_CHECK_MESSAGE(rc == SQLITE_DONE, sqlite3_errmsg(conn));
  sqlite3_finalize(stmt);
  sqlite3_close_v2(conn);
  return rows;
}

/// The same on the test's database, SQLite's or PostgreSQL's.
std::vector<std::string> query(const test_db& db, const std::string& sql) {
  return db.query(sql);
}

template <class Db>
std::string query_one(const Db& db, const std::string& sql) {
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
  ev.type = event_kind::deployment;
  ev.body = R"({"deployment":{"id":)" + std::to_string(r.github_id) + "}}";
  ev.deployment = std::move(r);
  return ev;
}

inbound_event other_event(std::string delivery, std::string type) {
  inbound_event ev;
  ev.delivery = std::move(delivery);
  ev.type = parse<event_kind>(type).value();
  ev.body = R"({"zen":"Keep it logically awesome."})";
  return ev;
}

void check_same(const deployment_request& x, const deployment_request& y) {
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

bool is_timestamp(const nlohmann::json& x) {
  static const std::regex re{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"};
  return x.is_string() && std::regex_match(x.get<std::string>(), re);
}

/// Runs SQL (one or more statements) on its own connection, creating the
/// file if needed.
void exec_sql(const fs::path& db, const std::string& sql) {
  sqlite3* conn = nullptr;
  BOOST_REQUIRE_EQUAL(
    sqlite3_open_v2(db.c_str(), &conn,
                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
    SQLITE_OK);
  sqlite3_busy_timeout(conn, 5000);
  char* msg = nullptr;
  auto rc = sqlite3_exec(conn, sql.c_str(), nullptr, nullptr, &msg);
  BOOST_CHECK_MESSAGE(rc == SQLITE_OK, (msg ? msg : "?"));
  sqlite3_free(msg);
  sqlite3_close_v2(conn);
}

/// A deployment event of `task` by `actor` to octo/app's `env`, with the
/// lock action the receiver would set.
inbound_event task_event(std::string delivery, int64_t github_id,
                         std::string env, std::string task, std::string actor,
                         std::string lock_action = "",
                         std::string description = "") {
  auto r = make_request(github_id, std::move(env));
  r.task = std::move(task);
  r.actor = std::move(actor);
  if (!description.empty())
    r.description = std::move(description);
  auto ev = deployment_event(std::move(delivery), std::move(r));
  ev.repo = ev.deployment.repo;
  ev.lock_action
    = parse<lock_task>(lock_action.empty() ? "none" : lock_action).value();
  return ev;
}

/// A non-deployment event naming `repo`.
inbound_event repo_event(std::string delivery, std::string type,
                         std::string repo) {
  auto ev = other_event(std::move(delivery), std::move(type));
  ev.repo = std::move(repo);
  return ev;
}

void check_lock(const env_lock& l, const std::string& repo,
                const std::string& env, const std::string& actor,
                const std::string& reason, int64_t deployment_id) {
  BOOST_CHECK_EQUAL(l.repo, repo);
  BOOST_CHECK_EQUAL(l.environment, env);
  BOOST_CHECK_EQUAL(l.actor, actor);
  BOOST_CHECK_EQUAL(l.reason, reason);
  BOOST_CHECK_EQUAL(l.deployment_id, deployment_id);
  BOOST_CHECK(is_timestamp(l.locked_at));
}

bool same_lock(const env_lock& x, const env_lock& y) {
  return x.repo == y.repo && x.environment == y.environment
         && x.actor == y.actor && x.reason == y.reason
         && x.locked_at == y.locked_at && x.deployment_id == y.deployment_id;
}

/// The schema heaven wrote as version 1, as it was.
constexpr const char* v1_schema = R"sql(
CREATE TABLE deliveries(
  delivery TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at TEXT NOT NULL);
CREATE TABLE deployments(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery TEXT REFERENCES deliveries(delivery),
  github_id INTEGER,
  repo TEXT,
  app TEXT,
  environment TEXT,
  ref TEXT,
  sha TEXT,
  task TEXT,
  provider TEXT,
  actor TEXT,
  state TEXT,
  description TEXT,
  request TEXT,
  created_at TEXT,
  updated_at TEXT,
  finished_at TEXT);
CREATE INDEX deployments_repo_environment ON deployments(repo, environment);
CREATE TABLE repositories(
  repo TEXT PRIMARY KEY,
  active INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT);
PRAGMA user_version=1;
)sql";

/// A version 1 database as heaven 1 left it: one unfinished deployment of
/// octo/app, one finished one of octo/old, octo/old disabled.
void write_v1_database(const fs::path& db) {
  exec_sql(db, "PRAGMA journal_mode=WAL");
  exec_sql(db, v1_schema);
  exec_sql(db, R"sql(
INSERT INTO deliveries VALUES('d-1', 'deployment', '{"deployment":{"id":11}}',
  '2026-01-02T03:04:05.006Z');
INSERT INTO deliveries VALUES('d-2', 'deployment', '{"deployment":{"id":12}}',
  '2026-01-02T03:04:06.006Z');
INSERT INTO deliveries VALUES('p-1', 'ping', '{}', '2026-01-02T03:04:07.006Z');
INSERT INTO deployments(delivery, github_id, repo, app, environment, ref, sha,
  task, provider, actor, state, description, request, created_at, updated_at)
  VALUES('d-1', 11, 'octo/app', 'app', 'production', 'main',
  '0123456789abcdef0123456789abcdef01234567', 'deploy', 'shell', 'hubot',
  'running', 'Running',
  '{"github_id":11,"repo":"octo/app","clone_url":"https://github.com/octo/app.git","sha":"0123456789abcdef0123456789abcdef01234567","ref":"main","environment":"production","task":"deploy","description":"v1","actor":"hubot","app":"app","provider":"shell","environment_url":"","payload_json":"{\"name\":\"app\"}"}',
  '2026-01-02T03:04:05.006Z', '2026-01-02T03:04:05.500Z');
INSERT INTO deployments(delivery, github_id, repo, app, environment, ref, sha,
  task, provider, actor, state, description, request, created_at, updated_at,
  finished_at)
  VALUES('d-2', 12, 'octo/old', 'old', 'qa', 'main',
  'abcdef0123456789abcdef0123456789abcdef01', 'deploy', 'shell', 'hubot',
  'success', 'Deployed', '{}', '2026-01-02T03:04:06.006Z',
  '2026-01-02T03:04:08.000Z', '2026-01-02T03:04:08.000Z');
INSERT INTO repositories VALUES('octo/app', 1, '2026-01-02T03:04:05.006Z');
INSERT INTO repositories VALUES('octo/old', 0, '2026-01-02T03:04:06.006Z');
)sql");
}

/// What heaven's schema version 2 and 3 added to version 1, as it was.
constexpr const char* v2_v3_schema = R"sql(
CREATE TABLE locks(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  locked_at TEXT NOT NULL,
  deployment_id INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(repo, environment));
CREATE TABLE revisions(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY(repo, environment));
CREATE TABLE auto_deploys(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment, sha));
ALTER TABLE deployments ADD COLUMN started_at TEXT;
CREATE INDEX deployments_app_environment_state
  ON deployments(app, environment, state);
CREATE TABLE outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  stream TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  outcome TEXT);
CREATE INDEX outbox_unsettled ON outbox(kind, id) WHERE settled_at IS NULL;
PRAGMA user_version=3;
)sql";

/// A version 3 database where heaven's deployments and the revisions
/// GitHub's deployment_status events recorded disagree. `sha(c)` is 40
/// times `c`.
void write_v3_database(const fs::path& db) {
  auto sha = [](char c) { return "'" + std::string(40, c) + "'"; };
  exec_sql(db, "PRAGMA journal_mode=WAL");
  exec_sql(db, v1_schema);
  exec_sql(db, v2_v3_schema);
  // Deployment id, GitHub id, app, environment, task, sha, state and when
  // it finished.
  auto deployment = [&](int id, const std::string& app, const std::string& env,
                        const std::string& task, char c,
                        const std::string& state, const std::string& finished) {
    auto n = std::to_string(id);
    return "INSERT INTO deployments(id, github_id, repo, app, environment, "
           "ref, sha, task, provider, actor, state, description, request, "
           "created_at, updated_at, finished_at) VALUES("
           + n + ", 10" + n + ", 'octo/app', '" + app + "', '" + env
           + "', 'main', " + sha(c) + ", '" + task + "', 'shell', 'alice', '"
           + state + "', '', '{\"payload_json\":\"{\\\"n\\\":" + n
           + "}\"}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', "
           + (finished.empty() ? "NULL" : "'2026-01-01T" + finished + "Z'")
           + ");\n";
  };
  auto revision = [&](const std::string& repo, const std::string& env, char c,
                      const std::string& at) {
    return "INSERT INTO revisions VALUES('" + repo + "', '" + env + "', "
           + sha(c) + ", '2026-01-01T" + at + "Z');\n";
  };
  exec_sql(
    db,
    // production: an older success, the newest success (2), then a
    // failure and another task; another tool deployed b after 2.
    deployment(1, "app", "production", "deploy", '1', "success", "10:00:00.000")
      + deployment(2, "app", "production", "deploy", 'a', "success",
                   "11:00:00.000")
      + deployment(3, "app", "production", "deploy", '9', "failure",
                   "12:00:00.000")
      + deployment(4, "app", "production", "deploy:migrations", '8', "success",
                   "13:00:00.000")
      + revision("octo/app", "production", 'b', "12:30:00.000")
      // staging: heaven deployed c after the d recorded there (its
      // GitHub event still to come); then one is running.
      + deployment(5, "app", "staging", "deploy", 'c', "success",
                   "11:00:00.000")
      + deployment(8, "app", "staging", "deploy", '7', "running", "")
      + revision("octo/app", "staging", 'd', "10:30:00.000")
      // qa: heaven's deploy of e, recorded again by its GitHub event.
      + deployment(6, "app", "qa", "deploy", 'e', "success", "11:00:00.000")
      + revision("octo/app", "qa", 'e', "11:00:05.000")
      // Another app of the repository: only heaven's deploy.
      + deployment(7, "worker", "production", "deploy", 'f', "success",
                   "11:00:00.000")
      // A repository only another tool deploys.
      + revision("octo/lib", "production", 'g', "09:00:00.000"));
}

/// A temp directory, the test's database (SQLite's or PostgreSQL's), an
/// actor system and helpers to ask the store.
struct store_fixture {
  explicit store_fixture(backend kind) : db(kind, dir.path / "heaven.sqlite3") {
  }

  temp_dir dir; // Declared first: removed after the system is gone.
  test_db db;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<store_actor> stores;
  std::shared_ptr<health_board> health = std::make_shared<health_board>();

  ~store_fixture() {
    for (auto& s : stores)
      stop(s);
  }

  /// The store on the SQLite file `path`.
  store_actor start(const fs::path& path, bool notices = true) {
    auto s = sys.spawn(store, path.string(), health, notices);
    stores.push_back(s);
    return s;
  }

  /// The store on the test's database.
  store_actor start(const test_db& d, bool notices = true) {
    if (d.sqlite())
      return start(d.file(), notices);
    auto s = sys.spawn(open_store, d.opener(notices), health);
    stores.push_back(s);
    return s;
  }

  store_actor start() {
    return start(db);
  }

  /// Stops the store and waits until it is gone (and its database closed).
  void stop(const store_actor& s) {
    self->monitor(s);
    self->send_exit(s, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {},
                  caf::after(timeout) >> [] { BOOST_FAIL("store hangs"); });
  }

  caf::expected<accept_result> accept(const store_actor& s, inbound_event ev) {
    caf::expected<accept_result> out{caf::error{}};
    self->request(s, timeout, accept_atom::value, std::move(ev))
      .receive([&](accept_result r) { out = r; },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  accept_result accept_ok(const store_actor& s, inbound_event ev) {
    auto r = accept(s, std::move(ev));
    if (!r)
      BOOST_FAIL("store answered " << sys.render(r.error()));
    return *r;
  }

  /// The store's answers to `batch`, accepted together (the intake's form).
  std::vector<accept_result> accept_batch(const store_actor& s,
                                          std::vector<inbound_event> batch) {
    std::vector<accept_result> res;
    self->request(s, timeout, accept_atom::value, std::move(batch))
      .receive([&](std::vector<accept_result>& r) { res = std::move(r); },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return res;
  }

  /// The newest `n` deployments as `GET /deployments` renders them.
  nlohmann::json list(const store_actor& s, int32_t n) {
    std::string out;
    self->request(s, timeout, list_atom::value, n)
      .receive(
        [&](std::vector<deployment_row>& x) { out = deployments_json(x); },
        [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return nlohmann::json::parse(out);
  }

  std::vector<unfinished_deployment> pending(const store_actor& s) {
    std::vector<unfinished_deployment> out;
    self->request(s, timeout, pending_atom::value)
      .receive([&](std::vector<unfinished_deployment> x) { out = x; },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  std::vector<unfinished_deployment>
  pending_after(const store_actor& s, int64_t after, int32_t limit) {
    std::vector<unfinished_deployment> out;
    self->request(s, timeout, pending_atom::value, after, limit)
      .receive([&](std::vector<unfinished_deployment> x) { out = x; },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  std::vector<env_lock> locks(const store_actor& s) {
    std::vector<env_lock> out;
    self->request(s, timeout, locks_atom::value)
      .receive([&](std::vector<env_lock> x) { out = std::move(x); },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  std::vector<deployed_environment> latest(const store_actor& s,
                                           const std::string& repo) {
    std::vector<deployed_environment> out;
    self->request(s, timeout, latest_atom::value, repo)
      .receive([&](std::vector<deployed_environment> x) { out = x; },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  bool claim(const store_actor& s, const std::string& repo,
             const std::string& app, const std::string& env,
             const std::string& sha) {
    bool out = false;
    auto_deployment x{repo, app, env, sha,
                      R"({"ref":")" + sha + R"(","environment":")" + env
                        + R"(","task":"deploy"})"};
    self->request(s, timeout, claim_atom::value, x)
      .receive([&](bool y) { out = y; },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  /// The store accepts the `deployment_status` event `n` as delivery
  /// `delivery`.
  accept_result notice(const store_actor& s, std::string delivery,
                       deployment_notice n) {
    inbound_event ev;
    ev.delivery = std::move(delivery);
    ev.type = event_kind::deployment_status;
    ev.body = R"({"deployment_status":{}})";
    ev.repo = n.repo;
    ev.notice = std::move(n);
    return accept_ok(s, std::move(ev));
  }

  /// The revision of (repo, env) in the database ("" when none).
  std::string revision(const std::string& repo, const std::string& env) {
    auto rows = query(db, "SELECT sha FROM revisions WHERE repo = '" + repo
                            + "' AND environment = '" + env + "'");
    return rows.empty() ? std::string{} : rows.front();
  }

  /// Stops every store and forgets them (their databases are closed).
  void stop_all() {
    for (auto& s : stores)
      stop(s);
    stores.clear();
  }

  /// Marks deployment `id` running; whether it was queued.
  bool start_one(const store_actor& s, int64_t id,
                 const std::string& description) {
    bool out = false;
    self->request(s, timeout, start_atom::value, id, description)
      .receive([&](bool x) { out = x; },
               [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
    return out;
  }

  /// Ends deployment `id`; whether this ended it.
  caf::expected<bool> finish(const store_actor& s, int64_t id,
                             std::string state, std::string description) {
    caf::expected<bool> out{caf::error{}};
    self
      ->request(s, timeout, finish_atom::value, id,
                provider_outcome{parse<deploy_state>(state).value(),
                                 std::move(description)})
      .receive([&](bool x) { out = x; },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  /// Moves deployment `id` to `state` the way heaven does: "running" starts
  /// it, a terminal state ends it, "queued" is where it already is.
  void update(const store_actor& s, int64_t id, std::string state,
              std::string description) {
    if (state == "running")
      start_one(s, id, description);
    else if (state != "queued")
      finish(s, id, std::move(state), std::move(description));
  }

  /// The outbox rows of `stream`, oldest first, as (state, description)
  /// of their JSON bodies.
  std::vector<std::string> statuses(const std::string& stream) {
    std::vector<std::string> out;
    for (auto& body : query(db, "SELECT body FROM outbox WHERE kind = "
                                "'status' AND stream = '"
                                  + stream + "' ORDER BY id")) {
      auto j = nlohmann::json::parse(body);
      out.push_back(j.at("state").get<std::string>() + ": "
                    + j.at("description").get<std::string>());
    }
    return out;
  }

  /// Heaven deploys `sha` of octo/app (app `app`) to `env` as GitHub
  /// deployment `github_id` of `task`, and the provider ends it in `state`;
  /// its local id.
  int64_t heaven_deploys(const store_actor& s, int64_t github_id,
                         const std::string& sha, const std::string& state,
                         const std::string& env = "production",
                         const std::string& task = "deploy",
                         const std::string& app = "app") {
    auto ev = task_event("hd-" + std::to_string(github_id), github_id, env,
                         task, "alice");
    ev.deployment.sha = sha;
    ev.deployment.app = app;
    ev.deployment.payload_json = R"({"name":")" + app + R"(","github_id":)"
                                 + std::to_string(github_id) + "}";
    auto id = accept_ok(s, ev).deployment_id;
    BOOST_REQUIRE(start_one(s, id, "Running"));
    auto ended = finish(s, id, state, "Done");
    BOOST_REQUIRE(ended && *ended);
    return id;
  }

  /// The revisions, by repository, app and environment: "repo app
  /// environment sha previous_sha github_id deployment_id" ("-" for NULL).
  std::vector<std::string> revisions() {
    return query(db, "SELECT repo || ' ' || app || ' ' || environment || ' ' "
                     "|| sha || ' ' || coalesce(previous_sha, '-') || ' ' || "
                     "coalesce(CAST(github_id AS TEXT), '-') || ' ' || "
                     "coalesce(CAST(deployment_id AS TEXT), '-') "
                     "FROM revisions ORDER BY repo, app, environment");
  }

  /// The notice rows, oldest first: "stream base".
  std::vector<std::string> notice_bases() {
    return query(db, "SELECT stream || ' ' || " + db.json_text("body", "base")
                       + " FROM outbox WHERE kind = 'notice' ORDER BY id");
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(store_suite)

STORE_CASE(accepts_a_deployment_event) {
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
                    "d-1|4242|queued|octo/app|" + req.sha);
  BOOST_CHECK_EQUAL(to_string(r.state), "queued");
  BOOST_CHECK_EQUAL(r.description,
                    "Queued main (0123456) for production by hubot");
  // Its `queued` status waits in the outbox, written in the same
  // transaction.
  auto row = nlohmann::json::parse(query_one(
    db, "SELECT body FROM outbox WHERE kind = 'status' AND stream = 'd1' "
        "AND settled_at IS NULL"));
  BOOST_CHECK_EQUAL(
    row.dump(), nlohmann::json({{"repo", "octo/app"},
                                {"github_id", 4242},
                                {"deployment_id", 1},
                                {"environment", "production"},
                                {"state", "queued"},
                                {"description", "Queued main (0123456) "
                                                "for production by hubot"},
                                {"environment_url", "https://app.example.com"}})
                  .dump());
  BOOST_CHECK_EQUAL(query_one(db, "SELECT repo || '|' || active "
                                  "FROM repositories"),
                    "octo/app|1");
  auto received = query_one(db, "SELECT received_at FROM deliveries");
  BOOST_CHECK(is_timestamp(received));
}

STORE_CASE(redelivery_is_a_duplicate_and_changes_nothing) {
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

/// Events accepted together (the intake's batches): one answer each, in
/// order, each as if it came alone after the ones before it.
STORE_CASE(a_batch_is_answered_event_by_event_in_order) {
  auto s = start();
  std::vector<inbound_event> batch{
    deployment_event("b-1", make_request(11, "production")),
    other_event("b-2", "ping"),
    deployment_event("b-1", make_request(12, "staging")), // A redelivery.
    deployment_event("b-3", make_request(13, "qa")),
  };
  auto res = accept_batch(s, std::move(batch));
  BOOST_REQUIRE_EQUAL(res.size(), 4u);
  BOOST_CHECK_EQUAL(res[0].deployment_id, 1);
  BOOST_CHECK(!res[0].duplicate);
  BOOST_CHECK_EQUAL(res[1].deployment_id, 0);
  BOOST_CHECK(!res[1].duplicate);
  BOOST_CHECK(res[2].duplicate);
  BOOST_CHECK_EQUAL(res[2].deployment_id, 0);
  BOOST_CHECK_EQUAL(res[3].deployment_id, 2);
  for (auto& r : res)
    BOOST_CHECK(r.unstored.empty());
  BOOST_CHECK_EQUAL(to_string(res[3].state), "queued");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "3");
  BOOST_CHECK(query(db, "SELECT environment FROM deployments ORDER BY id")
              == (std::vector<std::string>{"production", "qa"}));
}

/// The write-ahead log is copied back into the database file after the
/// commits' answers (not inside the commit): it stays bounded all the same,
/// and nothing it held is lost.
SQLITE_CASE(the_log_stays_bounded_while_commits_go_on) {
  auto s = start();
  const std::string zen(2000, 'z');
  std::uintmax_t largest = 0;
  for (int b = 0; b < 60; ++b) {
    std::vector<inbound_event> batch;
    for (int i = 0; i < 50; ++i) {
      batch.push_back(other_event(
        "log-" + std::to_string(b) + "-" + std::to_string(i), "ping"));
      batch.back().body = R"({"zen":")" + zen + R"("})";
    }
    for (auto& r : accept_batch(s, std::move(batch)))
      BOOST_REQUIRE(r.unstored.empty());
    std::error_code ec;
    auto size = fs::file_size(db.file().string() + "-wal", ec);
    if (!ec)
      largest = std::max(largest, size);
  }
  // 3000 events of 2 KB: ~6 MB were written. Without checkpoints the log
  // would hold them all; with them it starts over past 250 pages (1 MB).
  BOOST_CHECK_MESSAGE(largest > 0, "no log was seen");
  BOOST_CHECK_MESSAGE(largest < 2 * 1024 * 1024,
                      "the log grew to " << largest << " bytes");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "3000");
}

/// One event of a batch the database refuses: only it is unstored, the
/// others are recorded and answered. (SQLite undoes the event's savepoint;
/// PostgreSQL undoes the batch's transaction and the store runs its events
/// again, each in a transaction of its own.)
STORE_CASE(a_refused_event_of_a_batch_leaves_the_others_recorded) {
  auto s = start();
  // Any request makes the store create its tables first.
  accept_ok(s, other_event("before", "ping"));
  if (db.sqlite())
    query(db, "CREATE TRIGGER refuse_boom BEFORE INSERT ON deployments "
              "WHEN NEW.delivery = 'boom' "
              "BEGIN SELECT RAISE(ABORT, 'boom is refused'); END");
  else
    db.exec("CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'boom is refused'; END $$ LANGUAGE plpgsql; "
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON deployments "
            "FOR EACH ROW WHEN (NEW.delivery = 'boom') "
            "EXECUTE FUNCTION refuse_boom()");
  std::vector<inbound_event> batch{
    deployment_event("ok-1", make_request(21, "production")),
    deployment_event("boom", make_request(22, "staging")),
    deployment_event("ok-2", make_request(23, "qa")),
  };
  auto res = accept_batch(s, std::move(batch));
  BOOST_REQUIRE_EQUAL(res.size(), 3u);
  BOOST_CHECK(res[0].unstored.empty());
  BOOST_CHECK(res[0].deployment_id > 0);
  BOOST_CHECK_MESSAGE(res[1].unstored.find("boom is refused")
                        != std::string::npos,
                      res[1].unstored);
  BOOST_CHECK(res[2].unstored.empty());
  BOOST_CHECK(res[2].deployment_id > 0);
  // Nothing of the refused one stayed, not even its delivery.
  BOOST_CHECK(query(db, "SELECT delivery FROM deliveries ORDER BY delivery")
              == (std::vector<std::string>{"before", "ok-1", "ok-2"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "2");
  BOOST_CHECK_EQUAL(
    query_one(db, "SELECT count(*) FROM outbox WHERE stream "
                  "NOT IN ('d' || "
                    + std::to_string(res[0].deployment_id) + ", 'd' || "
                    + std::to_string(res[2].deployment_id) + ")"),
    "0");
}

STORE_CASE(other_events_are_recorded_without_a_deployment) {
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

STORE_CASE(updates_set_state_and_finished_at) {
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
  auto& d1 = rows[3];
  BOOST_CHECK_EQUAL(d1["state"], "running");
  BOOST_CHECK_EQUAL(d1["description"], "Deploying now");
  BOOST_CHECK(d1["finished_at"].is_null());
  BOOST_CHECK(is_timestamp(d1["updated_at"]));
  BOOST_CHECK(d1["updated_at"] >= d1["created_at"]);
  auto& d2 = rows[2];
  BOOST_CHECK_EQUAL(d2["state"], "success");
  BOOST_CHECK_EQUAL(d2["description"], "Deployed");
  BOOST_CHECK(is_timestamp(d2["finished_at"]));
  auto& d3 = rows[1];
  BOOST_CHECK_EQUAL(d3["state"], "failure");
  BOOST_CHECK(is_timestamp(d3["finished_at"]));
  auto& d4 = rows[0];
  BOOST_CHECK_EQUAL(d4["state"], "error");
  BOOST_CHECK_EQUAL(d4["description"], "Timed out");
  BOOST_CHECK(is_timestamp(d4["finished_at"]));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "4");
  // Output that is not UTF-8 still lists (with a replacement character).
  update(s, 1, "failure", "bad byte \xff here");
  BOOST_CHECK_EQUAL(list(s, 10)[3]["description"], "bad byte \uFFFD here");
}

STORE_CASE(list_is_newest_first_with_exact_fields) {
  auto s = start();
  for (int i = 1; i <= 5; ++i) {
    accept_ok(s, deployment_event("d-" + std::to_string(i),
                                  make_request(100 + i, "production")));
    if (i < 5) // Ended, so that the next one is not "Already deploying.".
      update(s, i, "success", "Deployed");
  }
  auto rows = list(s, 3);
  BOOST_REQUIRE_EQUAL(rows.size(), 3u);
  BOOST_CHECK_EQUAL(rows[0]["id"], 5);
  BOOST_CHECK_EQUAL(rows[1]["id"], 4);
  BOOST_CHECK_EQUAL(rows[2]["id"], 3);
  const std::set<std::string> expected{
    "id",    "github_id",   "repo",       "app",        "environment",
    "ref",   "sha",         "task",       "provider",   "actor",
    "state", "description", "created_at", "updated_at", "finished_at"};
  for (auto& row : rows) {
    std::set<std::string> keys;
    for (auto& [k, v] : row.items())
      keys.insert(k);
    BOOST_CHECK(keys == expected);
  }
  auto req = make_request(105, "production");
  auto& top = rows[0];
  BOOST_CHECK_EQUAL(top["github_id"], 105);
  BOOST_CHECK_EQUAL(top["repo"], req.repo);
  BOOST_CHECK_EQUAL(top["app"], req.app);
  BOOST_CHECK_EQUAL(top["environment"], req.environment);
  BOOST_CHECK_EQUAL(top["ref"], req.ref);
  BOOST_CHECK_EQUAL(top["sha"], req.sha);
  BOOST_CHECK_EQUAL(top["task"], req.task);
  BOOST_CHECK_EQUAL(top["provider"], req.provider);
  BOOST_CHECK_EQUAL(top["actor"], req.actor);
  BOOST_CHECK_EQUAL(top["state"], "queued");
  BOOST_CHECK_EQUAL(top["description"],
                    "Queued main (0123456) for production by hubot");
  BOOST_CHECK(is_timestamp(top["created_at"]));
  BOOST_CHECK(is_timestamp(top["updated_at"]));
  BOOST_CHECK(top["finished_at"].is_null());
  BOOST_CHECK_EQUAL(list(s, 100).size(), 5u);
  BOOST_CHECK_EQUAL(list(s, 0), nlohmann::json::array());
  BOOST_CHECK_EQUAL(list(s, -1), nlohmann::json::array());
}

STORE_CASE(pending_rebuilds_unfinished_requests) {
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
  BOOST_CHECK_EQUAL(to_string(xs[0].state), "queued");
  check_same(xs[0].request, reqs[0]);
  BOOST_CHECK_EQUAL(xs[1].id, 3);
  BOOST_CHECK_EQUAL(to_string(xs[1].state), "queued");
  check_same(xs[1].request, reqs[2]);
  BOOST_CHECK_EQUAL(xs[2].id, 4);
  BOOST_CHECK_EQUAL(to_string(xs[2].state), "running");
  check_same(xs[2].request, reqs[3]);
}

STORE_CASE(pending_after_reads_a_page_of_the_unfinished) {
  auto s = start();
  std::vector<deployment_request> reqs;
  for (int i = 1; i <= 6; ++i) {
    reqs.push_back(make_request(i, "env" + std::to_string(i)));
    accept_ok(s, deployment_event("d-" + std::to_string(i), reqs.back()));
  }
  update(s, 2, "success", "done");
  update(s, 4, "running", "Running");
  auto ids = [](const std::vector<unfinished_deployment>& xs) {
    std::vector<int64_t> out;
    for (auto& x : xs)
      out.push_back(x.id);
    return out;
  };
  BOOST_TEST(ids(pending_after(s, 0, 2)) == (std::vector<int64_t>{1, 3}));
  auto page = pending_after(s, 3, 2);
  BOOST_TEST(ids(page) == (std::vector<int64_t>{4, 5}));
  BOOST_REQUIRE_EQUAL(page.size(), 2u);
  BOOST_CHECK_EQUAL(to_string(page[0].state), "running");
  check_same(page[1].request, reqs[4]);
  BOOST_TEST(ids(pending_after(s, 5, 10)) == (std::vector<int64_t>{6}));
  BOOST_TEST(pending_after(s, 6, 10).empty());
  BOOST_TEST(pending_after(s, 0, 0).empty());
}

STORE_CASE(data_survives_reopening) {
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
  BOOST_CHECK_EQUAL(
    accept_ok(s, deployment_event("d-3", make_request(9, "qa"))).deployment_id,
    3);
}

SQLITE_CASE(database_is_in_wal_mode_with_a_schema_version) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping"));
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA journal_mode"), "wal");
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "5");
  BOOST_CHECK(fs::exists(dir.path / "heaven.sqlite3-wal"));
  BOOST_CHECK_EQUAL(
    query_one(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                  "AND name = 'deployments_repo_environment'"),
    "1");
}

POSTGRESQL_CASE(the_database_has_a_schema_version) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping"));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT version FROM heaven_schema"), "1");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM pg_indexes WHERE "
                                  "indexname = 'deployments_repo_environment'"),
                    "1");
}

SQLITE_CASE(sqlite_errors_become_error_replies) {
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

POSTGRESQL_CASE(postgresql_errors_become_error_replies) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping"));
  // Break the schema behind the store's back.
  db.exec("DROP TABLE deployments CASCADE");
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

SQLITE_CASE(unopenable_database_answers_with_errors) {
  auto s = start(dir.path / "missing" / "heaven.sqlite3");
  auto r = accept(s, other_event("p-1", "ping"));
  BOOST_REQUIRE(!r);
  auto what = sys.render(r.error());
  BOOST_CHECK(what.find("store: cannot open") != std::string::npos);
}

// -- locks -------------------------------------------------------------------

STORE_CASE(lock_task_locks_a_free_environment) {
  auto s = start();
  auto r = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                   "alice", "lock", "incident 42"));
  BOOST_CHECK(!r.duplicate);
  BOOST_CHECK(!r.ignored);
  BOOST_CHECK_EQUAL(r.deployment_id, 1);
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "locked");
  check_lock(r.lock, "octo/app", "production", "alice", "incident 42", 1);
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(same_lock(all[0], r.lock));
  // The lock task is a deployment record too (the receiver finishes it).
  BOOST_CHECK_EQUAL(list(s, 10)[0]["task"], "deploy:lock");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT actor || '|' || reason || '|' || "
                                  "deployment_id FROM locks"),
                    "alice|incident 42|1");
}

STORE_CASE(lock_held_by_another_is_already_locked_and_unchanged) {
  auto s = start();
  auto first = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                       "alice", "lock", "incident 42"));
  auto second = accept_ok(s, task_event("l-2", 2, "production", "deploy:lock",
                                        "bob", "lock", "my turn"));
  BOOST_CHECK_EQUAL(second.deployment_id, 2);
  BOOST_CHECK_EQUAL(to_string(second.lock_state), "already_locked");
  BOOST_CHECK(same_lock(second.lock, first.lock));
  check_lock(second.lock, "octo/app", "production", "alice", "incident 42", 1);
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(same_lock(all[0], first.lock));
}

STORE_CASE(relock_by_the_holder_keeps_locked_at) {
  auto s = start();
  auto first = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                       "alice", "lock", "incident 42"));
  // Make the original time unmistakable.
  query(db, "UPDATE locks SET locked_at = '2020-01-01T00:00:00.000Z'");
  auto again = accept_ok(s, task_event("l-2", 2, "production", "deploy:lock",
                                       "alice", "lock", "still incident 42"));
  BOOST_CHECK_EQUAL(to_string(again.lock_state), "locked");
  check_lock(again.lock, "octo/app", "production", "alice", "still incident 42",
             2);
  BOOST_CHECK_EQUAL(again.lock.locked_at, "2020-01-01T00:00:00.000Z");
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(same_lock(all[0], again.lock));
}

STORE_CASE(unlock_removes_the_lock_and_reports_it) {
  auto s = start();
  auto locked = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                        "alice", "lock", "incident 42"));
  // Anyone may unlock.
  auto r = accept_ok(s, task_event("u-1", 2, "production", "deploy:unlock",
                                   "bob", "unlock", "all clear"));
  BOOST_CHECK_EQUAL(r.deployment_id, 2);
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "unlocked");
  BOOST_CHECK(same_lock(r.lock, locked.lock));
  BOOST_CHECK(locks(s).empty());
  auto none = accept_ok(s, task_event("u-2", 3, "production", "deploy:unlock",
                                      "bob", "unlock"));
  BOOST_CHECK_EQUAL(none.deployment_id, 3);
  BOOST_CHECK_EQUAL(to_string(none.lock_state), "not_locked");
  BOOST_CHECK_EQUAL(none.lock.repo, "octo/app");
  BOOST_CHECK_EQUAL(none.lock.environment, "production");
  BOOST_CHECK_EQUAL(none.lock.actor, "");
  BOOST_CHECK_EQUAL(none.lock.reason, "");
  BOOST_CHECK_EQUAL(none.lock.locked_at, "");
  BOOST_CHECK_EQUAL(none.lock.deployment_id, 0);
  // Free again: a new locker gets it.
  auto bob = accept_ok(s, task_event("l-2", 4, "production", "deploy:lock",
                                     "bob", "lock", "release"));
  BOOST_CHECK_EQUAL(to_string(bob.lock_state), "locked");
  check_lock(bob.lock, "octo/app", "production", "bob", "release", 4);
}

STORE_CASE(ordinary_tasks_see_the_lock_of_their_environment) {
  auto s = start();
  auto free = accept_ok(s, task_event("d-0", 1, "production", "deploy", "bob"));
  BOOST_CHECK_EQUAL(to_string(free.lock_state), "none");
  BOOST_CHECK_EQUAL(free.lock.actor, "");
  auto locked = accept_ok(s, task_event("l-1", 2, "production", "deploy:lock",
                                        "alice", "lock", "incident 42"));
  for (auto task : {"deploy", "deploy:migrations"}) {
    // Also the holder's own deployments: the receiver decides what to do.
    for (auto actor : {"bob", "alice"}) {
      auto r = accept_ok(s, task_event(std::string("d-") + task + actor, 3,
                                       "production", task, actor));
      BOOST_CHECK(r.deployment_id > 2);
      BOOST_CHECK_EQUAL(to_string(r.lock_state), "locked");
      BOOST_CHECK(same_lock(r.lock, locked.lock));
    }
  }
  // Another environment of the repository is free.
  BOOST_CHECK_EQUAL(
    to_string(accept_ok(s, task_event("d-s", 4, "staging", "deploy", "bob"))
                .lock_state),
    "none");
  // The same environment of another repository is free.
  auto other = task_event("d-o", 5, "production", "deploy", "bob");
  other.deployment.repo = other.repo = "octo/other";
  auto r = accept_ok(s, other);
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "none");
  BOOST_CHECK(r.deployment_id > 0);
  // The lock on octo/app is untouched.
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(same_lock(all[0], locked.lock));
}

STORE_CASE(a_redelivered_lock_task_changes_nothing) {
  auto s = start();
  accept_ok(s, task_event("l-1", 1, "production", "deploy:lock", "alice",
                          "lock", "incident 42"));
  accept_ok(s, task_event("u-1", 2, "production", "deploy:unlock", "alice",
                          "unlock"));
  auto again = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                       "alice", "lock", "incident 42"));
  BOOST_CHECK(again.duplicate);
  BOOST_CHECK_EQUAL(again.deployment_id, 0);
  BOOST_CHECK_EQUAL(to_string(again.lock_state), "none");
  BOOST_CHECK(locks(s).empty());
}

STORE_CASE(locks_are_listed_by_time_then_repo_and_environment) {
  auto s = start();
  int n = 0;
  for (auto [repo, env] : {std::pair{"octo/b", "production"},
                           {"octo/a", "staging"},
                           {"octo/a", "production"},
                           {"octo/c", "qa"}}) {
    ++n;
    auto ev = task_event("l-" + std::to_string(n), n, env, "deploy:lock",
                         "alice", "lock", "why " + std::to_string(n));
    ev.deployment.repo = ev.repo = repo;
    BOOST_CHECK_EQUAL(to_string(accept_ok(s, ev).lock_state), "locked");
  }
  query(db, "UPDATE locks SET locked_at = CASE repo "
            "WHEN 'octo/c' THEN '2020-01-01T00:00:00.000Z' "
            "ELSE '2021-01-01T00:00:00.000Z' END");
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 4u);
  BOOST_CHECK_EQUAL(all[0].repo + " " + all[0].environment, "octo/c qa");
  BOOST_CHECK_EQUAL(all[1].repo + " " + all[1].environment,
                    "octo/a production");
  BOOST_CHECK_EQUAL(all[2].repo + " " + all[2].environment, "octo/a staging");
  BOOST_CHECK_EQUAL(all[3].repo + " " + all[3].environment,
                    "octo/b production");
  BOOST_CHECK_EQUAL(all[3].reason, "why 1");
  BOOST_CHECK_EQUAL(all[3].deployment_id, 1);
}

STORE_CASE(locks_survive_reopening) {
  env_lock held;
  {
    auto s = start();
    held = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                   "alice", "lock", "incident 42"))
             .lock;
    stop_all();
  }
  auto s = start();
  auto all = locks(s);
  BOOST_REQUIRE_EQUAL(all.size(), 1u);
  BOOST_CHECK(same_lock(all[0], held));
  auto r = accept_ok(s, task_event("d-1", 2, "production", "deploy", "bob"));
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "locked");
  BOOST_CHECK(same_lock(r.lock, held));
  auto other = accept_ok(s, task_event("l-2", 3, "production", "deploy:lock",
                                       "bob", "lock", "mine"));
  BOOST_CHECK_EQUAL(to_string(other.lock_state), "already_locked");
  BOOST_CHECK(same_lock(other.lock, held));
}

// -- repositories
// --------------------------------------------------------------

STORE_CASE(every_event_naming_a_repository_records_it) {
  auto s = start();
  accept_ok(s, repo_event("s-1", "status", "octo/status"));
  accept_ok(s, repo_event("n-1", "deployment_status", "octo/notice"));
  accept_ok(s, repo_event("p-1", "ping", "octo/ping"));
  accept_ok(s, other_event("p-2", "ping")); // An organization's: no repo.
  accept_ok(s, task_event("d-1", 1, "production", "deploy", "bob"));
  accept_ok(s, repo_event("s-2", "status", "octo/status")); // Known already.
  // While the store runs: the command line reads the same file.
  auto repos = read_repositories(db);
  BOOST_REQUIRE_EQUAL(repos.size(), 4u);
  std::vector<std::string> names;
  for (auto& r : repos) {
    names.push_back(r.repo);
    BOOST_CHECK(r.active);
    BOOST_CHECK(is_timestamp(r.first_seen));
  }
  BOOST_CHECK((names
               == std::vector<std::string>{"octo/app", "octo/notice",
                                           "octo/ping", "octo/status"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT first_seen FROM repositories "
                                  "WHERE repo = 'octo/status'"),
                    query_one(db, "SELECT received_at FROM deliveries "
                                  "WHERE delivery = 's-1'"));
}

STORE_CASE(a_disabled_repository_is_ignored) {
  auto s = start();
  accept_ok(s, task_event("l-1", 1, "production", "deploy:lock", "alice",
                          "lock", "incident 42"));
  update(s, 1, "success", "locked");
  // Switched off from the command line while the store holds the file.
  set_repository_active(db, "octo/app", false);
  auto deploy = accept_ok(s,
                          task_event("d-1", 2, "production", "deploy", "bob"));
  BOOST_CHECK(!deploy.duplicate);
  BOOST_CHECK(deploy.ignored);
  BOOST_CHECK_EQUAL(deploy.deployment_id, 0);
  BOOST_CHECK_EQUAL(to_string(deploy.lock_state), "none");
  auto unlock = accept_ok(s, task_event("u-1", 3, "production", "deploy:unlock",
                                        "alice", "unlock"));
  BOOST_CHECK(unlock.ignored);
  BOOST_CHECK_EQUAL(to_string(unlock.lock_state), "none");
  BOOST_CHECK_EQUAL(locks(s).size(), 1u); // The lock stays.
  auto status = accept_ok(s, repo_event("s-1", "status", "octo/app"));
  BOOST_CHECK(status.ignored);
  // Only the lock task's deployment exists; nothing is pending.
  auto rows = list(s, 10);
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_CHECK_EQUAL(rows[0]["id"], 1);
  BOOST_CHECK(pending(s).empty());
  // The deliveries are recorded, so redeliveries are duplicates.
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "4");
  auto again = accept_ok(s,
                         task_event("d-1", 2, "production", "deploy", "bob"));
  BOOST_CHECK(again.duplicate);
  BOOST_CHECK(!again.ignored);
  auto repos = read_repositories(db);
  BOOST_REQUIRE_EQUAL(repos.size(), 1u);
  BOOST_CHECK(!repos[0].active);
  // Enabled again: a redelivery stays a duplicate, a new delivery deploys.
  set_repository_active(db, "octo/app", true);
  BOOST_CHECK(accept_ok(s, task_event("d-1", 2, "production", "deploy", "bob"))
                .duplicate);
  auto fresh = accept_ok(s,
                         task_event("d-2", 4, "production", "deploy", "bob"));
  BOOST_CHECK(!fresh.ignored);
  BOOST_CHECK_EQUAL(fresh.deployment_id, 2);
  BOOST_CHECK_EQUAL(to_string(fresh.lock_state), "locked");
  BOOST_CHECK(read_repositories(db)[0].active);
}

STORE_CASE(a_repository_disabled_before_heaven_heard_of_it) {
  auto s = start();
  accept_ok(s, other_event("p-1", "ping")); // The database exists.
  set_repository_active(db, "octo/new", false);
  auto repos = read_repositories(db);
  BOOST_REQUIRE_EQUAL(repos.size(), 1u);
  BOOST_CHECK_EQUAL(repos[0].repo, "octo/new");
  BOOST_CHECK(!repos[0].active);
  BOOST_CHECK(is_timestamp(repos[0].first_seen));
  auto ev = task_event("d-1", 1, "production", "deploy", "bob");
  ev.deployment.repo = "octo/new";
  ev.repo = ""; // Deployment events fall back to the deployment's repo.
  auto r = accept_ok(s, ev);
  BOOST_CHECK(r.ignored);
  BOOST_CHECK_EQUAL(r.deployment_id, 0);
  BOOST_CHECK_EQUAL(list(s, 10), nlohmann::json::array());
  // Switching keeps first_seen.
  set_repository_active(db, "octo/new", true);
  auto later = read_repositories(db);
  BOOST_REQUIRE_EQUAL(later.size(), 1u);
  BOOST_CHECK(later[0].active);
  BOOST_CHECK_EQUAL(later[0].first_seen, repos[0].first_seen);
}

// -- latest, claim, revision
// ---------------------------------------------------

STORE_CASE(latest_is_the_newest_successful_deploy_per_app_and_env) {
  auto s = start();
  auto sha = [](char c) { return std::string(40, c); };
  struct row {
    std::string repo, app, env, task, sha, state, lock_action;
  };
  std::vector<row> rows{
    {"octo/app", "app", "production", "deploy", sha('a'), "success", ""},
    {"octo/app", "app", "production", "deploy", sha('b'), "success", ""},
    {"octo/app", "app", "production", "deploy", sha('c'), "failure", ""},
    {"octo/app", "app", "production", "deploy:migrations", sha('d'), "success",
     ""},
    {"octo/app", "app", "qa", "deploy:migrations", sha('e'), "success", ""},
    {"octo/app", "app", "staging", "deploy", sha('f'), "success", ""},
    {"octo/app", "worker", "production", "deploy", sha('1'), "success", ""},
    {"octo/other", "app", "production", "deploy", sha('2'), "success", ""},
    {"octo/app", "app", "staging", "deploy", sha('3'), "running", ""},
    {"octo/app", "app", "staging", "deploy", sha('4'), "error", ""},
    // Locked last: a locked environment refuses every later deployment.
    {"octo/app", "app", "production", "deploy:lock", sha('e'), "success",
     "lock"},
  };
  int64_t n = 0;
  for (auto& x : rows) {
    ++n;
    auto ev = task_event("d-" + std::to_string(n), 100 + n, x.env, x.task,
                         "alice", x.lock_action, "lock " + std::to_string(n));
    ev.deployment.repo = ev.repo = x.repo;
    ev.deployment.app = x.app;
    ev.deployment.sha = x.sha;
    ev.deployment.payload_json = R"({"name":")" + x.app + R"(","n":)"
                                 + std::to_string(n) + "}";
    BOOST_REQUIRE_EQUAL(accept_ok(s, ev).deployment_id, n);
    update(s, n, x.state, "done");
  }
  // A request without a payload (an old or damaged record) gives "{}".
  query(db, "UPDATE deployments SET request = '{\"repo\":\"octo/app\"}' "
            "WHERE id = 6");
  auto xs = latest(s, "octo/app");
  BOOST_REQUIRE_EQUAL(xs.size(), 3u);
  BOOST_CHECK_EQUAL(xs[0].app, "app");
  BOOST_CHECK_EQUAL(xs[0].environment, "production");
  BOOST_CHECK_EQUAL(xs[0].sha, sha('b'));
  BOOST_CHECK_EQUAL(xs[0].payload_json, R"({"name":"app","n":2})");
  BOOST_CHECK_EQUAL(xs[0].github_id, 102);
  BOOST_CHECK_EQUAL(xs[0].deployment_id, 2);
  BOOST_CHECK(xs[0].locked);
  check_lock(xs[0].lock, "octo/app", "production", "alice", "lock 11", 11);
  BOOST_CHECK_EQUAL(xs[1].app, "app");
  BOOST_CHECK_EQUAL(xs[1].environment, "staging");
  BOOST_CHECK_EQUAL(xs[1].sha, sha('f'));
  BOOST_CHECK_EQUAL(xs[1].payload_json, "{}");
  BOOST_CHECK_EQUAL(xs[1].github_id, 106);
  BOOST_CHECK_EQUAL(xs[1].deployment_id, 6);
  BOOST_CHECK(!xs[1].locked);
  BOOST_CHECK_EQUAL(xs[1].lock.actor, "");
  BOOST_CHECK_EQUAL(xs[2].app, "worker");
  BOOST_CHECK_EQUAL(xs[2].environment, "production");
  BOOST_CHECK_EQUAL(xs[2].sha, sha('1'));
  BOOST_CHECK_EQUAL(xs[2].payload_json, R"({"name":"worker","n":7})");
  BOOST_CHECK_EQUAL(xs[2].deployment_id, 7);
  // Locks are per repository+environment, whatever the app.
  BOOST_CHECK(xs[2].locked);
  BOOST_CHECK_EQUAL(xs[2].lock.actor, "alice");
  auto other = latest(s, "octo/other");
  BOOST_REQUIRE_EQUAL(other.size(), 1u);
  BOOST_CHECK_EQUAL(other[0].sha, sha('2'));
  BOOST_CHECK(!other[0].locked);
  BOOST_CHECK(latest(s, "octo/none").empty());
}

STORE_CASE(an_auto_deployment_is_claimed_once) {
  auto sha = std::string(40, 'a');
  {
    auto s = start();
    BOOST_CHECK(claim(s, "octo/app", "app", "production", sha));
    BOOST_CHECK(!claim(s, "octo/app", "app", "production", sha));
    BOOST_CHECK(claim(s, "octo/app", "app", "staging", sha));
    BOOST_CHECK(claim(s, "octo/app", "worker", "production", sha));
    BOOST_CHECK(claim(s, "octo/other", "app", "production", sha));
    stop_all();
  }
  auto s = start();
  BOOST_CHECK(!claim(s, "octo/app", "app", "production", sha));
  BOOST_CHECK(!claim(s, "octo/app", "worker", "production", sha));
  BOOST_CHECK(claim(s, "octo/app", "app", "production", std::string(40, 'b')));
  BOOST_CHECK(is_timestamp(
    query_one(db, "SELECT claimed_at FROM auto_deploys WHERE sha = '"
                    + std::string(40, 'b') + "'")));
  // Every first claim, and only those, queued its creation with it.
  auto rows = query(db, "SELECT stream || ' ' || body FROM outbox WHERE "
                        "kind = 'deploy' ORDER BY id");
  BOOST_REQUIRE_EQUAL(rows.size(), 5u);
  auto first = rows[0].substr(rows[0].find(' ') + 1);
  BOOST_CHECK_EQUAL(rows[0].substr(0, rows[0].find(' ')),
                    "octo/app:app:production");
  BOOST_CHECK_EQUAL(
    nlohmann::json::parse(first),
    nlohmann::json(
      {{"repo", "octo/app"},
       {"app", "app"},
       {"environment", "production"},
       {"sha", sha},
       {"request",
        {{"ref", sha}, {"environment", "production"}, {"task", "deploy"}}}}));
  BOOST_CHECK(rows[4].find(std::string(40, 'b')) != std::string::npos);
  // A request that is not JSON is refused, and nothing is claimed.
  caf::expected<bool> refused{caf::error{}};
  self
    ->request(s, timeout, claim_atom::value,
              auto_deployment{"octo/app", "app", "qa", sha, "not json"})
    .receive([&](bool x) { refused = x; },
             [&](caf::error& e) { refused = std::move(e); });
  BOOST_CHECK(!refused);
  BOOST_CHECK(claim(s, "octo/app", "app", "qa", sha));
}

namespace {

deployment_notice make_notice(int64_t id, std::string state,
                              std::string sha = std::string(40, '1'),
                              std::string env = "production") {
  deployment_notice n;
  n.repo = "octo/app";
  n.app = "app";
  n.deployment_id = id;
  n.status_id = id * 10;
  n.state = std::move(state);
  n.description = "Done \"quoted\" — ü";
  n.log_url = "https://heaven.example/deployments/1/log?token=t";
  n.environment = std::move(env);
  n.task = "deploy";
  n.ref = "main";
  n.sha = std::move(sha);
  n.creator = "alice";
  n.chat_user = "alice";
  n.room = "ops";
  return n;
}

} // namespace

STORE_CASE(a_deployment_status_queues_its_notice_and_revision) {
  auto a = std::string(40, 'a');
  auto b = std::string(40, 'b');
  {
    auto s = start();
    // A start: its notice, no revision.
    notice(s, "ds-1", make_notice(7, "in_progress", a));
    BOOST_CHECK_EQUAL(revision("octo/app", "production"), "");
    // The first success records its revision; there was none before it.
    notice(s, "ds-2", make_notice(7, "success", a));
    BOOST_CHECK_EQUAL(revision("octo/app", "production"), a);
    // A redelivery changes nothing.
    BOOST_CHECK(notice(s, "ds-2", make_notice(7, "success", a)).duplicate);
    stop_all();
  }
  auto s = start();
  // After a restart the next success is compared with it, and records its
  // own.
  notice(s, "ds-3", make_notice(8, "success", b));
  BOOST_CHECK_EQUAL(revision("octo/app", "production"), b);
  // Failures, other tasks and other environments leave it alone.
  notice(s, "ds-4", make_notice(9, "failure", std::string(40, 'c')));
  auto migration = make_notice(10, "success", std::string(40, 'd'));
  migration.task = "deploy:migrations";
  notice(s, "ds-5", migration);
  notice(s, "ds-6", make_notice(11, "success", a, "staging"));
  BOOST_CHECK_EQUAL(revision("octo/app", "production"), b);
  BOOST_CHECK_EQUAL(revision("octo/app", "staging"), a);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM revisions"), "2");
  BOOST_CHECK(is_timestamp(query_one(
    db, "SELECT recorded_at FROM revisions WHERE environment = 'staging'")));
  // One notice row per accepted event, in a stream per deployment, with
  // the revision before it.
  auto rows = query(db, "SELECT stream || ' ' || "
                          + db.json_text("body", "notice.state") + " || ' ' || "
                          + db.json_text("body", "base")
                          + " FROM outbox WHERE kind = 'notice' ORDER BY id");
  std::vector<std::string> expected = {
    "octo/app#7 in_progress ", "octo/app#7 success ",
    "octo/app#8 success " + a, "octo/app#9 failure ",
    "octo/app#10 success ",    "octo/app#11 success "};
  BOOST_CHECK_EQUAL_COLLECTIONS(rows.begin(), rows.end(), expected.begin(),
                                expected.end());
  // The notice is all there, as the chat services will need it.
  auto body = nlohmann::json::parse(
    query_one(db, "SELECT body FROM outbox WHERE stream = 'octo/app#8'"));
  auto n = body.at("notice");
  BOOST_CHECK_EQUAL(n.at("description"), "Done \"quoted\" — ü");
  BOOST_CHECK_EQUAL(n.at("log_url"),
                    "https://heaven.example/deployments/1/log?token=t");
  BOOST_CHECK_EQUAL(n.at("status_id"), 80);
  BOOST_CHECK_EQUAL(n.at("chat_user"), "alice");
  BOOST_CHECK_EQUAL(n.at("room"), "ops");
  BOOST_CHECK_EQUAL(n.at("sha"), b);
  // A disabled repository's events queue nothing and record nothing.
  set_repository_active(db, "octo/app", false);
  BOOST_CHECK(
    notice(s, "ds-7", make_notice(12, "success", std::string(40, 'e')))
      .ignored);
  BOOST_CHECK_EQUAL(revision("octo/app", "production"), b);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox WHERE kind = "
                                  "'notice'"),
                    "6");
}

STORE_CASE(without_chat_services_no_notice_is_queued) {
  // heaven opens its store without notices when no chat service is
  // configured: a row no one would read is not written, the revision is.
  auto a = std::string(40, 'a');
  auto s = start(db, false);
  notice(s, "ds-1", make_notice(7, "in_progress", a));
  notice(s, "ds-2", make_notice(7, "success", a));
  BOOST_CHECK(notice(s, "ds-2", make_notice(7, "success", a)).duplicate);
  BOOST_CHECK_EQUAL(revision("octo/app", "production"), a);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries"), "2");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox"), "0");
  stop_all();
  // The same database opened with notices queues them again.
  auto t = start(db, true);
  notice(t, "ds-3", make_notice(8, "success", std::string(40, 'b')));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT stream || ' ' || "
                                    + db.json_text("body", "base")
                                    + " FROM outbox WHERE kind = 'notice'"),
                    "octo/app#8 " + a);
}

STORE_CASE(a_successful_deploy_records_its_revision_as_it_ends) {
  auto s = start();
  auto sha = [](char c) { return std::string(40, c); };
  // Failures and other tasks record nothing.
  heaven_deploys(s, 21, sha('1'), "failure");
  heaven_deploys(s, 22, sha('2'), "success", "production", "deploy:migrations");
  BOOST_CHECK(revisions().empty());
  auto id = heaven_deploys(s, 23, sha('a'), "success");
  BOOST_CHECK_EQUAL(id, 3);
  std::vector<std::string> expected{"octo/app app production " + sha('a')
                                    + " - 23 3"};
  BOOST_CHECK(revisions() == expected);
  // Recorded as the deployment ended: in the same write.
  BOOST_CHECK_EQUAL(query_one(db, "SELECT recorded_at FROM revisions"),
                    query_one(db, "SELECT finished_at FROM deployments "
                                  "WHERE id = 3"));
  // The next one replaces it, naming the sha it replaced; every app and
  // environment has its own.
  heaven_deploys(s, 24, sha('b'), "success");
  heaven_deploys(s, 25, sha('c'), "success", "staging");
  heaven_deploys(s, 26, sha('d'), "success", "production", "deploy", "worker");
  heaven_deploys(s, 27, sha('e'), "error");
  expected = {"octo/app app production " + sha('b') + " " + sha('a') + " 24 4",
              "octo/app app staging " + sha('c') + " - 25 5",
              "octo/app worker production " + sha('d') + " - 26 6"};
  BOOST_CHECK(revisions() == expected);
}

STORE_CASE(a_deploy_ends_only_with_its_revision) {
  auto s = start();
  auto r = accept_ok(s, task_event("d-1", 31, "production", "deploy", "bob"));
  BOOST_REQUIRE(start_one(s, r.deployment_id, "Running"));
  // A revision that cannot be written: the deployment does not end either.
  if (db.sqlite())
    query(db, "CREATE TRIGGER no_revisions BEFORE INSERT ON revisions "
              "BEGIN SELECT RAISE(ABORT, 'no revisions here'); END");
  else
    db.exec("CREATE FUNCTION no_revisions() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'no revisions here'; END $$; "
            "CREATE TRIGGER no_revisions BEFORE INSERT ON revisions "
            "FOR EACH ROW EXECUTE FUNCTION no_revisions()");
  auto refused = finish(s, r.deployment_id, "success", "Deployed");
  BOOST_REQUIRE(!refused);
  BOOST_CHECK(sys.render(refused.error()).find("no revisions here")
              != std::string::npos);
  BOOST_CHECK_EQUAL(query_one(db,
                              "SELECT state || ' ' || "
                              "coalesce(finished_at, '-') FROM deployments"),
                    "running -");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox WHERE kind = "
                                  "'status' AND "
                                    + db.json_text("body", "state")
                                    + " = 'success'"),
                    "0");
  BOOST_CHECK(revisions().empty());
  // Once it can be written, both are.
  query(db, db.sqlite() ? "DROP TRIGGER no_revisions"
                        : "DROP TRIGGER no_revisions ON revisions");
  auto ended = finish(s, r.deployment_id, "success", "Deployed");
  BOOST_REQUIRE(ended);
  BOOST_CHECK(*ended);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT state FROM deployments"), "success");
  std::vector<std::string> expected{
    "octo/app app production 0123456789abcdef0123456789abcdef01234567 - 31 1"};
  BOOST_CHECK(revisions() == expected);
}

STORE_CASE(githubs_status_of_heavens_own_deploy_moves_nothing) {
  auto s = start();
  auto a = std::string(40, 'a');
  auto b = std::string(40, 'b');
  heaven_deploys(s, 41, a, "success");
  heaven_deploys(s, 42, b, "success");
  auto recorded_at = query_one(db, "SELECT recorded_at FROM revisions");
  // GitHub's event for the deploy heaven recorded as it ended: the notice
  // compares with the sha that deploy replaced, as when the event recorded
  // it; so does the event redelivered by hand (a new delivery).
  notice(s, "ds-1", make_notice(42, "success", b));
  notice(s, "ds-2", make_notice(42, "success", b));
  // A late event of heaven's deploy before: replaced since, it moves
  // nothing back, and what it replaced is no longer known.
  notice(s, "ds-3", make_notice(41, "success", a));
  std::vector<std::string> expected{"octo/app app production " + b + " " + a
                                    + " 42 2"};
  BOOST_CHECK(revisions() == expected);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT recorded_at FROM revisions"),
                    recorded_at);
  std::vector<std::string> bases{"octo/app#42 " + a, "octo/app#42 " + a,
                                 "octo/app#41 "};
  BOOST_CHECK(notice_bases() == bases);
}

STORE_CASE(another_tools_deploy_is_what_auto_deploy_compares_with) {
  auto s = start();
  auto sha = [](char c) { return std::string(40, c); };
  heaven_deploys(s, 51, sha('a'), "success");
  // Another tool deploys c there; GitHub says so. A redelivery by hand
  // changes nothing and compares the same.
  notice(s, "ds-1", make_notice(900, "success", sha('c')));
  notice(s, "ds-2", make_notice(900, "success", sha('c')));
  std::vector<std::string> expected{"octo/app app production " + sha('c') + " "
                                    + sha('a') + " 900 -"};
  BOOST_CHECK(revisions() == expected);
  // Auto-deploy compares with c, and would repeat heaven's deployment.
  auto xs = latest(s, "octo/app");
  BOOST_REQUIRE_EQUAL(xs.size(), 1u);
  BOOST_CHECK_EQUAL(xs[0].app, "app");
  BOOST_CHECK_EQUAL(xs[0].environment, "production");
  BOOST_CHECK_EQUAL(xs[0].sha, sha('c'));
  BOOST_CHECK_EQUAL(xs[0].payload_json, R"({"name":"app","github_id":51})");
  BOOST_CHECK_EQUAL(xs[0].github_id, 51);
  BOOST_CHECK_EQUAL(xs[0].deployment_id, 1);
  // An app heaven never deployed: recorded, not auto-deployed.
  auto worker = make_notice(901, "success", sha('d'));
  worker.app = "worker";
  notice(s, "ds-3", worker);
  BOOST_CHECK_EQUAL(latest(s, "octo/app").size(), 1u);
  // Heaven's next deploy replaces the other tool's, and its own event
  // compares with it.
  heaven_deploys(s, 52, sha('e'), "success");
  notice(s, "ds-4", make_notice(52, "success", sha('e')));
  expected = {"octo/app app production " + sha('e') + " " + sha('c') + " 52 2",
              "octo/app worker production " + sha('d') + " - 901 -"};
  BOOST_CHECK(revisions() == expected);
  xs = latest(s, "octo/app");
  BOOST_REQUIRE_EQUAL(xs.size(), 1u);
  BOOST_CHECK_EQUAL(xs[0].sha, sha('e'));
  BOOST_CHECK_EQUAL(xs[0].payload_json, R"({"name":"app","github_id":52})");
  BOOST_CHECK_EQUAL(xs[0].github_id, 52);
  BOOST_CHECK_EQUAL(xs[0].deployment_id, 2);
  std::vector<std::string> bases{"octo/app#900 " + sha('a'),
                                 "octo/app#900 " + sha('a'), "octo/app#901 ",
                                 "octo/app#52 " + sha('c')};
  BOOST_CHECK(notice_bases() == bases);
}

STORE_CASE(a_start_notice_carries_what_is_deployed_and_records_nothing) {
  auto s = start();
  auto sha = [](char c) { return std::string(40, c); };
  // Nothing deployed there yet: no base.
  notice(s, "ds-1", make_notice(61, "pending", sha('a')));
  heaven_deploys(s, 61, sha('a'), "success");
  // The next deployment's start, pending and in_progress alike, carries a;
  // another environment's or app's carries what is there (nothing); a task
  // other than deploy compares too, as the Rails Heaven's start message did;
  // the end of a deployment that recorded nothing carries nothing.
  notice(s, "ds-2", make_notice(62, "pending", sha('b')));
  notice(s, "ds-3", make_notice(62, "in_progress", sha('b')));
  notice(s, "ds-4", make_notice(63, "pending", sha('b'), "staging"));
  auto worker = make_notice(64, "in_progress", sha('b'));
  worker.app = "worker";
  notice(s, "ds-5", worker);
  auto migration = make_notice(65, "pending", sha('b'));
  migration.task = "deploy:migrations";
  notice(s, "ds-6", migration);
  notice(s, "ds-7", make_notice(62, "failure", sha('b')));
  // None of it moved the revision, nor wrote one elsewhere.
  std::vector<std::string> expected{"octo/app app production " + sha('a')
                                    + " - 61 1"};
  BOOST_CHECK(revisions() == expected);
  // heaven deploys b. Its start reported after it was recorded carries what
  // it replaced (not itself); the start of 61, replaced since, nothing; a
  // start without a sha, nothing.
  heaven_deploys(s, 66, sha('b'), "success");
  notice(s, "ds-8", make_notice(66, "in_progress", sha('b')));
  notice(s, "ds-9", make_notice(61, "pending", sha('a')));
  notice(s, "ds-10", make_notice(67, "pending", ""));
  expected = {"octo/app app production " + sha('b') + " " + sha('a') + " 66 2"};
  BOOST_CHECK(revisions() == expected);
  std::vector<std::string> bases{"octo/app#61 ",
                                 "octo/app#62 " + sha('a'),
                                 "octo/app#62 " + sha('a'),
                                 "octo/app#63 ",
                                 "octo/app#64 ",
                                 "octo/app#65 " + sha('a'),
                                 "octo/app#62 ",
                                 "octo/app#66 " + sha('a'),
                                 "octo/app#61 ",
                                 "octo/app#67 "};
  auto got = notice_bases();
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), bases.begin(),
                                bases.end());
}

// -- the command line
// ----------------------------------------------------------

STORE_CASE(the_command_line_works_beside_a_running_store) {
  auto s = start();
  auto alice = accept_ok(s, task_event("l-1", 1, "production", "deploy:lock",
                                       "alice", "lock", "incident 42"));
  auto ev = task_event("l-2", 2, "qa", "deploy:lock", "bob", "lock", "tests");
  ev.deployment.repo = ev.repo = "octo/other";
  auto bob = accept_ok(s, ev);
  auto seen = read_locks(db);
  BOOST_REQUIRE_EQUAL(seen.size(), 2u);
  BOOST_CHECK(same_lock(seen[0], alice.lock));
  BOOST_CHECK(same_lock(seen[1], bob.lock));
  BOOST_CHECK(remove_lock(db, "octo/app", "production"));
  BOOST_CHECK(!remove_lock(db, "octo/app", "production"));
  BOOST_CHECK(!remove_lock(db, "octo/app", "qa"));
  // The store sees the change at once.
  auto r = accept_ok(s, task_event("d-1", 3, "production", "deploy", "carol"));
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "none");
  BOOST_CHECK_EQUAL(r.deployment_id, 3);
  auto left = locks(s);
  BOOST_REQUIRE_EQUAL(left.size(), 1u);
  BOOST_CHECK(same_lock(left[0], bob.lock));
  // And the store's writes keep working after the command line's.
  auto again = accept_ok(s, task_event("l-3", 4, "production", "deploy:lock",
                                       "carol", "lock", "mine now"));
  BOOST_CHECK_EQUAL(to_string(again.lock_state), "locked");
  BOOST_CHECK_EQUAL(read_locks(db).size(), 2u);
  if (db.sqlite())
    BOOST_CHECK_EQUAL(query_one(db, "PRAGMA journal_mode"), "wal");
}

SQLITE_CASE(the_command_line_never_creates_a_database) {
  auto path = (dir.path / "nowhere.sqlite3").string();
  auto expected = "no database at " + path
                  + ": has heaven run with this data directory?";
  auto says = [&](const std::runtime_error& e) {
    BOOST_CHECK_EQUAL(e.what(), expected);
    return true;
  };
  BOOST_CHECK_EXCEPTION(read_locks(path), std::runtime_error, says);
  BOOST_CHECK_EXCEPTION(remove_lock(path, "octo/app", "production"),
                        std::runtime_error, says);
  BOOST_CHECK_EXCEPTION(read_repositories(path), std::runtime_error, says);
  BOOST_CHECK_EXCEPTION(set_repository_active(path, "octo/app", false),
                        std::runtime_error, says);
  BOOST_CHECK(!fs::exists(path));
  BOOST_CHECK(!fs::exists(path + "-wal"));
}

SQLITE_CASE(a_newer_schema_is_refused) {
  exec_sql(db, "PRAGMA user_version=6");
  try {
    read_locks(db.string());
    BOOST_FAIL("a version 6 database was read");
  } catch (const std::runtime_error& e) {
    BOOST_CHECK_EQUAL(e.what(), db.string()
                                  + " has schema version 6, newer "
                                    "than this heaven's 5");
  }
  auto s = start();
  auto r = accept(s, other_event("p-1", "ping"));
  BOOST_REQUIRE(!r);
  BOOST_CHECK(sys.render(r.error()).find("newer than this heaven's 5")
              != std::string::npos);
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "6");
}

POSTGRESQL_CASE(a_newer_postgresql_schema_is_refused) {
  {
    auto s = start();
    locks(s); // The schema is made.
    stop_all();
  }
  query(db, "UPDATE heaven_schema SET version = 2");
  try {
    read_locks(db);
    BOOST_FAIL("a version 2 database was read");
  } catch (const std::runtime_error& e) {
    BOOST_CHECK_EQUAL(e.what(), std::string{"the database has heaven schema "
                                            "version 2, newer than this "
                                            "heaven's 1"});
  }
  auto s = start();
  auto r = accept(s, other_event("p-1", "ping"));
  BOOST_REQUIRE(!r);
  BOOST_CHECK(sys.render(r.error()).find("newer than this heaven's 1")
              != std::string::npos);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT version FROM heaven_schema"), "2");
}

// -- migration
// -------------------------------------------------------------------

SQLITE_CASE(a_version_1_database_is_migrated_in_place) {
  write_v1_database(db);
  auto s = start();
  auto xs = pending(s); // Answered once the store has opened the file.
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "5");
  for (auto table : {"locks", "revisions", "auto_deploys"})
    BOOST_CHECK_EQUAL(query_one(db, std::string("SELECT count(*) FROM "
                                                "sqlite_master WHERE type = "
                                                "'table' AND name = '")
                                      + table + "'"),
                      "1");
  // Version 5's indexes, for the pages.
  BOOST_CHECK(
    (query(db, "SELECT name FROM sqlite_master WHERE type = "
               "'index' AND name IN ('deployments_repo_id', "
               "'deployments_state_id', 'outbox_status_stream') "
               "ORDER BY name")
     == std::vector<std::string>{"deployments_repo_id", "deployments_state_id",
                                 "outbox_status_stream"}));
  BOOST_REQUIRE_EQUAL(xs.size(), 1u);
  BOOST_CHECK_EQUAL(xs[0].id, 1);
  BOOST_CHECK_EQUAL(to_string(xs[0].state), "running");
  BOOST_CHECK_EQUAL(xs[0].request.description, "v1");
  BOOST_CHECK_EQUAL(xs[0].request.payload_json, R"({"name":"app"})");
  auto rows = list(s, 10);
  BOOST_REQUIRE_EQUAL(rows.size(), 2u);
  BOOST_CHECK_EQUAL(rows[0]["repo"], "octo/old");
  BOOST_CHECK_EQUAL(rows[0]["finished_at"], "2026-01-02T03:04:08.000Z");
  BOOST_CHECK(locks(s).empty());
  auto old = latest(s, "octo/old");
  BOOST_REQUIRE_EQUAL(old.size(), 1u);
  BOOST_CHECK_EQUAL(old[0].deployment_id, 2);
  BOOST_CHECK_EQUAL(old[0].payload_json, "{}");
  // Redeliveries of version 1's deliveries are still duplicates.
  BOOST_CHECK(accept_ok(s, other_event("p-1", "ping")).duplicate);
  // octo/old stays disabled; octo/app deploys on, numbered after the old.
  auto ignored = task_event("d-3", 13, "qa", "deploy", "bob");
  ignored.deployment.repo = ignored.repo = "octo/old";
  BOOST_CHECK(accept_ok(s, ignored).ignored);
  auto r = accept_ok(s, task_event("d-4", 14, "production", "deploy:lock",
                                   "alice", "lock", "after the upgrade"));
  BOOST_CHECK_EQUAL(r.deployment_id, 3);
  BOOST_CHECK_EQUAL(to_string(r.lock_state), "locked");
  auto repos = read_repositories(db.string());
  BOOST_REQUIRE_EQUAL(repos.size(), 2u);
  BOOST_CHECK_EQUAL(repos[0].repo, "octo/app");
  BOOST_CHECK(repos[0].active);
  BOOST_CHECK_EQUAL(repos[0].first_seen, "2026-01-02T03:04:05.006Z");
  BOOST_CHECK_EQUAL(repos[1].repo, "octo/old");
  BOOST_CHECK(!repos[1].active);
  // Opening it again migrates nothing and loses nothing.
  stop_all();
  auto again = start();
  BOOST_CHECK_EQUAL(list(again, 10).size(), 3u);
  BOOST_CHECK_EQUAL(locks(again).size(), 1u);
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "5");
}

SQLITE_CASE(the_command_line_migrates_a_version_1_database_too) {
  write_v1_database(db);
  auto repos = read_repositories(db.string());
  BOOST_REQUIRE_EQUAL(repos.size(), 2u);
  BOOST_CHECK_EQUAL(repos[1].repo, "octo/old");
  BOOST_CHECK(!repos[1].active);
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "5");
  BOOST_CHECK(read_locks(db.string()).empty());
  // Twice is the same as once.
  set_repository_active(db.string(), "octo/old", true);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT active FROM repositories "
                                  "WHERE repo = 'octo/old'"),
                    "1");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "2");
}

SQLITE_CASE(a_version_3_database_moves_its_revisions) {
  write_v3_database(db);
  auto s = start();
  auto xs = latest(s, "octo/app"); // Answered once the file is migrated.
  BOOST_CHECK_EQUAL(query_one(db, "PRAGMA user_version"), "5");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM sqlite_master WHERE "
                                  "name = 'revisions_v3'"),
                    "0");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM sqlite_master WHERE "
                                  "type = 'index' AND name IN "
                                  "('deployments_repo_id', "
                                  "'deployments_state_id', "
                                  "'outbox_status_stream')"),
                    "3");
  // Per app and environment the newer of heaven's newest successful deploy
  // and the old row (its app the repository's name), heaven's when both
  // name one sha; heaven's replaced the old row's other sha.
  auto sha = [](char c) { return std::string(40, c); };
  auto rows = query(db, "SELECT repo || ' ' || app || ' ' || environment || "
                        "' ' || sha || ' ' || ifnull(previous_sha, '-') || "
                        "' ' || ifnull(github_id, '-') || ' ' || "
                        "ifnull(deployment_id, '-') || ' ' || recorded_at "
                        "FROM revisions ORDER BY repo, app, environment");
  std::vector<std::string> expected{
    "octo/app app production " + sha('b') + " - - - 2026-01-01T12:30:00.000Z",
    "octo/app app qa " + sha('e') + " - 106 6 2026-01-01T11:00:00.000Z",
    "octo/app app staging " + sha('c') + " " + sha('d')
      + " 105 5 2026-01-01T11:00:00.000Z",
    "octo/app worker production " + sha('f')
      + " - 107 7 2026-01-01T11:00:00.000Z",
    "octo/lib lib production " + sha('g') + " - - - 2026-01-01T09:00:00.000Z"};
  BOOST_CHECK_EQUAL_COLLECTIONS(rows.begin(), rows.end(), expected.begin(),
                                expected.end());
  // Auto-deploy compares with them, repeating heaven's deployments; it
  // leaves out what heaven never deployed.
  BOOST_REQUIRE_EQUAL(xs.size(), 4u);
  std::vector<std::string> seen;
  for (auto& x : xs)
    seen.push_back(x.app + " " + x.environment + " " + x.sha + " "
                   + x.payload_json + " " + std::to_string(x.github_id) + " "
                   + std::to_string(x.deployment_id));
  expected = {"app production " + sha('b') + R"( {"n":2} 102 2)",
              "app qa " + sha('e') + R"( {"n":6} 106 6)",
              "app staging " + sha('c') + R"( {"n":5} 105 5)",
              "worker production " + sha('f') + R"( {"n":7} 107 7)"};
  BOOST_CHECK_EQUAL_COLLECTIONS(seen.begin(), seen.end(), expected.begin(),
                                expected.end());
  BOOST_CHECK(latest(s, "octo/lib").empty());
  // The GitHub event of staging's deploy, on its way during the upgrade:
  // compared with d, as before the upgrade, and nothing moves.
  notice(s, "ds-1", make_notice(105, "success", sha('c'), "staging"));
  std::vector<std::string> bases{"octo/app#105 " + sha('d')};
  BOOST_CHECK(notice_bases() == bases);
  BOOST_CHECK_EQUAL(revision("octo/app", "staging"), sha('c'));
  // Opening it again migrates nothing.
  stop_all();
  start();
  BOOST_CHECK_EQUAL(latest(stores.back(), "octo/app").size(), 4u);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM revisions"), "5");
}

// -- the write-ahead lifecycle and the outbox
// -----------------------------------

STORE_CASE(the_rules_are_decided_where_the_deployment_is_recorded) {
  auto s = start();
  auto first = accept_ok(s,
                         task_event("d-1", 1, "production", "deploy", "alice"));
  BOOST_CHECK_EQUAL(to_string(first.state), "queued");
  // One deployment per app and environment: the second is refused in the
  // transaction that records it.
  auto second = accept_ok(s,
                          task_event("d-2", 2, "production", "deploy", "bob"));
  BOOST_CHECK_EQUAL(to_string(second.state), "error");
  BOOST_CHECK_EQUAL(second.description, "Already deploying.");
  BOOST_CHECK(
    (statuses("d2") == std::vector<std::string>{"error: Already deploying."}));
  BOOST_CHECK(is_timestamp(
    query_one(db, "SELECT finished_at FROM deployments WHERE id = 2")));
  // Another environment is free.
  BOOST_CHECK_EQUAL(
    to_string(
      accept_ok(s, task_event("d-3", 3, "staging", "deploy", "bob")).state),
    "queued");
  // The receiver's refusal is recorded as the deployment's error.
  auto bad = task_event("d-4", 4, "qa", "deploy", "bob");
  bad.refusal = "invalid ref 'x..y'";
  auto refused = accept_ok(s, bad);
  BOOST_CHECK_EQUAL(to_string(refused.state), "error");
  BOOST_CHECK_EQUAL(refused.description, "invalid ref 'x..y'");
  // A lock task never waits for a running deployment, and a lock is named
  // before "Already deploying.".
  auto lock = accept_ok(s, task_event("l-1", 5, "production", "deploy:lock",
                                      "bob", "lock", "incident"));
  BOOST_CHECK_EQUAL(to_string(lock.state), "success");
  BOOST_CHECK_EQUAL(lock.description, "octo/app locked on production by bob");
  auto locked = accept_ok(s, task_event("d-6", 6, "production", "deploy",
                                        "carol"));
  BOOST_CHECK_EQUAL(to_string(locked.state), "error");
  BOOST_CHECK_EQUAL(locked.description,
                    "octo/app is locked on production by bob");
  // Once the first has ended and the lock is gone, production is free.
  BOOST_CHECK(*finish(s, 1, "success", "Deployed"));
  accept_ok(s, task_event("u-1", 7, "production", "deploy:unlock", "bob",
                          "unlock"));
  BOOST_CHECK_EQUAL(to_string(accept_ok(s, task_event("d-8", 8, "production",
                                                      "deploy", "carol"))
                                .state),
                    "queued");
  // Each deployment has exactly the statuses its transitions wrote.
  BOOST_CHECK((statuses("d1")
               == std::vector<std::string>{
                 "queued: Queued main (0123456) for production by alice",
                 "success: Deployed"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox"), "9");
}

STORE_CASE(a_deployment_starts_once_and_ends_once) {
  auto s = start();
  accept_ok(s, task_event("d-1", 1, "production", "deploy", "alice"));
  BOOST_CHECK(start_one(s, 1, "Deploying main (0123456) to production"));
  BOOST_CHECK(!start_one(s, 1, "again"));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT state FROM deployments"), "running");
  BOOST_CHECK(
    is_timestamp(query_one(db, "SELECT started_at FROM deployments")));
  BOOST_CHECK(*finish(s, 1, "success", "Deployed"));
  BOOST_CHECK(!*finish(s, 1, "error", "heaven restarted"));
  BOOST_CHECK(!start_one(s, 1, "once more"));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT state || '|' || description FROM "
                                  "deployments"),
                    "success|Deployed");
  BOOST_CHECK((statuses("d1")
               == std::vector<std::string>{
                 "queued: Queued main (0123456) for production by alice",
                 "in_progress: Deploying main (0123456) to production",
                 "success: Deployed"}));
  // A deployment that never started may end (a failed checkout).
  accept_ok(s, task_event("d-2", 2, "qa", "deploy", "alice"));
  BOOST_CHECK(*finish(s, 2, "error", "could not check out"));
  BOOST_CHECK((
    statuses("d2")
    == std::vector<std::string>{"queued: Queued main (0123456) for qa by alice",
                                "error: could not check out"}));
  BOOST_CHECK(!*finish(s, 99, "success", "nobody"));
  // Only success, failure and error end a deployment.
  auto wrong = finish(s, 2, "running", "no");
  BOOST_REQUIRE(!wrong);
  BOOST_CHECK(sys.render(wrong.error())
                .find("not a state a deployment ends "
                      "in")
              != std::string::npos);
}

STORE_CASE(lines_about_a_deployment_carry_it) {
  // With the log context: the JSON log's deployment fields.
  test::captured_log log{1000, true};
  auto s = start();
  accept_ok(s, task_event("d-1", 1, "production", "deploy", "alice"));
  BOOST_CHECK(start_one(s, 1, "Deploying"));
  BOOST_CHECK(!start_one(s, 1, "again"));
  BOOST_CHECK(*finish(s, 1, "success", "Deployed"));
  BOOST_CHECK(!*finish(s, 1, "error", "late"));
  BOOST_CHECK(!finish(s, 1, "running", "no"));
  accept_ok(s, other_event("p-1", "ping"));
  BOOST_TEST(log.exactly("info store recorded delivery d-1 as deployment 1 of "
                         "octo/app to production [deployment=1 "
                         "repository=octo/app environment=production]")
             == 1u);
  BOOST_TEST(log.exactly("warning store found deployment 1 not queued "
                         "(ended, superseded, or its environment locked "
                         "while it waited): it does not start [deployment=1]")
             == 1u);
  BOOST_TEST(log.exactly("warning store found deployment 1 ended already: it "
                         "keeps its first end, not error [deployment=1]")
             == 1u);
  BOOST_TEST(log.containing("error store could not mark deployment 1 running: ")
             == 1u);
  BOOST_TEST(log.containing("not a state a deployment ends in [deployment=1]")
             == 1u);
  // A delivery that is no deployment is about none.
  BOOST_TEST(log.exactly("debug store recorded delivery p-1 (ping)") == 1u,
             log.all());
}

namespace {

/// An outbox stand-in that collects what the store hands it.
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
    [c](outbox_atom, std::vector<outbox_row>& rows, bool) {
      std::lock_guard guard{c->mx};
      for (auto& r : rows)
        c->rows.push_back(r);
    },
    [](retry_atom, std::string&) {},
    [](drain_atom) { return true; },
    [](wake_atom) {},
  };
}

} // namespace

STORE_CASE(the_outbox_keeps_rows_until_settled_and_hands_on_new) {
  auto s = start();
  accept_ok(s, task_event("d-1", 1, "production", "deploy", "alice"));
  // The subscriber is a mailbox of the test's own.
  caf::scoped_actor inbox{sys};
  auto sink = caf::actor_cast<outbox_actor>(inbox->address());
  std::vector<outbox_row> first;
  self->request(s, timeout, subscribe_atom::value, std::string{"status"}, sink)
    .receive([&](std::vector<outbox_row> x) { first = std::move(x); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_REQUIRE_EQUAL(first.size(), 1u);
  BOOST_CHECK_EQUAL(first[0].kind, "status");
  BOOST_CHECK_EQUAL(first[0].stream, "d1");
  BOOST_CHECK(first[0].created_ms > 0);
  // What is committed later is handed over.
  start_one(s, 1, "Deploying");
  std::vector<outbox_row> later;
  inbox->receive(
    [&](outbox_atom, std::vector<outbox_row>& rows) { later = rows; },
    caf::after(timeout) >> [] { BOOST_FAIL("no row was handed over"); });
  BOOST_REQUIRE_EQUAL(later.size(), 1u);
  BOOST_CHECK(later[0].id > first[0].id);
  BOOST_CHECK_EQUAL(nlohmann::json::parse(later[0].body).at("state"),
                    "in_progress");
  // Settling and adding happen in one transaction; an added row of another
  // kind goes to that kind's subscribers only.
  outbox_change change;
  change.settled = {{first[0].id, "delivered"}};
  change.added = {{0, "notice", "slack", R"({"text":"hi"})", 0}};
  bool ok = false;
  self->request(s, timeout, outbox_atom::value, change)
    .receive([&](bool x) { ok = x; },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_CHECK(ok);
  // The store hands rows on before it answers the write that committed
  // them (one handler, in order): had the notice gone to this subscriber,
  // it would be in the mailbox now.
  bool more = false;
  inbox->receive([&](outbox_atom, std::vector<outbox_row>&) { more = true; },
                 caf::after(std::chrono::seconds(0)) >> [] {});
  BOOST_CHECK(!more);
  BOOST_CHECK_EQUAL(query_one(db, "SELECT outcome FROM outbox WHERE id = "
                                    + std::to_string(first[0].id)),
                    "delivered");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox WHERE kind = "
                                  "'notice' AND settled_at IS NULL"),
                    "1");
  // After a restart only what was not settled comes back, oldest first.
  stop_all();
  auto again = start();
  auto sink2 = sys.spawn(collector, std::make_shared<collected>());
  std::vector<outbox_row> left;
  self
    ->request(again, timeout, subscribe_atom::value, std::string{"status"},
              sink2)
    .receive([&](std::vector<outbox_row> x) { left = std::move(x); },
             [&](caf::error& e) { BOOST_FAIL(sys.render(e)); });
  BOOST_REQUIRE_EQUAL(left.size(), 1u);
  BOOST_CHECK_EQUAL(left[0].id, later[0].id);
  caf::anon_send_exit(sink2, caf::exit_reason::user_shutdown);
}

/// Holds the database's write lock from a connection of its own while it
/// lives: the store's next commit waits (up to its 5 s busy timeout), and
/// what arrives meanwhile queues behind it.
struct write_lock {
  sqlite3* conn = nullptr;

  explicit write_lock(const fs::path& db) {
    BOOST_REQUIRE_EQUAL(sqlite3_open_v2(db.c_str(), &conn,
                                        SQLITE_OPEN_READWRITE, nullptr),
                        SQLITE_OK);
    BOOST_REQUIRE_EQUAL(sqlite3_exec(conn, "BEGIN IMMEDIATE", nullptr, nullptr,
                                     nullptr),
                        SQLITE_OK);
  }

  ~write_lock() {
    sqlite3_exec(conn, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close_v2(conn);
  }
};

SQLITE_CASE(requests_that_arrive_together_share_one_commit) {
  auto s = start();
  locks(s); // Opened and migrated.
  auto commits = health->commits();
  auto requests = health->committed_requests();
  constexpr int n = 50;
  {
    write_lock held{db};
    // Sent without waiting: the answers come back as messages. The first
    // commit waits for the lock; the rest arrive while it waits.
    for (int i = 0; i < n; ++i) {
      auto ev = i % 2 == 0 ? other_event("g-" + std::to_string(i), "ping")
                           : deployment_event(
                             "g-" + std::to_string(i),
                             make_request(100 + i, "env-" + std::to_string(i)));
      self->send(s, accept_atom::value, std::move(ev));
    }
    // A read sent last sees every write before it.
    self->send(s, list_atom::value, int32_t{100});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // The lock is released here.
  }
  int answers = 0;
  std::vector<deployment_row> listed;
  self->receive_for(answers, n + 1)(
    [&](accept_result& r) { BOOST_CHECK(!r.duplicate); },
    [&](std::vector<deployment_row>& rows) { listed = std::move(rows); },
    [&](caf::error& e) { BOOST_FAIL(sys.render(e)); },
    caf::after(timeout) >> [] { BOOST_FAIL("the store did not answer"); });
  // 51 requests, at most two transactions: the one that waited for the lock
  // (whatever was queued when it began) and one for the rest.
  BOOST_CHECK_EQUAL(health->committed_requests() - requests, uint64_t{n + 1});
  BOOST_CHECK_LE(health->commits() - commits, 2u);
  BOOST_CHECK_EQUAL(listed.size(), std::size_t{n / 2});
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deliveries "
                                  "WHERE delivery LIKE 'g-%'"),
                    std::to_string(n));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"),
                    std::to_string(n / 2));
  BOOST_CHECK(health->problems().empty());
}

SQLITE_CASE(a_duplicate_in_a_batch_undoes_only_itself) {
  auto s = start();
  locks(s);
  {
    write_lock held{db};
    self->send(s, accept_atom::value,
               deployment_event("b-1", make_request(1, "production")));
    self->send(s, accept_atom::value,
               deployment_event("b-1", make_request(1, "production")));
    self->send(s, accept_atom::value,
               deployment_event("b-2", make_request(2, "staging")));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::vector<bool> duplicates;
  int answers = 0;
  self->receive_for(answers, 3)(
    [&](accept_result& r) { duplicates.push_back(r.duplicate); },
    [&](caf::error& e) { BOOST_FAIL(sys.render(e)); },
    caf::after(timeout) >> [] { BOOST_FAIL("the store did not answer"); });
  BOOST_CHECK((duplicates == std::vector<bool>{false, true, false}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM deployments"), "2");
  BOOST_CHECK_EQUAL(query_one(db, "SELECT count(*) FROM outbox"), "2");
}

SQLITE_CASE(a_full_disk_refuses_writes_says_so_and_recovers) {
  auto disk = dir.path / "disk";
  fs::create_directories(disk);
  auto mounted = std::system(("mount -t tmpfs -o size=2m heaven-test-full "
                              + disk.string() + " 2>/dev/null")
                               .c_str());
  if (mounted != 0) {
    BOOST_TEST_MESSAGE("skipped: this machine refuses to mount a tmpfs (not "
                       "root, or no mount rights): the full-disk case is not "
                       "tested here");
    return;
  }
  struct unmount {
    fs::path at;
    ~unmount() {
      std::system(("umount -l " + at.string()).c_str());
    }
  } guard{disk};
  auto path = disk / "heaven.db";
  auto s = start(path);
  BOOST_CHECK(!accept_ok(s, other_event("p-1", "ping")).duplicate);
  BOOST_CHECK(health->problems().empty());
  // Fill the disk.
  std::system(
    ("dd if=/dev/zero of=" + (disk / "filler").string() + " bs=64k 2>/dev/null")
      .c_str());
  auto big = deployment_event("d-1", make_request(1, "production"));
  big.body = std::string(300 * 1024, 'x');
  auto r = accept(s, big);
  BOOST_REQUIRE(!r);
  BOOST_CHECK(sys.render(r.error()).find("full") != std::string::npos);
  auto problems = health->problems();
  BOOST_REQUIRE_EQUAL(problems.size(), 1u);
  BOOST_CHECK(problems[0].find("store: cannot write: database or disk is "
                               "full")
              == 0);
  // Nothing of it was recorded.
  BOOST_CHECK_EQUAL(query_one(path, "SELECT count(*) FROM deployments"), "0");
  // Requests that go to disk together fail together, each answered.
  for (int i = 0; i < 3; ++i) {
    auto ev = deployment_event("full-" + std::to_string(i),
                               make_request(10 + i, "env" + std::to_string(i)));
    ev.body = std::string(300 * 1024, 'y');
    self->send(s, accept_atom::value, std::move(ev));
  }
  int failed = 0;
  self->receive_for(failed, 3)(
    [&](accept_result&) { BOOST_FAIL("a write to a full disk was accepted"); },
    [&](caf::error& e) {
      BOOST_CHECK(sys.render(e).find("full") != std::string::npos);
    },
    caf::after(timeout) >> [] { BOOST_FAIL("the store did not answer"); });
  BOOST_CHECK_EQUAL(query_one(path, "SELECT count(*) FROM deployments"), "0");
  // Space again: the same delivery is accepted, and health is back.
  fs::remove(disk / "filler");
  auto again = accept_ok(s, big);
  BOOST_CHECK(!again.duplicate);
  BOOST_CHECK_EQUAL(to_string(again.state), "queued");
  BOOST_CHECK(health->problems().empty());
  stop_all();
}

// -- queued deployments (base/queueing.hpp) -----------------------------------

namespace {

/// `task_event` whose payload.config carries `config` (JSON members, e.g.
/// `"queue":true`).
inbound_event queue_event(std::string delivery, int64_t github_id,
                          std::string env, std::string task, std::string actor,
                          const std::string& config) {
  auto ev = task_event(std::move(delivery), github_id, std::move(env),
                       std::move(task), std::move(actor));
  ev.deployment.payload_json = R"({"name":"app","config":{"provider":"shell")"
                               + (config.empty() ? std::string{} : "," + config)
                               + "}}";
  return ev;
}

} // namespace

STORE_CASE(queued_deployments_wait_their_turn_in_order) {
  auto s = start();
  auto q = std::string{R"("queue":true)"};
  auto a = accept_ok(s, queue_event("q-1", 101, "production", "deploy", "alice",
                                    q));
  BOOST_CHECK_EQUAL(to_string(a.state), "queued");
  BOOST_CHECK_EQUAL(a.description,
                    "Queued main (0123456) for production by alice");
  auto b = accept_ok(s,
                     queue_event("q-2", 102, "production", "deploy", "bob", q));
  BOOST_CHECK_EQUAL(to_string(b.state), "queued");
  BOOST_CHECK_EQUAL(b.description, "waiting for deployment 101 to finish");
  auto c = accept_ok(s, queue_event("q-3", 103, "production", "deploy", "carol",
                                    q));
  BOOST_CHECK_EQUAL(c.description, "waiting for deployment 101 to finish");
  // One that does not queue is still refused; another environment is free.
  auto d = accept_ok(s, queue_event("q-4", 104, "production", "deploy", "dave",
                                    ""));
  BOOST_CHECK_EQUAL(to_string(d.state), "error");
  BOOST_CHECK_EQUAL(d.description, "Already deploying.");
  auto e = accept_ok(s,
                     queue_event("q-5", 105, "staging", "deploy", "erin", q));
  BOOST_CHECK_EQUAL(e.description, "Queued main (0123456) for staging by erin");
  // The first runs; the others wait for it (their status says so once).
  BOOST_CHECK(start_one(s, a.deployment_id, "Running"));
  BOOST_CHECK(*finish(s, a.deployment_id, "success", "Deployed"));
  // The second's turn: the third now waits for it.
  BOOST_CHECK(start_one(s, b.deployment_id, "Running"));
  BOOST_CHECK((statuses("d" + std::to_string(c.deployment_id))
               == std::vector<std::string>{
                 "queued: waiting for deployment 101 to finish",
                 "queued: waiting for deployment 102 to finish"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT description FROM deployments "
                                  "WHERE id = "
                                    + std::to_string(c.deployment_id)),
                    "waiting for deployment 102 to finish");
  BOOST_CHECK(*finish(s, b.deployment_id, "failure", "Failed"));
  BOOST_CHECK(start_one(s, c.deployment_id, "Running"));
  BOOST_CHECK(*finish(s, c.deployment_id, "success", "Deployed"));
  BOOST_CHECK(
    (statuses("d" + std::to_string(b.deployment_id))
     == std::vector<std::string>{"queued: waiting for deployment 101 to finish",
                                 "in_progress: Running", "failure: Failed"}));
  BOOST_CHECK(
    (statuses("d" + std::to_string(c.deployment_id))
     == std::vector<std::string>{"queued: waiting for deployment 101 to finish",
                                 "queued: waiting for deployment 102 to finish",
                                 "in_progress: Running", "success: Deployed"}));
  BOOST_CHECK((statuses("d" + std::to_string(d.deployment_id))
               == std::vector<std::string>{"error: Already deploying."}));
}

STORE_CASE(a_superseding_deployment_replaces_the_waiting_ones_of_its_task) {
  auto s = start();
  auto sup = std::string{R"("supersede":true)"};
  auto a = accept_ok(s, queue_event("s-1", 201, "production", "deploy", "alice",
                                    sup));
  BOOST_REQUIRE(start_one(s, a.deployment_id, "Running"));
  auto b = accept_ok(s, queue_event("s-2", 202, "production", "deploy", "bob",
                                    sup));
  BOOST_CHECK_EQUAL(b.description, "waiting for deployment 201 to finish");
  // Another task waits too, and is not replaced by a deploy.
  auto m = accept_ok(s, queue_event("s-3", 203, "production",
                                    "deploy:migrations", "bob", sup));
  BOOST_CHECK_EQUAL(m.description, "waiting for deployment 201 to finish");
  auto c = accept_ok(s, queue_event("s-4", 204, "production", "deploy", "carol",
                                    sup));
  BOOST_CHECK_EQUAL(to_string(c.state), "queued");
  BOOST_CHECK_EQUAL(c.description, "waiting for deployment 201 to finish");
  // The answer names what it replaced, so the receiver counts it no more.
  BOOST_CHECK((c.superseded == std::vector<int64_t>{b.deployment_id}));
  BOOST_CHECK(b.superseded.empty());
  // The running one is no waiting one: it runs on.
  BOOST_CHECK((statuses("d" + std::to_string(a.deployment_id))
               == std::vector<std::string>{
                 "queued: Queued main (0123456) for production by alice",
                 "in_progress: Running"}));
  BOOST_CHECK(
    (statuses("d" + std::to_string(b.deployment_id))
     == std::vector<std::string>{"queued: waiting for deployment 201 to finish",
                                 "error: superseded by deployment 204"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT state || '|' || description FROM "
                                  "deployments WHERE id = "
                                    + std::to_string(b.deployment_id)),
                    "error|superseded by deployment 204");
  BOOST_CHECK((statuses("d" + std::to_string(m.deployment_id))
               == std::vector<std::string>{
                 "queued: waiting for deployment 201 to finish"}));
  // A superseded one never starts, and cannot end twice.
  BOOST_CHECK(!start_one(s, b.deployment_id, "Running"));
  BOOST_CHECK(!*finish(s, b.deployment_id, "error", "again"));
  BOOST_CHECK_EQUAL(statuses("d" + std::to_string(b.deployment_id)).size(), 2u);
  // A refused arrival replaces nothing.
  auto bad = queue_event("s-5", 205, "production", "deploy", "dave", sup);
  bad.refusal = "invalid ref 'x..y'";
  BOOST_CHECK_EQUAL(accept_ok(s, bad).description, "invalid ref 'x..y'");
  BOOST_CHECK_EQUAL(statuses("d" + std::to_string(c.deployment_id)).size(), 1u);
  BOOST_CHECK(*finish(s, a.deployment_id, "success", "Deployed"));
  BOOST_CHECK(start_one(s, m.deployment_id, "Running"));
  BOOST_CHECK(*finish(s, m.deployment_id, "success", "Deployed"));
  BOOST_CHECK(start_one(s, c.deployment_id, "Running"));
  // One first in line that has not started is a waiting one too.
  auto x = accept_ok(s,
                     queue_event("s-6", 206, "staging", "deploy", "erin", sup));
  auto y = accept_ok(s,
                     queue_event("s-7", 207, "staging", "deploy", "erin", sup));
  BOOST_CHECK_EQUAL(y.description, "Queued main (0123456) for staging by erin");
  BOOST_CHECK((y.superseded == std::vector<int64_t>{x.deployment_id}));
  BOOST_CHECK((statuses("d" + std::to_string(x.deployment_id))
               == std::vector<std::string>{
                 "queued: Queued main (0123456) for staging by erin",
                 "error: superseded by deployment 207"}));
  BOOST_CHECK(!start_one(s, x.deployment_id, "Running"));
  BOOST_CHECK(start_one(s, y.deployment_id, "Running"));
}

STORE_CASE(a_lock_taken_while_one_waits_refuses_it_at_its_turn) {
  auto s = start();
  auto q = std::string{R"("queue":true)"};
  auto a = accept_ok(s, queue_event("k-1", 301, "production", "deploy", "alice",
                                    q));
  BOOST_REQUIRE(start_one(s, a.deployment_id, "Running"));
  auto b = accept_ok(s,
                     queue_event("k-2", 302, "production", "deploy", "bob", q));
  BOOST_CHECK_EQUAL(b.description, "waiting for deployment 301 to finish");
  auto lock = accept_ok(s, task_event("k-3", 303, "production", "deploy:lock",
                                      "carol", "lock", "incident"));
  BOOST_CHECK_EQUAL(to_string(lock.state), "success");
  // One arriving now is refused at once.
  auto late = accept_ok(s, queue_event("k-4", 304, "production", "deploy",
                                       "dave", q));
  BOOST_CHECK_EQUAL(to_string(late.state), "error");
  BOOST_CHECK_EQUAL(late.description,
                    "octo/app is locked on production by carol");
  BOOST_CHECK(*finish(s, a.deployment_id, "success", "Deployed"));
  // The waiting one's turn: refused with the lock's words, ended once.
  BOOST_CHECK(!start_one(s, b.deployment_id, "Running"));
  BOOST_CHECK((statuses("d" + std::to_string(b.deployment_id))
               == std::vector<std::string>{
                 "queued: waiting for deployment 301 to finish",
                 "error: octo/app is locked on production by carol"}));
  BOOST_CHECK_EQUAL(query_one(db, "SELECT state FROM deployments WHERE id = "
                                    + std::to_string(b.deployment_id)),
                    "error");
  BOOST_CHECK(!*finish(s, b.deployment_id, "error", "again"));
  BOOST_CHECK(pending(s).empty());
}

STORE_CASE(heaven_queue_deployments_queues_unless_the_app_opts_out) {
  auto s = sys.spawn(
    open_store,
    [this]() -> std::unique_ptr<store_backend> {
      auto b = db.open();
      b->set_queue_all(true);
      return b;
    },
    health);
  stores.push_back(s);
  auto a = accept_ok(s, queue_event("g-1", 401, "production", "deploy", "alice",
                                    ""));
  BOOST_CHECK_EQUAL(to_string(a.state), "queued");
  auto b = accept_ok(s, queue_event("g-2", 402, "production", "deploy", "bob",
                                    ""));
  BOOST_CHECK_EQUAL(to_string(b.state), "queued");
  BOOST_CHECK_EQUAL(b.description, "waiting for deployment 401 to finish");
  auto out = accept_ok(s, queue_event("g-3", 403, "production", "deploy",
                                      "carol", R"("queue":false)"));
  BOOST_CHECK_EQUAL(to_string(out.state), "error");
  BOOST_CHECK_EQUAL(out.description, "Already deploying.");
  // Only booleans count: a string reads as absent (here: queue).
  auto odd = accept_ok(s, queue_event("g-4", 404, "production", "deploy",
                                      "dave", R"("queue":"false")"));
  BOOST_CHECK_EQUAL(odd.description, "waiting for deployment 401 to finish");
  stop_all();
}

BOOST_AUTO_TEST_SUITE_END()
