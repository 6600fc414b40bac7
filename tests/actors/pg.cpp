// The libpq wrapper against a real, throwaway PostgreSQL cluster
// (tools/support/pg_cluster: initdb in a temporary directory, postgres on a
// loopback port).
#include "actors/pg.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include "tests/support/pg_databases.hpp"

using namespace heaven;
using heaven::test::error_of;
using heaven::test::pg_cluster;
namespace fs = std::filesystem;

namespace {

/// One cluster for the cases that need just a database (made on first use,
/// removed when the test binary ends).
pg_cluster& cluster() {
  return heaven::test::shared_cluster();
}

/// The number of rows of `table`, as `conn` sees them.
int64_t count(pg::connection& conn, const std::string& table) {
  return conn.query("SELECT count(*) FROM " + table).int64(0, 0);
}

/// True when something accepts a TCP connection on 127.0.0.1:`port`.
bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  auto ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0;
  ::close(fd);
  return ok;
}

} // namespace

BOOST_AUTO_TEST_SUITE(pg_wrapper)

BOOST_AUTO_TEST_CASE(exec_and_parameters_with_nulls_and_unicode) {
  pg::connection conn{cluster().url()};
  BOOST_TEST(conn.ok());
  conn.exec("CREATE TABLE notes (id bigint PRIMARY KEY, name text,"
            " note text); CREATE INDEX notes_name ON notes (name)");
  auto unicode = std::string{"Grüße, 世界 🚀 'quoted' \"double\" $1"};
  auto inserted = conn.query("INSERT INTO notes VALUES ($1, $2, $3)",
                             {pg::int64_param(1), unicode, std::nullopt});
  BOOST_TEST(inserted.affected() == 1);
  BOOST_TEST(inserted.command() == "INSERT 0 1");
  conn.query("INSERT INTO notes VALUES ($1, $2, $3)",
             {pg::int64_param(2), std::string{}, std::string{"x"}});

  auto rows = conn.query("SELECT id, name, note FROM notes ORDER BY id");
  BOOST_TEST(rows.rows() == 2);
  BOOST_TEST(rows.columns() == 3);
  BOOST_TEST(rows.int64(0, 0) == 1);
  BOOST_TEST(rows.text(0, 1) == unicode);
  BOOST_TEST(rows.is_null(0, 2));
  BOOST_TEST(rows.text(0, 2) == "");
  // An empty string is not NULL.
  BOOST_TEST(!rows.is_null(1, 1));
  BOOST_TEST(rows.text(1, 1) == "");
  BOOST_TEST(rows.text(1, 2) == "x");
  BOOST_CHECK_THROW(rows.int64(0, 2), pg::error);
  BOOST_CHECK_THROW(rows.int64(0, 1), pg::error);
  BOOST_CHECK_THROW(rows.text(2, 0), pg::error);

  // A NULL parameter compares as NULL, not as "".
  auto nulls = conn.query("SELECT count(*) FROM notes WHERE note IS NOT "
                          "DISTINCT FROM $1",
                          {std::nullopt});
  BOOST_TEST(nulls.int64(0, 0) == 1);
  auto deleted = conn.query("DELETE FROM notes");
  BOOST_TEST(deleted.affected() == 2);
  conn.exec("DROP TABLE notes");
}

