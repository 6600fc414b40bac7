#include "tests/actors/store_backends.hpp"

#include <atomic>
#include <string>

#include <sqlite3.h>
#include <unistd.h>

#include "actors/pg.hpp"
#include "actors/pg_store.hpp"
#include "actors/sqlite_store.hpp"
#include "tests/support/pg_databases.hpp"

namespace fs = std::filesystem;

namespace heaven::test {

namespace {

std::vector<std::string> sqlite_query(const fs::path& db,
                                      const std::string& sql, int column) {
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

void sqlite_exec(const fs::path& db, const std::string& sql) {
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

pg_options options(bool notices, bool migrate) {
  pg_options opts;
  opts.notices = notices;
  opts.migrate = migrate;
  return opts;
}

} // namespace

test_db::test_db(backend kind, fs::path file)
  : kind_(kind), file_(std::move(file)) {
  if (kind_ == backend::sqlite)
    return;
  static std::atomic<int> counter{0};
  name_ = "store_" + std::to_string(::getpid()) + "_"
          + std::to_string(counter++);
  pg::connection admin{shared_cluster().url()};
  admin.exec("CREATE DATABASE " + name_);
  url_ = database_url(name_);
}

test_db::~test_db() {
  if (name_.empty())
    return;
  try {
    pg::connection admin{shared_cluster().url()};
    admin.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    BOOST_TEST_MESSAGE("could not drop " << name_ << ": " << e.what());
  }
}

std::vector<std::string> test_db::query(const std::string& sql,
                                        int column) const {
  if (sqlite())
    return sqlite_query(file_, sql, column);
  std::vector<std::string> rows;
  try {
    pg::connection conn{url_};
    auto res = conn.query(sql);
    for (int i = 0; i < res.rows(); ++i)
      rows.push_back(res.is_null(i, column) ? "NULL" : res.text(i, column));
  } catch (const pg::error& e) {
    BOOST_FAIL(sql << ": " << e.what());
  }
  return rows;
}

void test_db::exec(const std::string& sql) const {
  if (sqlite())
    return sqlite_exec(file_, sql);
  try {
    pg::connection conn{url_};
    conn.exec(sql);
  } catch (const pg::error& e) {
    BOOST_FAIL(sql << ": " << e.what());
  }
}

std::string test_db::json_text(const std::string& column,
                               const std::string& path) const {
  if (sqlite())
    return "json_extract(" + column + ", '$." + path + "')";
  auto keys = path;
  for (auto& c : keys)
    if (c == '.')
      c = ',';
  return "(" + column + "::json #>> '{" + keys + "}')";
}

std::unique_ptr<store_backend> test_db::open(bool notices) const {
  if (sqlite())
    return std::make_unique<sqlite_store>(file_.string(), open_mode::create,
                                          notices);
  return std::make_unique<pg_store>(url_, options(notices, true));
}

store_opener test_db::opener(bool notices) const {
  // The opener outlives no test case: the fixture stops its stores first.
  return [this, notices] { return open(notices); };
}

std::unique_ptr<store_backend> test_db::open_existing() const {
  if (sqlite())
    return std::make_unique<sqlite_store>(file_.string(), open_mode::existing);
  return std::make_unique<pg_store>(url_, options(true, false));
}

std::vector<env_lock> read_locks(const test_db& db) {
  if (db.sqlite())
    return heaven::read_locks(db.string());
  return db.open_existing()->locks();
}

bool remove_lock(const test_db& db, const std::string& repo,
                 const std::string& environment) {
  if (db.sqlite())
    return heaven::remove_lock(db.string(), repo, environment);
  return db.open_existing()->remove_lock(repo, environment);
}

std::vector<repository_record> read_repositories(const test_db& db) {
  if (db.sqlite())
    return heaven::read_repositories(db.string());
  return db.open_existing()->repositories();
}

void set_repository_active(const test_db& db, const std::string& repo,
                           bool active) {
  if (db.sqlite())
    return heaven::set_repository_active(db.string(), repo, active);
  db.open_existing()->set_repository_active(repo, active);
}

} // namespace heaven::test
