/// The STORE actor: heaven's SQLite database (WAL) in the data directory.
#include "actors/store.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <optional>
#include <map>
#include <stdexcept>
#include <utility>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "base/health.hpp"
#include "base/lifecycle.hpp"
#include "base/notices.hpp"

namespace heaven {

namespace {

/// Version 1: deliveries, deployments and the repositories heard from.
constexpr const char *schema_v1_sql = R"sql(
CREATE TABLE IF NOT EXISTS deliveries(
  delivery TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments(
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
CREATE INDEX IF NOT EXISTS deployments_repo_environment
  ON deployments(repo, environment);
CREATE TABLE IF NOT EXISTS repositories(
  repo TEXT PRIMARY KEY,
  active INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT);
)sql";

/// Version 2 (chat-ops): environment locks, the last revision deployed per
/// repository+environment, and the auto-deployments already claimed.
constexpr const char *schema_v2_sql = R"sql(
CREATE TABLE IF NOT EXISTS locks(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  locked_at TEXT NOT NULL,
  deployment_id INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(repo, environment));
CREATE TABLE IF NOT EXISTS revisions(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY(repo, environment));
CREATE TABLE IF NOT EXISTS auto_deploys(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment, sha));
)sql";

/// Version 3 (the write-ahead lifecycle): when a deployment's provider
/// started, the outbox of messages every transition leads to (GitHub
/// statuses, ...), and no more "received" state: a deployment is recorded
/// queued, or ended by the rules, in the transaction of its delivery.
constexpr const char *schema_v3_sql = R"sql(
ALTER TABLE deployments ADD COLUMN started_at TEXT;
UPDATE deployments SET state = 'queued' WHERE state = 'received';
CREATE INDEX IF NOT EXISTS deployments_app_environment_state
  ON deployments(app, environment, state);
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  stream TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  outcome TEXT);
CREATE INDEX IF NOT EXISTS outbox_unsettled
  ON outbox(kind, id) WHERE settled_at IS NULL;
)sql";

/// The migrations, in order: entry i takes a database from schema version i
/// to i + 1. They run in one transaction with the version check, so each
/// runs once.
constexpr const char *migrations[] = {schema_v1_sql, schema_v2_sql,
                                      schema_v3_sql};

/// The schema this code writes; stored in `PRAGMA user_version` so a later
/// version of heaven knows which migrations to run.
constexpr int schema_version = static_cast<int>(std::size(migrations));

/// Whether opening a database may create it.
enum class open_mode {
  /// The STORE actor: a new data directory gets a new database.
  create,
  /// The command line: only a database some heaven made.
  existing,
};

/// A failed SQLite call; turned into a `caf::error` at the handler boundary.
struct sqlite_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Now as ISO-8601 UTC with milliseconds, e.g. "2026-11-27T12:00:00.123Z".
std::string now_iso8601() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  auto secs = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

/// Now as Unix milliseconds: outbox rows' times.
int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
      .count();
}

nlohmann::json request_to_json(const deployment_request &r) {
  return {{"github_id", r.github_id},
          {"repo", r.repo},
          {"clone_url", r.clone_url},
          {"sha", r.sha},
          {"ref", r.ref},
          {"environment", r.environment},
          {"task", r.task},
          {"description", r.description},
          {"actor", r.actor},
          {"app", r.app},
          {"provider", r.provider},
          {"environment_url", r.environment_url},
          {"payload_json", r.payload_json}};
}

/// Rebuilds a request stored by `request_to_json`; fields missing from the
/// JSON keep the values already in `r` (taken from the row's columns).
void request_from_json(const nlohmann::json &j, deployment_request &r) {
  r.github_id = j.value("github_id", r.github_id);
  r.repo = j.value("repo", r.repo);
  r.clone_url = j.value("clone_url", r.clone_url);
  r.sha = j.value("sha", r.sha);
  r.ref = j.value("ref", r.ref);
  r.environment = j.value("environment", r.environment);
  r.task = j.value("task", r.task);
  r.description = j.value("description", r.description);
  r.actor = j.value("actor", r.actor);
  r.app = j.value("app", r.app);
  r.provider = j.value("provider", r.provider);
  r.environment_url = j.value("environment_url", r.environment_url);
  r.payload_json = j.value("payload_json", r.payload_json);
}

/// One prepared statement, owned by the `database` that made it.
class statement {
public:
  statement(sqlite3 *db, sqlite3_stmt *stmt) : db_(db), stmt_(stmt) {}

  statement(const statement &) = delete;
  statement &operator=(const statement &) = delete;

  ~statement() { sqlite3_finalize(stmt_); }