BOOST_AUTO_TEST_CASE(int64_round_trip) {
  pg::connection conn{cluster().url()};
  for (int64_t x : {int64_t{0}, int64_t{-1}, int64_t{4294967296},
                    std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    auto back = conn.query("SELECT $1::bigint, $1::bigint + 0",
                           {pg::int64_param(x)});
    BOOST_TEST(back.int64(0, 0) == x);
    BOOST_TEST(back.int64(0, 1) == x);
    BOOST_TEST(back.text(0, 0) == std::to_string(x));
  }
}

BOOST_AUTO_TEST_CASE(a_failing_statement_says_why) {
  pg::connection conn{cluster().url()};
  auto message = error_of([&] {
    conn.query("SELECT * FROM no_such_table WHERE 1 = $1", {std::string{"1"}});
  });
  BOOST_TEST(message.find("relation \"no_such_table\" does not exist")
             != std::string::npos);
  message = error_of([&] { conn.exec("SELEC 1"); });
  BOOST_TEST(message.find("syntax error") != std::string::npos);
  // The connection is still usable.
  BOOST_TEST(conn.query("SELECT 41 + 1").int64(0, 0) == 42);
}

/// query() prepares a statement on its first run on a connection and runs
/// the prepared one after; BEGIN and COMMIT are run as they are.
BOOST_AUTO_TEST_CASE(statements_are_prepared_once_per_connection) {
  pg::connection conn{cluster().url()};
  auto prepared = [&](const std::string& sql) {
    return conn
      .query("SELECT count(*) FROM pg_prepared_statements "
             "WHERE statement = $1",
             {sql})
      .int64(0, 0);
  };
  const std::string add = "SELECT $1::bigint + 1";
  BOOST_TEST(conn.query(add, {std::string{"41"}}).int64(0, 0) == 42);
  BOOST_TEST(conn.query(add, {std::string{"99"}}).int64(0, 0) == 100);
  BOOST_TEST(prepared(add) == 1);
  conn.query("BEGIN");
  conn.query("COMMIT");
  BOOST_TEST(prepared("BEGIN") == 0);
  BOOST_TEST(prepared("COMMIT") == 0);
  // Another connection prepares its own.
  pg::connection other{cluster().url()};
  BOOST_TEST(other.query(add, {std::string{"1"}}).int64(0, 0) == 2);
  // A table made again under a prepared statement: PostgreSQL plans the
  // statement again.
  conn.exec("CREATE TABLE remade (a bigint)");
  conn.exec("INSERT INTO remade VALUES (7)");
  const std::string read = "SELECT a FROM remade WHERE a = $1";
  BOOST_TEST(conn.query(read, {std::string{"7"}}).rows() == 1);
  conn.exec("DROP TABLE remade");
  auto gone = error_of([&] { conn.query(read, {std::string{"7"}}); });
  BOOST_TEST(gone.find("\"remade\" does not exist") != std::string::npos, gone);
  conn.exec("CREATE TABLE remade (a bigint)");
  conn.exec("INSERT INTO remade VALUES (7), (7)");
  BOOST_TEST(conn.query(read, {std::string{"7"}}).rows() == 2);
  conn.exec("DROP TABLE remade");
  // Texts made from values are prepared up to the bound, then run as they
  // are: all run, and the server holds no more than the bound.
  for (std::size_t i = 0; i < pg::connection::max_prepared + 20; ++i)
    BOOST_TEST(conn
                 .query("SELECT " + std::to_string(i) + " + $1::bigint",
                        {std::string{"1"}})
                 .int64(0, 0)
               == static_cast<int64_t>(i) + 1);
  BOOST_TEST(
    conn.query("SELECT count(*) FROM pg_prepared_statements").int64(0, 0)
    == static_cast<int64_t>(pg::connection::max_prepared));
}

/// A statement that fails to prepare says why as running it would, and
/// leaves nothing prepared.
BOOST_AUTO_TEST_CASE(a_statement_that_fails_to_prepare_says_why) {
  pg::connection conn{cluster().url()};
  const std::string bad = "SELECT a FROM not_made_yet WHERE a = $1";
  auto why = error_of([&] { conn.query(bad, {std::string{"1"}}); });
  BOOST_TEST(why.find("\"not_made_yet\" does not exist") != std::string::npos,
             why);
  conn.exec("CREATE TABLE not_made_yet (a bigint)");
  conn.exec("INSERT INTO not_made_yet VALUES (1)");
  BOOST_TEST(conn.query(bad, {std::string{"1"}}).rows() == 1);
  conn.exec("DROP TABLE not_made_yet");
}

BOOST_AUTO_TEST_CASE(transactions_commit_or_roll_back) {
  pg::connection conn{cluster().url()};
  pg::connection other{cluster().url()};
  conn.exec("CREATE TABLE ledger (id bigint)");
  {
    pg::transaction tx{conn};
    conn.query("INSERT INTO ledger VALUES (1)");
    BOOST_TEST(count(conn, "ledger") == 1);
    BOOST_TEST(count(other, "ledger") == 0);
    // Destroyed without commit: rolled back.
  }
  BOOST_TEST(count(conn, "ledger") == 0);
  {
    pg::transaction tx{conn};
    conn.query("INSERT INTO ledger VALUES (2)");
    tx.commit();
  }
  BOOST_TEST(count(other, "ledger") == 1);
  // A transaction whose statement failed cannot commit.
  {
    pg::transaction tx{conn};
    conn.query("INSERT INTO ledger VALUES (3)");
    BOOST_CHECK_THROW(conn.exec("SELECT * FROM no_such_table"), pg::error);
    BOOST_CHECK_THROW(tx.commit(), pg::error);
  }
  BOOST_TEST(count(other, "ledger") == 1);
  BOOST_TEST(count(conn, "ledger") == 1);
  conn.exec("DROP TABLE ledger");
}

BOOST_AUTO_TEST_CASE(skip_locked_skips_a_row_another_connection_holds) {
  pg::connection a{cluster().url()};
  pg::connection b{cluster().url()};
  a.exec("CREATE TABLE jobs (id bigint PRIMARY KEY);"
         " INSERT INTO jobs VALUES (1), (2)");
  auto claim = "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
  {
    pg::transaction ta{a};
    BOOST_TEST(a.query(claim).int64(0, 0) == 1);
    {
      pg::transaction tb{b};
      BOOST_TEST(b.query(claim).int64(0, 0) == 2);
      // Both rows held: nothing left to claim.
      pg::connection c{cluster().url()};
      pg::transaction tc{c};
      BOOST_TEST(c.query(claim).rows() == 0);
    }
  }
  // Both released: the first row is free again.
  pg::transaction tb{b};
  BOOST_TEST(b.query(claim).int64(0, 0) == 1);
  tb.commit();
  a.exec("DROP TABLE jobs");
}

BOOST_AUTO_TEST_CASE(notifications_cross_connections_with_their_payload) {
  pg::connection listener{cluster().url()};
  pg::connection sender{cluster().url()};
  listener.listen("deployments ready");
  sender.notify("deployments ready", "deploy 17: Grüße");
  auto got = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->channel == "deployments ready");
  BOOST_TEST(got->payload == "deploy 17: Grüße");
  BOOST_TEST(got->sender_pid == sender.backend_pid());
  BOOST_TEST(got->sender_pid != listener.backend_pid());

  // Sent inside a transaction: delivered at its commit, not before; the
  // rolled-back one never.
  {
    pg::transaction tx{sender};
    sender.notify("deployments ready", "rolled back");
  }
  {
    pg::transaction tx{sender};
    sender.notify("deployments ready", "committed");
    tx.commit();
  }
  got = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == "committed");

  // After UNLISTEN, nothing more arrives.
  listener.unlisten("deployments ready");
  sender.notify("deployments ready", "unheard");
  BOOST_TEST(!listener.wait_notification(std::chrono::milliseconds(50)));
}

