/// A small RAII wrapper over one SQLite connection: prepared statements,
/// transactions, and errors as exceptions. Knows nothing of heaven's tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace heaven {

/// A failed SQLite call (busy past the timeout, a full disk, a constraint):
/// the store turns it into a `caf::error` at the handler boundary.
struct sqlite_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Whether opening a database may create it.
enum class open_mode {
  /// The STORE actor: a new data directory gets a new database.
  create,
  /// The command line: only a database some heaven made.
  existing,
};

/// One prepared statement, owned by the `database` that made it.
class statement {
public:
  statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {
  }

  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  ~statement();

  /// Clears earlier bindings and results so the statement can run again.
  statement& reset();

  statement& bind(int i, int64_t x);

  statement& bind(int i, const std::string& x);

  statement& bind(int i, std::nullptr_t);

  /// Runs one step: true when a row is ready to read.
  bool step();

  /// Runs a statement that returns no rows.
  void run();

  bool is_null(int col) const;

  int64_t int64(int col) const;

  std::string text(int col) const;

  /// Reads the row's columns from `first` on into `fields`, in order (text
  /// into strings, integers into int64_t).
  template <class... Ts>
  void columns(int first, Ts&... fields) const {
    int col = first;
    (read(col++, fields), ...);
  }

private:
  void read(int col, std::string& x) const {
    x = text(col);
  }

  void read(int col, int64_t& x) const {
    x = int64(col);
  }

  statement& check(int rc);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

/// One sqlite3 connection that keeps its prepared statements for reuse.
/// Use it from one thread at a time: it is opened without SQLite's
/// per-connection mutex.
class database {
public:
  /// Opens the database at `path` (creating it only with open_mode::create)
  /// and switches it to WAL with full syncs. Throws `sqlite_error`, or
  /// std::runtime_error when `mode` is open_mode::existing and there is no
  /// file at `path`.
  database(const std::string& path, open_mode mode);

  database(const database&) = delete;
  database& operator=(const database&) = delete;

  ~database();

  /// Runs one or more statements without results.
  void exec(const std::string& sql);

  /// Runs `sql`, ignoring any error (a ROLLBACK after a failure).
  void exec_quietly(const std::string& sql);

  /// A fresh statement, finalized when it goes out of scope.
  statement prepare(const std::string& sql);

  /// A cached statement, reset and ready for new bindings.
  statement& cached(const std::string& sql);

  /// True outside a transaction.
  bool autocommit() const;

  /// The number of rows the last INSERT/UPDATE/DELETE changed.
  int changes() const;

  int64_t last_insert_rowid() const;

  /// Leaves copying the write-ahead log back into the database file to
  /// `checkpoint`, rather than to the commit that takes the log past 1000
  /// pages: the answers that commit holds need not wait for the copy.
  void checkpoint_by_hand();

  /// Pages in the log after the last commit since the last `checkpoint`
  /// (counted only after checkpoint_by_hand).
  int log_pages() const {
    return log_pages_;
  }

  /// Copies the log back as far as readers allow (SQLite's PASSIVE
  /// checkpoint, which never waits for them), so that a later commit can
  /// start the log over. Throws `sqlite_error`.
  void checkpoint();

private:
  sqlite3_stmt* compile(const std::string& sql);

  void close();

  sqlite3* db_ = nullptr;
  int log_pages_ = 0;
  std::map<std::string, statement> cache_;
};

/// Rolls back unless committed, so an exception leaves no half-done change.
/// Outside a transaction it is one (BEGIN IMMEDIATE ... COMMIT); inside one
/// (the store's group commit, see store_backend::begin_batch) it is a
/// savepoint of it: its commit keeps its changes for the enclosing COMMIT,
/// its rollback undoes only them.
class transaction {
public:
  /// Begins IMMEDIATE (takes the write lock now rather than failing
  /// half-way), or a savepoint when a transaction is open.
  explicit transaction(database& db);

  ~transaction();

  void commit();

private:
  database& db_;
  bool nested_ = false;
  bool done_ = false;
};

} // namespace heaven
