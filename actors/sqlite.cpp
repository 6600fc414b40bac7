#include "actors/sqlite.hpp"

#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace heaven {

// -- statement ----------------------------------------------------------------

statement::~statement() {
  sqlite3_finalize(stmt_);
}

statement& statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}

statement& statement::bind(int i, int64_t x) {
  return check(sqlite3_bind_int64(stmt_, i, x));
}

statement& statement::bind(int i, const std::string& x) {
  return check(sqlite3_bind_text(stmt_, i, x.data(), static_cast<int>(x.size()),
                                 SQLITE_TRANSIENT));
}

statement& statement::bind(int i, std::nullptr_t) {
  return check(sqlite3_bind_null(stmt_, i));
}

bool statement::step() {
  switch (sqlite3_step(stmt_)) {
    case SQLITE_ROW:
      return true;
    case SQLITE_DONE:
      return false;
    default:
      throw sqlite_error(sqlite3_errmsg(db_));
  }
}

void statement::run() {
  while (step())
    ; // Drain: a PRAGMA may answer with a row we don't need.
}

bool statement::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

int64_t statement::int64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

std::string statement::text(int col) const {
  auto p = sqlite3_column_text(stmt_, col);
  if (p == nullptr)
    return {};
  return {reinterpret_cast<const char*>(p),
          static_cast<size_t>(sqlite3_column_bytes(stmt_, col))};
}

statement& statement::check(int rc) {
  if (rc != SQLITE_OK)
    throw sqlite_error(sqlite3_errmsg(db_));
  return *this;
}

// -- database -----------------------------------------------------------------

database::database(const std::string& path, open_mode mode) {
  // SQLite's count of its allocations takes a process-wide mutex at every
  // malloc and free; heaven never asks for the count. This works only
  // before SQLite initializes, so it is tried once, before the first open
  // (a failure, e.g. another open came first, changes nothing).
  static const bool untallied [[maybe_unused]] = sqlite3_config(
                                                   SQLITE_CONFIG_MEMSTATUS, 0)
                                                 == SQLITE_OK;
  // One connection is used by one thread (the store's, or a command's), so
  // its own mutex would only be taken and given back around every call.
  auto flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (mode == open_mode::create)
    flags |= SQLITE_OPEN_CREATE;
  else if (std::error_code ec; !std::filesystem::exists(path, ec))
    throw std::runtime_error("no database at " + path
                             + ": has heaven run with this data directory?");
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
    exec("PRAGMA temp_store=MEMORY");
  } catch (...) {
    close();
    throw;
  }
}

database::~database() {
  close();
}

void database::close() {
  cache_.clear(); // Statements must be finalized before the close.
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

void database::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    throw sqlite_error(why);
  }
}

void database::exec_quietly(const std::string& sql) {
  char* msg = nullptr;
  sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
  sqlite3_free(msg);
}

statement database::prepare(const std::string& sql) {
  return statement(db_, compile(sql));
}

statement& database::cached(const std::string& sql) {
  auto i = cache_.find(sql);
  if (i == cache_.end())
    i = cache_.try_emplace(sql, db_, compile(sql)).first;
  return i->second.reset();
}

void database::checkpoint_by_hand() {
  // A hook of our own replaces SQLite's automatic checkpoint.
  sqlite3_wal_hook(
    db_,
    [](void* pages, sqlite3*, const char*, int n) {
      *static_cast<int*>(pages) = n;
      return SQLITE_OK;
    },
    &log_pages_);
}

void database::checkpoint() {
  log_pages_ = 0;
  if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                nullptr, nullptr)
      != SQLITE_OK)
    throw sqlite_error(std::string{"checkpoint: "} + sqlite3_errmsg(db_));
}

bool database::autocommit() const {
  return sqlite3_get_autocommit(db_) != 0;
}

int database::changes() const {
  return sqlite3_changes(db_);
}

int64_t database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

sqlite3_stmt* database::compile(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt,
                         nullptr)
      != SQLITE_OK)
    throw sqlite_error(sqlite3_errmsg(db_));
  return stmt;
}

// -- transaction --------------------------------------------------------------

transaction::transaction(database& db) : db_(db), nested_(!db.autocommit()) {
  db_.cached(nested_ ? "SAVEPOINT op" : "BEGIN IMMEDIATE").run();
}

transaction::~transaction() {
  // SQLite ends a transaction itself on some errors (a full disk): then
  // there is nothing left to roll back.
  if (!done_ && !db_.autocommit()) {
    try {
      if (nested_) {
        db_.cached("ROLLBACK TO op").run();
        db_.cached("RELEASE op").run();
      } else {
        db_.cached("ROLLBACK").run();
      }
    } catch (const std::exception& e) {
      spdlog::error("store could not roll back: {}", e.what());
    }
  }
}

void transaction::commit() {
  db_.cached(nested_ ? "RELEASE op" : "COMMIT").run();
  done_ = true;
}

} // namespace heaven
