#include "actors/sqlite.hpp"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "base/thread_name.hpp"

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

// -- wal_checkpointer ---------------------------------------------------------

/// The background checkpoints of one writing connection.
///
/// SQLite tells the writer after each commit how many pages its log holds
/// (the WAL hook, which replaces SQLite's automatic checkpoint). Whenever
/// `wake_pages` more than the last checkpoint copied are in the log, this
/// thread is woken and copies them back into the database file with a
/// PASSIVE checkpoint of its own connection, which never blocks the writer:
/// it commits on meanwhile.
///
/// The log starts over from its beginning only after a checkpoint copied all
/// of it, which a thread racing a busy writer never quite does. So once the
/// log holds `restart_pages`, the writer checkpoints at its commit: only
/// what the thread has not copied yet (under `wake_pages`, most often), and
/// its next transaction starts the log over. What a checkpoint costs the
/// writer is mostly its two syncs, not its pages: this way the writer waits
/// for one every `restart_pages`, not every 1000 pages as with SQLite's own.
/// Should the thread fail (a full disk), the writer's checkpoint does all of
/// it, as SQLite's would.
///
/// Both connections sync as `synchronous=FULL` says: a checkpoint syncs the
/// database file before it marks the log as copied, so no commit is lost
/// when the log is then overwritten.
struct database::wal_checkpointer {
  int wake_pages;
  int restart_pages;
  sqlite3* conn = nullptr; // The thread's own connection.
  std::thread thread;
  std::mutex mtx;
  std::condition_variable cv;
  bool wanted = false;
  bool running = false;
  bool stopping = false;
  /// Pages of the log the thread's last checkpoint had copied.
  std::atomic<int> copied{0};
  std::atomic<int64_t> background{0};
  /// Touched by the writer's thread only.
  int64_t finishing = 0;

  wal_checkpointer(int wake, int restart)
    : wake_pages(wake), restart_pages(restart) {
  }

  ~wal_checkpointer() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      stopping = true;
    }
    cv.notify_one();
    if (thread.joinable())
      thread.join();
    sqlite3_close_v2(conn);
  }

  void run() {
    name_this_thread("heaven.wal");
    std::string failed; // The last failure logged, so it is logged once.
    std::unique_lock<std::mutex> lock{mtx};
    for (;;) {
      cv.wait(lock, [this] { return wanted || stopping; });
      if (stopping)
        return;
      wanted = false;
      running = true;
      lock.unlock();
      int pages = 0;
      int done = 0;
      auto rc = sqlite3_wal_checkpoint_v2(
        conn, nullptr, SQLITE_CHECKPOINT_PASSIVE, &pages, &done);
      std::string why = rc == SQLITE_OK || rc == SQLITE_BUSY
                          ? std::string{}
                          : sqlite3_errmsg(conn);
      lock.lock();
      running = false;
      if (rc == SQLITE_OK) {
        background += 1;
        copied = done;
      }
      if (why != failed && !why.empty())
        spdlog::warn("sqlite: background checkpoint failed: {}", why);
      failed = why;
    }
  }

  /// The WAL hook: on the writer's thread, after each commit.
  static int on_commit(void* arg, sqlite3* db, const char* name, int pages) {
    auto* self = static_cast<wal_checkpointer*>(arg);
    if (pages >= self->restart_pages) {
      // Nothing else reads, so this copies all that is left (unless the
      // thread is copying right now: then at the next commit).
      if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
                                    nullptr, nullptr)
          == SQLITE_OK)
        self->finishing += 1;
      return SQLITE_OK;
    }
    // Fewer pages than copied: the log started over.
    auto copied = self->copied.load();
    if (pages < copied)
      self->copied.compare_exchange_strong(copied, 0);
    if (pages - self->copied.load() >= self->wake_pages) {
      std::lock_guard<std::mutex> guard{self->mtx};
      if (!self->running && !self->wanted) {
        self->wanted = true;
        self->cv.notify_one();
      }
    }
    return SQLITE_OK;
  }
};

// -- database -----------------------------------------------------------------

database::database(const std::string& path, open_mode mode) : path_(path) {
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
  // The hook that wakes the thread goes first, then the thread and its
  // connection; this one, the last, then checkpoints as SQLite does.
  if (checkpointer_ && db_)
    sqlite3_wal_hook(db_, nullptr, nullptr);
  checkpointer_.reset();
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

bool database::autocommit() const {
  return sqlite3_get_autocommit(db_) != 0;
}

int database::changes() const {
  return sqlite3_changes(db_);
}

int64_t database::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

void database::checkpoint_in_background(int wake_pages, int restart_pages) {
  if (checkpointer_)
    return;
  auto c = std::make_unique<wal_checkpointer>(wake_pages, restart_pages);
  auto flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &c->conn, flags, nullptr) != SQLITE_OK
      || sqlite3_exec(c->conn, "PRAGMA synchronous=FULL", nullptr, nullptr,
                      nullptr)
           != SQLITE_OK) {
    spdlog::warn("sqlite: no background checkpoints ({}); SQLite checkpoints "
                 "inside commits",
                 c->conn ? sqlite3_errmsg(c->conn) : "out of memory");
    return; // c's destructor closes what was opened.
  }
  c->thread = std::thread{[p = c.get()] { p->run(); }};
  sqlite3_wal_hook(db_, &wal_checkpointer::on_commit, c.get());
  checkpointer_ = std::move(c);
}

database::checkpoint_counts database::checkpoints() const {
  if (!checkpointer_)
    return {};
  return {checkpointer_->background.load(), checkpointer_->finishing};
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