  /// Clears earlier bindings and results so the statement can run again.
  statement &reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return *this;
  }

  statement &bind(int i, int64_t x) {
    return check(sqlite3_bind_int64(stmt_, i, x));
  }

  statement &bind(int i, const std::string &x) {
    return check(sqlite3_bind_text(
        stmt_, i, x.data(), static_cast<int>(x.size()), SQLITE_TRANSIENT));
  }

  statement &bind(int i, std::nullptr_t) {
    return check(sqlite3_bind_null(stmt_, i));
  }

  /// Runs one step: true when a row is ready to read.
  bool step() {
    switch (sqlite3_step(stmt_)) {
    case SQLITE_ROW:
      return true;
    case SQLITE_DONE:
      return false;
    default:
      throw sqlite_error(sqlite3_errmsg(db_));
    }
  }

  /// Runs a statement that returns no rows.
  void run() {
    while (step())
      ; // Drain: a PRAGMA may answer with a row we don't need.
  }

  bool is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }

  std::string text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    if (p == nullptr)
      return {};
    return {reinterpret_cast<const char *>(p),
            static_cast<size_t>(sqlite3_column_bytes(stmt_, col))};
  }

  /// The column as JSON: null, an integer or a string.
  nlohmann::json json(int col) const {
    switch (sqlite3_column_type(stmt_, col)) {
    case SQLITE_NULL:
      return nullptr;
    case SQLITE_INTEGER:
      return int64(col);
    default:
      return text(col);
    }
  }

private:
  statement &check(int rc) {
    if (rc != SQLITE_OK)
      throw sqlite_error(sqlite3_errmsg(db_));
    return *this;
  }

  sqlite3 *db_;
  sqlite3_stmt *stmt_;
};

} // namespace

/// A small RAII wrapper over one sqlite3 connection that keeps its prepared
/// statements for reuse.
class database {
public:
  /// Opens the database at `path` (creating it only with open_mode::create),
  /// switches it to WAL and brings its schema up to date. Throws
  /// `sqlite_error`, or std::runtime_error when `mode` is
  /// open_mode::existing and there is no file at `path`.
  database(const std::string &path, open_mode mode) {
    auto flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;
    if (mode == open_mode::create)
      flags |= SQLITE_OPEN_CREATE;
    else if (std::error_code ec; !std::filesystem::exists(path, ec))
      throw std::runtime_error("no database at " + path +
                               ": has heaven run with this data directory?");
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw sqlite_error("cannot open " + path + ": " + why);
    }
    try {
      // Another connection (heaven's store, or the command line) may hold
      // the write lock for a moment: wait for it rather than fail.
      sqlite3_busy_timeout(db_, 5000);
      exec("PRAGMA foreign_keys=ON");
      exec("PRAGMA journal_mode=WAL");
      // An accepted event must be on disk before the webhook is answered.
      exec("PRAGMA synchronous=FULL");
      migrate(path);
    } catch (...) {
      cache_.clear();
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw;
    }
  }

  database(const database &) = delete;
  database &operator=(const database &) = delete;

  ~database() {
    cache_.clear(); // Statements must be finalized before the close.
    sqlite3_close_v2(db_);
  }

  /// Runs one or more statements without results.
  void exec(const std::string &sql) {
    char *msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string why = msg ? msg : sqlite3_errmsg(db_);
      sqlite3_free(msg);
      throw sqlite_error(why);
    }
  }

  /// A fresh statement, finalized when it goes out of scope.
  statement prepare(const std::string &sql) {
    return statement(db_, compile(sql));
  }

  /// A cached statement, reset and ready for new bindings.
  statement &cached(const std::string &sql) {
    auto i = cache_.find(sql);
    if (i == cache_.end())
      i = cache_.try_emplace(sql, db_, compile(sql)).first;
    return i->second.reset();
  }

  /// True outside a transaction.
  bool autocommit() const { return sqlite3_get_autocommit(db_) != 0; }

  /// The number of rows the last INSERT/UPDATE/DELETE changed.
  int changes() const { return sqlite3_changes(db_); }

  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

private:
  /// `PRAGMA user_version`: the schema version the file says it has.
  int user_version() {
    auto stmt = prepare("PRAGMA user_version");
    return stmt.step() ? static_cast<int>(stmt.int64(0)) : 0;
  }

  /// Throws when the file is newer than this heaven understands.
  void check_not_newer(const std::string &path, int found) {
    if (found > schema_version)
      throw sqlite_error(path + " has schema version " + std::to_string(found) +
                         ", newer than this heaven's " +
                         std::to_string(schema_version));
  }

  /// Runs the migrations the file lacks, all in one write transaction so
  /// that two connections opening an old file at once migrate it once.
  void migrate(const std::string &path) {
    auto found = user_version();
    check_not_newer(path, found);
    if (found == schema_version)
      return; // The common case takes no write lock.
    exec("BEGIN IMMEDIATE");
    try {
      found = user_version(); // Someone may have migrated it meanwhile.
      check_not_newer(path, found);
      for (int v = found; v < schema_version; ++v)
        exec(migrations[v]);
      exec("PRAGMA user_version=" + std::to_string(schema_version));
      exec("COMMIT");
    } catch (...) {
      char *msg = nullptr;
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &msg);
      sqlite3_free(msg);
      throw;
    }
    if (found > 0)
      spdlog::info("store migrated {} from schema version {} to {}", path,
                   found, schema_version);
  }

  sqlite3_stmt *compile(const std::string &sql) {
    sqlite3_stmt *stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()),
                           &stmt, nullptr) != SQLITE_OK)
      throw sqlite_error(sqlite3_errmsg(db_));
    return stmt;
  }

  sqlite3 *db_ = nullptr;
  std::map<std::string, statement> cache_;
};

