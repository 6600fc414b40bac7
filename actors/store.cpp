/// The STORE actor: heaven's SQLite database (WAL) in the data directory.
#include "actors/store.hpp"

#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <stdexcept>
#include <utility>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace heaven {

namespace {

/// The schema this code writes; stored in `PRAGMA user_version` so a later
/// version of heaven knows which migrations to run.
constexpr int schema_version = 1;

constexpr const char *schema_sql = R"sql(
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

bool is_terminal(const std::string &state) {
  return state == "success" || state == "failure" || state == "error";
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
  /// Opens (creating if needed) the database at `path`, switches it to WAL
  /// and creates the schema. Throws `sqlite_error`.
  explicit database(const std::string &path) {
    auto flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw sqlite_error("cannot open " + path + ": " + why);
    }
    try {
      sqlite3_busy_timeout(db_, 5000);
      exec("PRAGMA foreign_keys=ON");
      exec("PRAGMA journal_mode=WAL");
      // An accepted event must be on disk before the webhook is answered.
      exec("PRAGMA synchronous=FULL");
      auto version = prepare("PRAGMA user_version");
      auto found = version.step() ? version.int64(0) : 0;
      if (found > schema_version)
        throw sqlite_error(path + " has schema version " +
                           std::to_string(found) + ", newer than this " +
                           "heaven's " + std::to_string(schema_version));
      exec(schema_sql);
      exec("PRAGMA user_version=" + std::to_string(schema_version));
    } catch (...) {
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

  /// The number of rows the last INSERT/UPDATE/DELETE changed.
  int changes() const { return sqlite3_changes(db_); }

  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

private:
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
    if (!done_) {
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

accept_result accept(database &db, const inbound_event &ev) {
  auto now = now_iso8601();
  transaction tx{db};
  db.cached("INSERT OR IGNORE INTO deliveries(delivery, event, body, "
            "received_at) VALUES(?, ?, ?, ?)")
      .bind(1, ev.delivery)
      .bind(2, ev.type)
      .bind(3, ev.body)
      .bind(4, now)
      .run();
  if (db.changes() == 0)
    return {true, 0}; // The rollback changes nothing: nothing was written.
  int64_t id = 0;
  if (ev.type == "deployment") {
    const auto &r = ev.deployment;
    // The description starts as GitHub's deployment description; status
    // updates replace it.
    db.cached("INSERT INTO deployments(delivery, github_id, repo, app, "
              "environment, ref, sha, task, provider, actor, state, "
              "description, request, created_at, updated_at) "
              "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?, ?, ?)")
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
    id = db.last_insert_rowid();
    db.cached("INSERT INTO repositories(repo, active, first_seen) "
              "VALUES(?, 1, ?) ON CONFLICT(repo) DO NOTHING")
        .bind(1, r.repo)
        .bind(2, now)
        .run();
  }
  tx.commit();
  return {false, id};
}

/// Returns false when no deployment has that id.
bool update(database &db, const deployment_update &up) {
  auto now = now_iso8601();
  auto &stmt = db.cached(
      "UPDATE deployments SET state = ?1, description = ?2, updated_at = ?3, "
      "finished_at = CASE WHEN ?4 THEN coalesce(finished_at, ?3) "
      "ELSE finished_at END WHERE id = ?5");
  stmt.bind(1, up.state)
      .bind(2, up.description)
      .bind(3, now)
      .bind(4, int64_t{is_terminal(up.state) ? 1 : 0})
      .bind(5, up.id)
      .run();
  return db.changes() > 0;
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
      "WHERE state IN ('received', 'queued', 'running') ORDER BY id ASC");
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

} // namespace

store_state::store_state() = default;

store_state::~store_state() = default;

store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path) {
  std::string open_error;
  try {
    self->state.db = std::make_unique<database>(path);
    spdlog::info("store opened {}", path);
  } catch (const std::exception &e) {
    open_error = e.what();
    spdlog::error("store {}", open_error);
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
        try {
          auto res = accept(db(), ev);
          if (res.duplicate)
            spdlog::info("store saw delivery {} ({}) before; ignoring it",
                         ev.delivery, ev.type);
          else if (res.deployment_id != 0)
            spdlog::info("store recorded delivery {} as deployment {} of {} "
                         "to {}",
                         ev.delivery, res.deployment_id, ev.deployment.repo,
                         ev.deployment.environment);
          else
            spdlog::debug("store recorded delivery {} ({})", ev.delivery,
                          ev.type);
          return res;
        } catch (const std::exception &e) {
          spdlog::error("store could not record delivery {}: {}", ev.delivery,
                        e.what());
          return store_error(e.what());
        }
      },
      [=](update_atom, const deployment_update &up) {
        try {
          if (!update(db(), up))
            spdlog::warn("store has no deployment {} to mark {}", up.id,
                         up.state);
        } catch (const std::exception &e) {
          spdlog::error("store could not mark deployment {} {}: {}", up.id,
                        up.state, e.what());
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
  };
}

} // namespace heaven
