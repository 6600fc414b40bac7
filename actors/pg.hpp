/// A small RAII wrapper over one libpq connection to PostgreSQL: plain SQL,
/// parameterised queries with text parameters, results read by row and
/// column, transactions, LISTEN/NOTIFY and advisory locks; errors as
/// exceptions. Knows nothing of heaven's tables. libpq-fe.h stays in
/// pg.cpp: this header only forward-declares libpq's types.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct pg_conn;
struct pg_result;

namespace heaven::pg {

/// A failed libpq call (no connection, a refused sign-in, a failing
/// statement): the text is libpq's or the server's message, never the
/// connection URL (so never its password).
struct error : std::runtime_error {
  explicit error(const std::string& what, std::string state = {})
    : std::runtime_error(what), sqlstate(std::move(state)) {
  }
  explicit error(const char* what) : std::runtime_error(what) {
  }

  /// The server's SQLSTATE ("40P01" for a deadlock, "08007" for a COMMIT
  /// whose connection was lost before its answer came); "" when the error
  /// is none of the server's (no connection, a lost one, a bad column).
  std::string sqlstate;
};

/// One text parameter of a query; std::nullopt is SQL NULL.
using param = std::optional<std::string>;

/// `s` as PostgreSQL takes text: invalid UTF-8 and NUL bytes become U+FFFD
/// (what SQLite's store shows for them when it reads them back as JSON).
/// `connection::query` does this to every parameter.
std::string text_param(std::string_view s);

/// An int64 as a text parameter.
inline param int64_param(int64_t x) {
  return std::to_string(x);
}

/// The rows a statement returned (none for a command).
class result {
public:
  explicit result(pg_result* res);
  ~result();
  result(result&& other) noexcept;
  result& operator=(result&& other) noexcept;
  result(const result&) = delete;
  result& operator=(const result&) = delete;

  /// The command tag: "SELECT 1", "INSERT 0 1", "COMMIT", "ROLLBACK".
  std::string command() const;

  /// The number of rows.
  int rows() const;

  /// The number of columns.
  int columns() const;

  /// The rows a command touched (INSERT, UPDATE, DELETE; 0 otherwise).
  int64_t affected() const;

  bool is_null(int row, int col) const;

  /// The column's text ("" for NULL).
  std::string text(int row, int col) const;

  /// The column as an int64; throws `error` when it is NULL or not a
  /// whole number.
  int64_t int64(int row, int col) const;

private:
  pg_result* res_;
};

/// A notification received on a channel the connection listens on.
struct notification {
  std::string channel;
  std::string payload;
  /// The backend process id of the connection that sent it.
  int sender_pid = 0;
};

/// One connection. Not thread-safe: one owner at a time.
class connection {
public:
  /// Connects to `url` ("postgresql://user:password@host:port/db" or any
  /// libpq connection string); throws `error` when it fails.
  explicit connection(const std::string& url);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Runs plain SQL (one or more statements, no parameters).
  void exec(const std::string& sql);

  /// Runs one statement with text parameters $1, $2, ... A SELECT, INSERT,
  /// UPDATE, DELETE or WITH is prepared on its first run on this
  /// connection (up to `max_prepared` of them) and its plan reused after.
  result query(const std::string& sql, const std::vector<param>& params = {});

  /// How many statements `query` prepares on one connection, at most: its
  /// SQL is a fixed set of texts, but a caller building texts from values
  /// must not grow the server's memory without end.
  static constexpr std::size_t max_prepared = 256;

  /// The server process id serving this connection.
  int backend_pid() const;

  /// LISTEN on `channel` (quoted as an identifier).
  void listen(const std::string& channel);

  /// UNLISTEN `channel`.
  void unlisten(const std::string& channel);

  /// pg_notify(channel, payload): delivered when the surrounding
  /// transaction commits (at once outside one).
  void notify(const std::string& channel, const std::string& payload);

  /// The next notification, waiting up to `timeout` for one (poll on the
  /// connection's socket); std::nullopt when none came in time.
  std::optional<notification>
  wait_notification(std::chrono::milliseconds timeout);

  /// pg_advisory_lock(key): waits until this session holds it.
  void advisory_lock(int64_t key);

  /// pg_try_advisory_lock(key): true when this session now holds it.
  bool try_advisory_lock(int64_t key);

  /// pg_advisory_unlock(key): true when this session held it.
  bool advisory_unlock(int64_t key);

  /// True while the connection is usable.
  bool ok() const;

private:
  /// The connection's error message, trimmed.
  std::string message() const;

  /// The name `sql` is prepared under on this connection, preparing it
  /// first (throws `error` as running it would when that fails);
  /// std::nullopt for a statement not to be prepared.
  std::optional<std::string> prepared(const std::string& sql, int params);

  pg_conn* conn_ = nullptr;
  /// The statements prepared on this connection, by their SQL.
  std::unordered_map<std::string, std::string> prepared_;
};

/// BEGIN on construction; ROLLBACK on destruction unless `commit()` ran.
class transaction {
public:
  explicit transaction(connection& conn);
  ~transaction();
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  /// COMMIT; throws `error` when the commit fails (the transaction is then
  /// over either way). When the connection is lost before COMMIT's answer
  /// came, nobody knows whether it committed: the error's sqlstate is then
  /// "08007" (transaction_resolution_unknown).
  void commit();

private:
  connection& conn_;
  bool done_ = false;
};

} // namespace heaven::pg