namespace {

/// Rolls back unless committed, so an exception leaves no half-done change.
class transaction {
public:
  explicit transaction(database &db) : db_(db) {
    // IMMEDIATE takes the write lock now rather than failing half-way.
    db_.cached("BEGIN IMMEDIATE").run();
  }

  ~transaction() {
    // SQLite ends a transaction itself on some errors (a full disk): then
    // there is nothing left to roll back.
    if (!done_ && !db_.autocommit()) {
      try {
        db_.cached("ROLLBACK").run();
      } catch (const std::exception &e) {
        spdlog::error("store could not roll back: {}", e.what());
      }
    }
  }

  void commit() {
    db_.cached("COMMIT").run();
    done_ = true;
  }

private:
  database &db_;
  bool done_ = false;
};

caf::error store_error(const std::string &what) {
  return caf::make_error(caf::sec::runtime_error, "store: " + what);
}

/// The columns `read_lock` expects, in its order.
constexpr const char *lock_columns =
    "repo, environment, actor, reason, locked_at, deployment_id";

/// A lock row selected as `lock_columns`.
env_lock read_lock(const statement &stmt) {
  env_lock l;
  l.repo = stmt.text(0);
  l.environment = stmt.text(1);
  l.actor = stmt.text(2);
  l.reason = stmt.text(3);
  l.locked_at = stmt.text(4);
  l.deployment_id = stmt.int64(5);
  return l;
}

/// The lock on (repo, environment), if any.
std::optional<env_lock> find_lock(database &db, const std::string &repo,
                                  const std::string &environment) {
  auto &stmt = db.cached(std::string("SELECT ") + lock_columns +
                         " FROM locks WHERE repo = ? AND environment = ?");
  stmt.bind(1, repo).bind(2, environment);
  std::optional<env_lock> result;
  if (stmt.step())
    result = read_lock(stmt);
  // A statement left on a row keeps its read snapshot open, and a later
  // write of this connection would then fail behind another's (the CLI's).
  stmt.reset();
  return result;
}

/// Removes the lock on (repo, environment); returns it, if there was one.
std::optional<env_lock> delete_lock(database &db, const std::string &repo,
                                    const std::string &environment) {
  auto held = find_lock(db, repo, environment);
  if (held)
    db.cached("DELETE FROM locks WHERE repo = ? AND environment = ?")
        .bind(1, repo)
        .bind(2, environment)
        .run();
  return held;
}

/// Records `repo` (active) unless known; returns whether it is active.
bool note_repository(database &db, const std::string &repo,
                     const std::string &now) {
  db.cached("INSERT INTO repositories(repo, active, first_seen) "
            "VALUES(?, 1, ?) ON CONFLICT(repo) DO NOTHING")
      .bind(1, repo)
      .bind(2, now)
      .run();
  auto &stmt = db.cached("SELECT active FROM repositories WHERE repo = ?");
  stmt.bind(1, repo);
  bool active = !stmt.step() || stmt.int64(0) != 0;
  stmt.reset();
  return active;
}

/// Inserts a deployment event's record (state "queued" until the rules say
/// otherwise, in the same transaction); its local id.
int64_t insert_deployment(database &db, const inbound_event &ev,
                          const std::string &now) {
  const auto &r = ev.deployment;
  // The description starts as GitHub's deployment description; status
  // updates replace it.
  db.cached("INSERT INTO deployments(delivery, github_id, repo, app, "
            "environment, ref, sha, task, provider, actor, state, "
            "description, request, created_at, updated_at) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)")
      .bind(1, ev.delivery)
      .bind(2, r.github_id)
      .bind(3, r.repo)
      .bind(4, r.app)
      .bind(5, r.environment)
      .bind(6, r.ref)
      .bind(7, r.sha)
      .bind(8, r.task)
      .bind(9, r.provider)
      .bind(10, r.actor)
      .bind(11, r.description)
      .bind(12, request_to_json(r).dump())
      .bind(13, now)
      .bind(14, now)
      .run();
  return db.last_insert_rowid();
}

/// Applies a deployment's lock action (or, with none, looks the lock up)
/// for (repo, its environment) and fills `res.lock_state` and `res.lock`.
void apply_lock_rule(database &db, const inbound_event &ev,
                     const std::string &repo, const std::string &now,
                     accept_result &res) {
  const auto &r = ev.deployment;
  auto held = find_lock(db, repo, r.environment);
  if (ev.lock_action == "lock") {
    if (held && held->actor != r.actor) {
      res.lock_state = "already_locked";
      res.lock = std::move(*held);
      return;
    }
    // A re-lock by the holder keeps its locked_at (and actor): it is the
    // same lock with a new reason.
    db.cached("INSERT INTO locks(repo, environment, actor, reason, "
              "locked_at, deployment_id) VALUES(?, ?, ?, ?, ?, ?) "
              "ON CONFLICT(repo, environment) DO UPDATE SET "
              "reason = excluded.reason, "
              "deployment_id = excluded.deployment_id")
        .bind(1, repo)
        .bind(2, r.environment)
        .bind(3, r.actor)
        .bind(4, r.description)
        .bind(5, now)
        .bind(6, res.deployment_id)
        .run();
    res.lock_state = "locked";
    res.lock = find_lock(db, repo, r.environment).value();
  } else if (ev.lock_action == "unlock") {
    if (auto removed = delete_lock(db, repo, r.environment)) {
      res.lock_state = "unlocked";
      res.lock = std::move(*removed);
    } else {
      res.lock_state = "not_locked";
      res.lock.repo = repo;
      res.lock.environment = r.environment;
    }
  } else if (held) {
    res.lock_state = "locked";
    res.lock = std::move(*held);
  }
}

/// Adds one row to the outbox (in the caller's transaction); returns it
/// with its id.
outbox_row insert_outbox(database &db, std::string kind, std::string stream,
                         std::string body, int64_t created_ms = 0) {
  outbox_row row{0, std::move(kind), std::move(stream), std::move(body),
                 created_ms > 0 ? created_ms : now_ms()};
  db.cached("INSERT INTO outbox(kind, stream, body, created_at) "
            "VALUES(?, ?, ?, ?)")
      .bind(1, row.kind)
      .bind(2, row.stream)
      .bind(3, row.body)
      .bind(4, row.created_ms)
      .run();
  row.id = db.last_insert_rowid();
  return row;
}

/// The stream of deployment `id`'s statuses: they go to GitHub in order.
std::string status_stream(int64_t id) { return "d" + std::to_string(id); }

/// Queues the GitHub status `state` of deployment `id` (of `r`).
outbox_row queue_status(database &db, int64_t id, const deployment_request &r,
                        const std::string &state,
                        const std::string &description) {
  nlohmann::json body = {{"repo", r.repo},
                         {"github_id", r.github_id},
                         {"deployment_id", id},
                         {"state", state},
                         {"description", description},
                         {"environment_url", r.environment_url}};
  return insert_outbox(db, "status", status_stream(id),
                       body.dump(-1, ' ', false,
                                 nlohmann::json::error_handler_t::replace));
}

/// Sets deployment `id`'s state and description; a terminal state also sets
/// finished_at, "running" sets started_at.
void set_state(database &db, int64_t id, const std::string &state,
               const std::string &description, const std::string &now) {
  db.cached("UPDATE deployments SET state = ?1, description = ?2, "
            "updated_at = ?3, "
            "started_at = CASE WHEN ?1 = 'running' THEN ?3 ELSE started_at "
            "END, "
            "finished_at = CASE WHEN ?4 THEN coalesce(finished_at, ?3) "
            "ELSE finished_at END WHERE id = ?5")
      .bind(1, state)
      .bind(2, description)
      .bind(3, now)
      .bind(4, int64_t{terminal_state(state) ? 1 : 0})
      .bind(5, id)
      .run();
}

/// Whether another deployment of `r`'s app and environment is queued or
/// running (the concurrency rule: one at a time).
bool busy(database &db, int64_t id, const deployment_request &r) {
  auto &stmt = db.cached(
      "SELECT 1 FROM deployments WHERE app = ? AND environment = ? "
      "AND state IN ('queued', 'running') AND id != ? LIMIT 1");
  stmt.bind(1, r.app).bind(2, r.environment).bind(3, id);
  bool found = stmt.step();
  stmt.reset(); // See find_lock.
  return found;
}

/// The sha last recorded for (repo, environment), "" when none.
std::string revision(database &db, const std::string &repo,
                     const std::string &environment) {
  auto &stmt = db.cached(
      "SELECT sha FROM revisions WHERE repo = ? AND environment = ?");
  stmt.bind(1, repo).bind(2, environment);
  std::string sha = stmt.step() ? stmt.text(0) : std::string{};
  stmt.reset(); // See find_lock.
  return sha;
}

/// Records `sha` as (repo, environment)'s revision, replacing the last.
void record_revision(database &db, const std::string &repo,
                     const std::string &environment, const std::string &sha) {
  db.cached("INSERT INTO revisions(repo, environment, sha, recorded_at) "
            "VALUES(?, ?, ?, ?) ON CONFLICT(repo, environment) DO UPDATE SET "
            "sha = excluded.sha, recorded_at = excluded.recorded_at")
      .bind(1, repo)
      .bind(2, environment)
      .bind(3, sha)
      .bind(4, now_iso8601())
      .run();
}

/// What a transaction committed to the outbox, to hand to its subscribers
/// once the commit is done.
using committed_rows = std::vector<outbox_row>;

/// Records a delivery and everything it decides, in one transaction: the
/// repository, the deployment record, the lock change, the rules' verdict
/// and the status that says so. A lock task and a deployment arriving
/// together are thus ordered: never do both pass; two deployments of one
/// app and environment: never do both run.
accept_result accept(database &db, const inbound_event &ev,
                     committed_rows &rows) {
  auto now = now_iso8601();
  transaction tx{db};
  db.cached("INSERT OR IGNORE INTO deliveries(delivery, event, body, "
            "received_at) VALUES(?, ?, ?, ?)")
      .bind(1, ev.delivery)
      .bind(2, ev.type)
      .bind(3, ev.body)
      .bind(4, now)
      .run();
  accept_result res;
  if (db.changes() == 0) {
    res.duplicate = true;
    return res; // The rollback changes nothing: nothing was written.
  }
  const auto &repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
  if (!repo.empty() && !note_repository(db, repo, now)) {
    // The delivery stays recorded, so a redelivery is a duplicate.
    res.ignored = true;
  } else if (ev.type == "deployment") {
    const auto &r = ev.deployment;
    res.deployment_id = insert_deployment(db, ev, now);
    apply_lock_rule(db, ev, repo, now, res);
    admission a;
    a.lock_action = ev.lock_action;
    a.lock_state = res.lock_state;
    a.holder = res.lock.actor;
    a.busy = ev.lock_action.empty() && res.lock_state.empty()
             && busy(db, res.deployment_id, r);
    a.refusal = ev.refusal;
    auto verdict = admit(r, a);
    if (verdict.state.empty())
      verdict = {"queued", queued_description(r)};
    set_state(db, res.deployment_id, verdict.state, verdict.description, now);
    rows.push_back(queue_status(db, res.deployment_id, r, verdict.state,
                                verdict.description));
    res.state = std::move(verdict.state);
    res.description = std::move(verdict.description);
  } else if (ev.type == "deployment_status") {
    // "The last deployed sha" is decided here, once: the notice carries the
    // revision before it, whenever and however often it is delivered.
    const auto &n = ev.notice;
    std::string base;
    if (records_revision(n)) {
      base = revision(db, n.repo, n.environment);
      record_revision(db, n.repo, n.environment, n.sha);
    }
    rows.push_back(insert_outbox(db, notice_kind, notice_stream(n),
                                 notice_row_body(n, base)));
  }
  tx.commit();
  return res;
}

/// The stream of auto-deployments to `x`'s app and environment.
std::string deploy_stream(const auto_deployment &x) {
  return x.repo + ":" + x.app + ":" + x.environment;
}

/// True only for the first claim of (repo, app, environment, sha); the
/// first also queues the deployment's creation, in the same transaction.
bool claim(database &db, const auto_deployment &x, committed_rows &rows) {
  auto request = nlohmann::json::parse(x.body, nullptr, false);
  if (!request.is_object())
    throw std::invalid_argument("the auto deployment's request is not a "
                                "JSON object");
  transaction tx{db};
  db.cached("INSERT OR IGNORE INTO auto_deploys(repo, app, environment, sha, "
            "claimed_at) VALUES(?, ?, ?, ?, ?)")
      .bind(1, x.repo)
      .bind(2, x.app)
      .bind(3, x.environment)
      .bind(4, x.sha)
      .bind(5, now_iso8601())
      .run();
  if (db.changes() != 1)
    return false;
  nlohmann::json body = {{"repo", x.repo},
                         {"app", x.app},
                         {"environment", x.environment},
                         {"sha", x.sha},
                         {"request", std::move(request)}};
  rows.push_back(insert_outbox(
      db, "deploy", deploy_stream(x),
      body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  tx.commit();
  return true;
}

/// The request of deployment `id` and its state, if there is such a
/// deployment.
std::optional<std::pair<deployment_request, std::string>>
find_deployment(database &db, int64_t id) {
  auto &stmt = db.cached("SELECT state, request, repo, github_id FROM "
                         "deployments WHERE id = ?");
  stmt.bind(1, id);
  if (!stmt.step()) {
    stmt.reset();
    return std::nullopt;
  }
  auto state = stmt.text(0);
  deployment_request r;
  r.repo = stmt.text(2);
  r.github_id = stmt.int64(3);
  auto j = nlohmann::json::parse(stmt.text(1), nullptr, false);
  stmt.reset();
  if (j.is_object()) {
    try {
      request_from_json(j, r);
    } catch (const nlohmann::json::exception &e) {
      spdlog::error("store found a damaged request for deployment {}: {}", id,
                    e.what());
    }
  }
  return std::make_pair(std::move(r), std::move(state));
}

/// Moves queued deployment `id` to running and queues its `in_progress`
/// status; false (nothing written) when it is not queued.
bool start(database &db, int64_t id, const std::string &description,
           committed_rows &rows) {
  auto now = now_iso8601();
  transaction tx{db};
  auto found = find_deployment(db, id);
  if (!found || found->second != "queued")
    return false;
  set_state(db, id, "running", description, now);
  rows.push_back(
      queue_status(db, id, found->first, "in_progress", description));
  tx.commit();
  return true;
}

/// Ends deployment `id` and queues its terminal status; false (nothing
/// written) when it has no such deployment or it has ended already.
bool finish(database &db, int64_t id, const provider_outcome &outcome,
            committed_rows &rows) {
  if (!terminal_state(outcome.state))
    throw std::invalid_argument("'" + outcome.state +
                                "' is not a state a deployment ends in");
  auto now = now_iso8601();
  transaction tx{db};
  auto found = find_deployment(db, id);
  if (!found || terminal_state(found->second))
    return false;
  set_state(db, id, outcome.state, outcome.description, now);
  rows.push_back(queue_status(db, id, found->first, outcome.state,
                              outcome.description));
  tx.commit();
  return true;
}

/// The unsettled rows of `kind`, oldest first.
std::vector<outbox_row> unsettled(database &db, const std::string &kind) {
  std::vector<outbox_row> result;
  auto &stmt = db.cached("SELECT id, kind, stream, body, created_at FROM "
                         "outbox WHERE kind = ? AND settled_at IS NULL "
                         "ORDER BY id");
  stmt.bind(1, kind);
  while (stmt.step())
    result.push_back({stmt.int64(0), stmt.text(1), stmt.text(2), stmt.text(3),
                      stmt.int64(4)});
  return result;
}

/// Settles rows and adds new ones, in one transaction.
void change_outbox(database &db, const outbox_change &change,
                   committed_rows &rows) {
  auto now = now_ms();
  transaction tx{db};
  for (auto &x : change.settled)
    db.cached("UPDATE outbox SET settled_at = ?, outcome = ? WHERE id = ? "
              "AND settled_at IS NULL")
        .bind(1, now)
        .bind(2, x.outcome)
        .bind(3, x.id)
        .run();
  // What the settled rows lead to is written at the moment they settle.
  for (auto &x : change.added)
    rows.push_back(insert_outbox(db, x.kind, x.stream, x.body, now));
  tx.commit();
}

std::string list(database &db, int32_t n) {
  auto result = nlohmann::json::array();
  if (n <= 0) // SQLite reads a negative LIMIT as "no limit".
    return result.dump();
  static constexpr const char *fields[] = {
      "id",    "github_id",   "repo",       "app",        "environment",
      "ref",   "sha",         "task",       "provider",   "actor",
      "state", "description", "created_at", "updated_at", "finished_at"};
  auto &stmt = db.cached(
      "SELECT id, github_id, repo, app, environment, ref, sha, task, provider, "
      "actor, state, description, created_at, updated_at, finished_at "
      "FROM deployments ORDER BY id DESC LIMIT ?");
  stmt.bind(1, int64_t{n});
  while (stmt.step()) {
    auto obj = nlohmann::json::object();
    for (int i = 0; i < static_cast<int>(std::size(fields)); ++i)
      obj[fields[i]] = stmt.json(i);
    result.push_back(std::move(obj));
  }
  // A provider's description may hold bytes that are not UTF-8; a listing
  // with a replacement character beats no listing.
  return result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<unfinished_deployment> pending(database &db) {
  std::vector<unfinished_deployment> result;
  auto &stmt = db.cached(
      "SELECT id, state, request, github_id, repo, app, environment, ref, sha, "
      "task, provider, actor, description FROM deployments "
      "WHERE state IN ('queued', 'running') ORDER BY id ASC");
  while (stmt.step()) {
    unfinished_deployment x;
    x.id = stmt.int64(0);
    x.state = stmt.text(1);
    auto &r = x.request;
    // The columns are the fallback should the JSON be damaged or old.
    r.github_id = stmt.int64(3);
    r.repo = stmt.text(4);
    r.app = stmt.text(5);
    r.environment = stmt.text(6);
    r.ref = stmt.text(7);
    r.sha = stmt.text(8);
    r.task = stmt.text(9);
    r.provider = stmt.text(10);
    r.actor = stmt.text(11);
    r.description = stmt.text(12);
    r.payload_json = "{}";
    auto j = nlohmann::json::parse(stmt.text(2), nullptr, false);
    if (j.is_object()) {
      try {
        request_from_json(j, r);
      } catch (const nlohmann::json::exception &e) {
        spdlog::error("store found a damaged request for deployment {}: {}",
                      x.id, e.what());
      }
    } else {
      spdlog::error("store found no readable request for deployment {}; "
                    "rebuilding it from its columns",
                    x.id);
    }
    result.push_back(std::move(x));
  }
  return result;
}

/// Every lock, oldest first (ties by repository, then environment).
std::vector<env_lock> locks(database &db) {
  std::vector<env_lock> result;
  auto &stmt = db.cached(std::string("SELECT ") + lock_columns +
                         " FROM locks ORDER BY locked_at, repo, environment");
  while (stmt.step())
    result.push_back(read_lock(stmt));
  return result;
}

/// The deployment payload stored in a request JSON ("{}" when missing).
std::string stored_payload(const std::string &request, int64_t id) {
  auto j = nlohmann::json::parse(request, nullptr, false);
  if (j.is_object()) {
    auto i = j.find("payload_json");
    if (i != j.end() && i->is_string() && !i->get<std::string>().empty())
      return i->get<std::string>();
  } else {
    spdlog::error("store found no readable request for deployment {}; "
                  "using an empty payload",
                  id);
  }
  return "{}";
}

/// For `repo`: each app+environment's newest successful `deploy` (by local
/// id), ordered by app and environment, with the environment's lock.
std::vector<deployed_environment> latest(database &db,
                                         const std::string &repo) {
  std::vector<deployed_environment> result;
  auto &stmt = db.cached(
      "SELECT app, environment, sha, request, github_id, id FROM deployments "
      "WHERE id IN (SELECT max(id) FROM deployments WHERE repo = ?1 "
      "AND task = 'deploy' AND state = 'success' GROUP BY app, environment) "
      "ORDER BY app, environment");
  stmt.bind(1, repo);
  while (stmt.step()) {
    deployed_environment x;
    x.app = stmt.text(0);
    x.environment = stmt.text(1);
    x.sha = stmt.text(2);
    x.github_id = stmt.int64(4);
    x.deployment_id = stmt.int64(5);
    x.payload_json = stored_payload(stmt.text(3), x.deployment_id);
    result.push_back(std::move(x));
  }
  for (auto &x : result) {
    if (auto held = find_lock(db, repo, x.environment)) {
      x.locked = true;
      x.lock = std::move(*held);
    }
  }
  return result;
}

/// One log line saying what `accept` did with a delivery.
void log_accepted(const inbound_event &ev, const accept_result &res) {
  const auto &repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
  if (res.duplicate)
    spdlog::info("store saw delivery {} ({}) before; ignoring it", ev.delivery,
                 ev.type);
  else if (res.ignored)
    spdlog::info("store recorded delivery {} ({}) of {}, which is disabled: "
                 "ignoring it",
                 ev.delivery, ev.type, repo);
  else if (res.deployment_id != 0)
    spdlog::info("store recorded delivery {} as deployment {} of {} to {}{}",
                 ev.delivery, res.deployment_id, ev.deployment.repo,
                 ev.deployment.environment,
                 res.lock_state.empty()
                     ? std::string{}
                     : " (" + res.lock_state + ", held by " +
                           (res.lock.actor.empty() ? "nobody"
                                                   : res.lock.actor) +
                           ")");
  else
    spdlog::debug("store recorded delivery {} ({})", ev.delivery, ev.type);
}

} // namespace

store_state::store_state() = default;

store_state::~store_state() = default;

namespace {

using store_ptr = store_actor::stateful_pointer<store_state>;

/// Hands rows just committed to the outboxes subscribed to their kind.
void publish(store_ptr self, committed_rows &rows) {
  if (rows.empty())
    return;
  std::map<std::string, std::vector<outbox_row>> by_kind;
  for (auto &row : rows)
    by_kind[row.kind].push_back(std::move(row));
  rows.clear();
  for (auto &[kind, batch] : by_kind) {
    auto i = self->state.subscribers.find(kind);
    if (i == self->state.subscribers.end())
      continue;
    for (auto &sink : i->second)
      self->send(sink, outbox_atom::value, batch);
  }
}

/// Tells the health board whether the last write worked: a store that
/// cannot write makes /healthz say so until a write works again.
void wrote(store_ptr self, const char *what = nullptr) {
  auto &health = self->state.health;
  if (!health)
    return;
  if (what == nullptr) {
    if (health->recover("store"))
      spdlog::info("store can write again");
  } else {
    health->fail("store", std::string{"cannot write: "} + what);
  }
}

} // namespace

store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path,
      std::shared_ptr<health_board> health) {
  self->state.health = std::move(health);
  std::string open_error;
  try {
    self->state.db = std::make_unique<database>(path, open_mode::create);
    spdlog::info("store opened {}", path);
  } catch (const std::exception &e) {
    open_error = e.what();
    spdlog::error("store {}", open_error);
    if (self->state.health)
      self->state.health->fail("store", open_error);
  }
  // Without a database every request is answered with the opening error, so
  // whoever asks first (start-up asks for pending deployments) learns why.
  auto db = [self, open_error]() -> database & {
    if (!self->state.db)
      throw sqlite_error(open_error);
    return *self->state.db;
  };
  return {
      [=](accept_atom, const inbound_event &ev) -> caf::result<accept_result> {
        committed_rows rows;
        try {
          auto res = accept(db(), ev, rows);
          wrote(self);
          log_accepted(ev, res);
          publish(self, rows);
          return res;
        } catch (const std::exception &e) {
          spdlog::error("store could not record delivery {}: {}", ev.delivery,
                        e.what());
          wrote(self, e.what());
          return store_error(e.what());
        }
      },
      [=](start_atom, int64_t id,
          const std::string &description) -> caf::result<bool> {
        committed_rows rows;
        try {
          auto started = start(db(), id, description, rows);
          wrote(self);
          if (!started)
            spdlog::warn("store found deployment {} not queued: it does not "
                         "start",
                         id);
          publish(self, rows);
          return started;
        } catch (const std::exception &e) {
          spdlog::error("store could not mark deployment {} running: {}", id,
                        e.what());
          wrote(self, e.what());
          return store_error(e.what());
        }
      },
      [=](finish_atom, int64_t id,
          const provider_outcome &outcome) -> caf::result<bool> {
        committed_rows rows;
        try {
          auto ended = finish(db(), id, outcome, rows);
          wrote(self);
          if (!ended)
            spdlog::warn("store found deployment {} ended already: it keeps "
                         "its first end, not {}",
                         id, outcome.state);
          publish(self, rows);
          return ended;
        } catch (const std::exception &e) {
          spdlog::error("store could not mark deployment {} {}: {}", id,
                        outcome.state, e.what());
          wrote(self, e.what());
          return store_error(e.what());
        }
      },
      [=](subscribe_atom, const std::string &kind, const outbox_actor &sink)
          -> caf::result<std::vector<outbox_row>> {
        try {
          auto rows = unsettled(db(), kind);
          self->state.subscribers[kind].push_back(sink);
          if (!rows.empty())
            spdlog::info("store has {} undelivered {} message(s) from "
                         "before",
                         rows.size(), kind);
          return rows;
        } catch (const std::exception &e) {
          spdlog::error("store could not read the {} outbox: {}", kind,
                        e.what());
          return store_error(e.what());
        }
      },
      [=](outbox_atom, const outbox_change &change) -> caf::result<bool> {
        committed_rows rows;
        try {
          change_outbox(db(), change, rows);
          wrote(self);
          publish(self, rows);
          return true;
        } catch (const std::exception &e) {
          spdlog::error("store could not settle {} outbox row(s): {}",
                        change.settled.size(), e.what());
          wrote(self, e.what());
          return store_error(e.what());
        }
      },
      [=](list_atom, int32_t n) -> caf::result<std::string> {
        try {
          return list(db(), n);
        } catch (const std::exception &e) {
          spdlog::error("store could not list deployments: {}", e.what());
          return store_error(e.what());
        }
      },
      [=](pending_atom) -> caf::result<std::vector<unfinished_deployment>> {
        try {
          return pending(db());
        } catch (const std::exception &e) {
          spdlog::error("store could not list unfinished deployments: {}",
                        e.what());
          return store_error(e.what());
        }
      },
      [=](locks_atom) -> caf::result<std::vector<env_lock>> {
        try {
          return locks(db());
        } catch (const std::exception &e) {
          spdlog::error("store could not list locks: {}", e.what());
          return store_error(e.what());
        }
      },
      [=](latest_atom, const std::string &repo)
          -> caf::result<std::vector<deployed_environment>> {
        try {
          return latest(db(), repo);
        } catch (const std::exception &e) {
          spdlog::error("store could not list the deployed environments of "
                        "{}: {}",
                        repo, e.what());
          return store_error(e.what());
        }
      },
      [=](claim_atom, const auto_deployment &x) -> caf::result<bool> {
        committed_rows rows;
        try {
          auto first = claim(db(), x, rows);
          wrote(self);
          publish(self, rows);
          return first;
        } catch (const std::invalid_argument &e) {
          spdlog::error("store refuses the auto-deployment of {} ({}) to {} "
                        "at {}: {}",
                        x.repo, x.app, x.environment, x.sha, e.what());
          return store_error(e.what());
        } catch (const std::exception &e) {
          spdlog::error("store could not claim the auto-deployment of {} "
                        "({}) to {} at {}: {}",
                        x.repo, x.app, x.environment, x.sha, e.what());
          wrote(self, e.what());
          return store_error(e.what());
        }
      },
  };
}

// -- the command line's access ---------------------------------------------

std::vector<env_lock> read_locks(const std::string &path) {
  database db{path, open_mode::existing};
  return locks(db);
}

bool remove_lock(const std::string &path, const std::string &repo,
                 const std::string &environment) {
  database db{path, open_mode::existing};
  transaction tx{db};
  auto removed = delete_lock(db, repo, environment);
  tx.commit();
  return removed.has_value();
}

std::vector<repository_record> read_repositories(const std::string &path) {
  database db{path, open_mode::existing};
  std::vector<repository_record> result;
  auto &stmt = db.cached(
      "SELECT repo, active, first_seen FROM repositories ORDER BY repo");
  while (stmt.step())
    result.push_back({stmt.text(0), stmt.int64(1) != 0, stmt.text(2)});
  return result;
}

void set_repository_active(const std::string &path, const std::string &repo,
                           bool active) {
  database db{path, open_mode::existing};
  db.cached("INSERT INTO repositories(repo, active, first_seen) "
            "VALUES(?, ?, ?) ON CONFLICT(repo) DO UPDATE SET "
            "active = excluded.active")
      .bind(1, repo)
      .bind(2, int64_t{active ? 1 : 0})
      .bind(3, now_iso8601())
      .run();
}

} // namespace heaven