BOOST_AUTO_TEST_CASE(wait_notification_times_out_when_nothing_comes) {
  pg::connection listener{cluster().url()};
  listener.listen("quiet");
  auto timeout = std::chrono::milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto got = listener.wait_notification(timeout);
  BOOST_TEST(!got.has_value());
  // It waited (at least) the whole timeout before giving up.
  BOOST_TEST((std::chrono::steady_clock::now() - start >= timeout));
  // The connection still works, and still listens.
  pg::connection sender{cluster().url()};
  sender.notify("quiet", "now");
  got = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(got.has_value());
  BOOST_TEST(got->payload == "now");
}

BOOST_AUTO_TEST_CASE(advisory_locks_exclude_other_sessions) {
  pg::connection a{cluster().url()};
  pg::connection b{cluster().url()};
  a.advisory_lock(42);
  BOOST_TEST(!b.try_advisory_lock(42));
  BOOST_TEST(b.try_advisory_lock(43));
  BOOST_TEST(!b.advisory_unlock(42));

  // b's blocking lock waits until a lets go.
  std::atomic<bool> acquired{false};
  std::thread waiter{[&] {
    b.advisory_lock(42);
    acquired = true;
  }};
  pg::connection watch{cluster().url()};
  for (;;) {
    auto waiting = watch.query(
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
      " AND NOT granted AND pid = $1",
      {pg::int64_param(b.backend_pid())});
    if (waiting.int64(0, 0) == 1)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(!acquired.load());
  BOOST_TEST(a.advisory_unlock(42));
  waiter.join();
  BOOST_TEST(acquired.load());
  BOOST_TEST(!a.try_advisory_lock(42));
  BOOST_TEST(b.advisory_unlock(42));
  BOOST_TEST(b.advisory_unlock(43));
  BOOST_TEST(a.try_advisory_lock(42));
  BOOST_TEST(a.advisory_unlock(42));
}

BOOST_AUTO_TEST_CASE(a_wrong_password_is_refused_without_showing_it) {
  auto wrong = std::string{"Wrong-Secret-7f3a"};
  auto message = error_of(
    [&] { pg::connection conn{cluster().url_with_password(wrong)}; });
  BOOST_TEST(message.find("password authentication failed for user \"heaven\"")
             != std::string::npos);
  BOOST_TEST(message.find(wrong) == std::string::npos);
  BOOST_TEST(message.find(cluster().password()) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(database_url)

// heaven serve on a database whose schema is newer than it knows stops at
// once (exit 1) with the reason, never shows the URL's password, and
// changes nothing: no SQLite fallback, no table touched.
BOOST_AUTO_TEST_CASE(
  heaven_serve_refuses_a_newer_schema_and_hides_the_password) {
  {
    pg::connection admin{cluster().url()};
    admin.exec("DROP DATABASE IF EXISTS heaven_newer");
    admin.exec("CREATE DATABASE heaven_newer");
  }
  auto url = cluster().url();
  url.replace(url.rfind('/'), std::string::npos, "/heaven_newer");
  {
    pg::connection conn{url};
    conn.exec("CREATE TABLE heaven_schema(version INTEGER NOT NULL);"
              "INSERT INTO heaven_schema VALUES (99)");
  }
  auto tmp = fs::temp_directory_path() / "heaven-pg-serve";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  auto command = "cd " + tmp.string()
                 + " && env -i PATH=$PATH HEAVEN_CONFIG=/dev/null"
                   " HEAVEN_LISTEN=127.0.0.1:0 GITHUB_WEBHOOK_SECRET=s"
                   " HEAVEN_DATA_DIR="
                 + (tmp / "data").string() + " HEAVEN_DATABASE_URL='" + url
                 + "' " + HEAVEN_BINARY + " serve 2>&1";
  auto pipe = ::popen(command.c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  std::string out;
  char buf[512];
  while (auto n = ::fread(buf, 1, sizeof(buf), pipe))
    out.append(buf, n);
  auto status = ::pclose(pipe);
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 1);
  BOOST_TEST(out.find("heaven: cannot use the database of "
                      "HEAVEN_DATABASE_URL: the database has heaven schema "
                      "version 99, newer than this heaven's 1\n")
               != std::string::npos,
             out);
  BOOST_TEST(out.find(cluster().password()) == std::string::npos);
  // It did not fall back to SQLite.
  BOOST_TEST(!fs::exists(tmp / "data" / "heaven.db"));
  // Nothing changed in the database: only the schema table is there.
  pg::connection conn{url};
  BOOST_TEST(conn
               .query("SELECT count(*) FROM pg_tables WHERE schemaname ="
                      " 'public'")
               .int64(0, 0)
             == 1);
  BOOST_TEST(conn.query("SELECT version FROM heaven_schema").int64(0, 0) == 99);
  fs::remove_all(tmp);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_cluster_support)

BOOST_AUTO_TEST_CASE(the_cluster_is_removed_afterwards) {
  fs::path dir;
  int port = 0;
  std::string url;
  {
    pg_cluster own;
    dir = own.dir();
    port = own.port();
    url = own.url();
    BOOST_TEST(fs::exists(dir / "data" / "PG_VERSION"));
    BOOST_TEST(url.rfind("postgresql://heaven:", 0) == 0);
    BOOST_TEST(url.find("@127.0.0.1:" + std::to_string(port) + "/heaven_test")
               != std::string::npos);
    pg::connection conn{url};
    BOOST_TEST(conn.query("SELECT current_database()").text(0, 0)
               == "heaven_test");
    BOOST_TEST(accepts(port));
  }
  BOOST_TEST(!fs::exists(dir));
  BOOST_TEST(!accepts(port));
  auto message = error_of([&] { pg::connection conn{url}; });
  BOOST_TEST(message.find("cannot connect to PostgreSQL") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
