#include "tools/support/store_view.hpp"

#include <memory>
#include <stdexcept>
#include <thread>

#include <sqlite3.h>

namespace heaven::test {

namespace {

using db_ptr = std::unique_ptr<sqlite3, decltype(&sqlite3_close)>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)>;

std::string column_text(sqlite3_stmt* stmt, int col) {
  auto text = sqlite3_column_text(stmt, col);
  return text ? reinterpret_cast<const char*>(text) : "";
}

[[noreturn]] void fail(sqlite3* db, const std::string& path,
                       const std::string& what) {
  throw std::runtime_error("reading " + path + ": " + what + ": "
                           + (db ? sqlite3_errmsg(db) : "out of memory"));
}

/// Runs `sql` and hands each row to `row`.
template <class F>
void each_row(sqlite3* db, const std::string& path, const char* sql, F row) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK)
    fail(db, path, sql);
  stmt_ptr stmt{raw, &sqlite3_finalize};
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW)
    row(raw);
  if (rc != SQLITE_DONE)
    fail(db, path, sql);
}

void exec(sqlite3* db, const std::string& path, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
    fail(db, path, sql);
}

bool ended(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

} // namespace

bool store_snapshot::quiet() const {
  if (!unsettled.empty())
    return false;
  for (auto& d : deployments)
    if (!ended(d.state))
      return false;
  return true;
}

std::string store_snapshot::describe() const {
  std::string text;
  auto add = [&](const std::string& part) {
    text += (text.empty() ? "" : "; ") + part;
  };
  for (auto& d : deployments)
    if (!ended(d.state))
      add("deployment " + std::to_string(d.id) + " (GitHub's "
          + std::to_string(d.github_id) + ") is " + d.state);
  for (auto& r : unsettled)
    add("outbox row " + std::to_string(r.id) + " (" + r.kind + ", stream "
        + r.stream + ") is unsettled");
  return text.empty() ? "quiet" : text;
}

store_snapshot read_store(const std::filesystem::path& data_dir) {
  auto path = (data_dir / "heaven.db").string();
  sqlite3* raw = nullptr;
  // Read-only, and never created: only a file heaven made is read.
  auto rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  db_ptr db{raw, &sqlite3_close};
  if (rc != SQLITE_OK)
    fail(raw, path, "open");
  // heaven writes in WAL mode: readers never wait for it, but a checkpoint
  // or a recovery may hold a lock for a moment.
  sqlite3_busy_timeout(raw, 5000);
  store_snapshot s;
  // One read transaction: both tables as of the same commit.
  exec(raw, path, "BEGIN");
  each_row(raw, path,
           "SELECT id, coalesce(github_id, 0), coalesce(state, '') "
           "FROM deployments ORDER BY id",
           [&](sqlite3_stmt* row) {
             s.deployments.push_back({sqlite3_column_int64(row, 0),
                                      sqlite3_column_int64(row, 1),
                                      column_text(row, 2)});
           });
  each_row(raw, path,
           "SELECT id, kind, stream FROM outbox WHERE settled_at IS NULL "
           "ORDER BY id",
           [&](sqlite3_stmt* row) {
             s.unsettled.push_back({sqlite3_column_int64(row, 0),
                                    column_text(row, 1), column_text(row, 2)});
           });
  exec(raw, path, "COMMIT");
  return s;
}

store_snapshot wait_quiet(const std::filesystem::path& data_dir,
                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto s = read_store(data_dir);
    if (s.quiet() || std::chrono::steady_clock::now() > deadline)
      return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

} // namespace heaven::test
