/// The two databases the store's tests run on: a SQLite file in the test's
/// temporary directory, or a fresh PostgreSQL database in one throwaway
/// cluster shared by the test binary (tools/support/pg_cluster: one initdb
/// per binary, then CREATE DATABASE per test case).
///
/// A case written with STORE_CASE(name) runs on both, as
/// `<suite>/sqlite/name` and `<suite>/postgresql/name`; SQLITE_CASE(name)
/// and POSTGRESQL_CASE(name) run on one. The fixture `F` of the enclosing
/// file is constructed with the backend (`F(backend)`).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "actors/store.hpp"
#include "actors/store_backend.hpp"

namespace heaven::test {

enum class backend { sqlite, postgresql };

/// One test case's database. For SQLite it is the file `file` (made by the
/// store when it first opens it); for PostgreSQL an empty database made on
/// construction and dropped on destruction.
class test_db {
public:
  test_db(backend kind, std::filesystem::path file);
  ~test_db();

  test_db(const test_db&) = delete;
  test_db& operator=(const test_db&) = delete;

  backend kind() const {
    return kind_;
  }

  bool sqlite() const {
    return kind_ == backend::sqlite;
  }

  /// The SQLite file (also for PostgreSQL, where nothing makes it).
  const std::filesystem::path& file() const {
    return file_;
  }

  /// For the SQLite-only cases, which use the database as its file.
  operator const std::filesystem::path&() const {
    return file_;
  }

  std::string string() const {
    return file_.string();
  }

  /// The PostgreSQL database's URL ("" for SQLite).
  const std::string& url() const {
    return url_;
  }

  /// Runs one statement on a connection of its own; column `column` of
  /// each row it returns ("NULL" for NULL). A failing statement fails the
  /// test.
  std::vector<std::string> query(const std::string& sql, int column = 0) const;

  /// Runs SQL (one or more statements, no rows) on a connection of its own.
  void exec(const std::string& sql) const;

  /// `path` (a JSON path without "$.": "notice.state") of the JSON text in
  /// `column`, as SQL of this database.
  std::string json_text(const std::string& column,
                        const std::string& path) const;

  /// Opens the store's backend on it as `heaven serve` does (creating or
  /// migrating the schema).
  std::unique_ptr<store_backend> open(bool notices = true) const;

  /// `open` for the STORE actor.
  store_opener opener(bool notices = true) const;

  /// Opens it as the command line does: only a database heaven made.
  std::unique_ptr<store_backend> open_existing() const;

private:
  backend kind_;
  std::filesystem::path file_;
  std::string url_;
  std::string name_;
};

/// What the command line does (`heaven locks`, `unlock`, `repos`), on
/// either database.
std::vector<env_lock> read_locks(const test_db& db);
bool remove_lock(const test_db& db, const std::string& repo,
                 const std::string& environment);
std::vector<repository_record> read_repositories(const test_db& db);
void set_repository_active(const test_db& db, const std::string& repo,
                           bool active);

} // namespace heaven::test

/// A test case on backend `kind`, registered as `name` in the
/// current suite's sub-suite `suite`.
#define HEAVEN_BACKEND_CASE(suite, kind, name)                                 \
  BOOST_AUTO_TEST_SUITE(suite)                                                 \
  BOOST_AUTO_TEST_CASE(name) {                                                 \
    name##_body t{heaven::test::backend::kind};                                \
    t.test_method();                                                           \
  }                                                                            \
  BOOST_AUTO_TEST_SUITE_END()

#define HEAVEN_CASE_BODY(F, name)                                              \
  struct name##_body : F {                                                     \
    using F::F;                                                                \
    void test_method();                                                        \
  };

/// A case run on SQLite and on PostgreSQL (fixture `store_fixture`).
#define STORE_CASE(name)                                                       \
  HEAVEN_CASE_BODY(store_fixture, name)                                        \
  HEAVEN_BACKEND_CASE(sqlite, sqlite, name)                                    \
  HEAVEN_BACKEND_CASE(postgresql, postgresql, name)                            \
  void name##_body::test_method()

/// A case about SQLite itself.
#define SQLITE_CASE(name)                                                      \
  HEAVEN_CASE_BODY(store_fixture, name)                                        \
  HEAVEN_BACKEND_CASE(sqlite, sqlite, name)                                    \
  void name##_body::test_method()

/// A case about PostgreSQL itself.
#define POSTGRESQL_CASE(name)                                                  \
  HEAVEN_CASE_BODY(store_fixture, name)                                        \
  HEAVEN_BACKEND_CASE(postgresql, postgresql, name)                            \
  void name##_body::test_method()
