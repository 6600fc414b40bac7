// heaven's database operations from the command line, as real processes on
// a real PostgreSQL cluster: `heaven migrate`, `heaven db copy` of a SQLite
// data directory written by heaven's own store and log book, and `heaven
// locks`, `unlock` and `repos` against PostgreSQL.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "actors/pg.hpp"
#include "actors/sqlite.hpp"
#include "actors/sqlite_store.hpp"
#include "base/log_book.hpp"
#include "tests/support/pg_databases.hpp"
#include "tools/support/heaven_process.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

pg_cluster& cluster() {
  return heaven::test::shared_cluster();
}

/// The URL of a new, empty database of the cluster.
std::string fresh_database() {
  return heaven::test::fresh_database("ops");
}

/// Runs `heaven <args>` with `url` as HEAVEN_DATABASE_URL (none when
/// empty) and `data` as its data directory.
command_result heaven_cli(const std::string& args, const std::string& url,
                          const fs::path& data) {
  auto command = "env -i PATH=$PATH HEAVEN_CONFIG=/dev/null"
                 " HEAVEN_PUBLIC_URL=https://heaven.example.test"
                 " HEAVEN_DATA_DIR="
                 + data.string()
                 + (url.empty() ? "" : " HEAVEN_DATABASE_URL='" + url + "'")
                 + " " + HEAVEN_BINARY + " " + args + " 2>&1";
  auto r = run_command(command);
  BOOST_TEST(r.out.find(cluster().password()) == std::string::npos);
  return r;
}

/// Every row of `sql`'s result, its columns joined by '|' (NULL: "NULL").
std::vector<std::string> pg_table_rows(pg::connection& conn,
                                       const std::string& sql) {
  auto r = conn.query(sql);
  std::vector<std::string> rows;
  for (int i = 0; i < r.rows(); ++i) {
    std::string row;
    for (int c = 0; c < r.columns(); ++c)
      row += (c ? "|" : "") + (r.is_null(i, c) ? "NULL" : r.text(i, c));
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string>
sqlite_table_rows(const fs::path& file, const std::string& sql, int columns) {
  database db{file.string(), open_mode::existing};
  auto stmt = db.prepare(sql);
  std::vector<std::string> rows;
  while (stmt.step()) {
    std::string row;
    for (int c = 0; c < columns; ++c)
      row += (c ? "|" : "") + (stmt.is_null(c) ? "NULL" : stmt.text(c));
    rows.push_back(row);
  }
  return rows;
}

int64_t count(pg::connection& conn, const std::string& table) {
  return conn.query("SELECT count(*) FROM " + table).int64(0, 0);
}

deployment_request request(int64_t github_id, const std::string& task) {
  deployment_request r;
  r.github_id = github_id;
  r.repo = "octo/app";
  r.clone_url = "https://github.com/octo/app.git";
  r.sha = "0123456789abcdef0123456789abcdef0123456"
          + std::to_string(github_id % 10);
  r.ref = "main";
  r.environment = "production";
  r.task = task;
  r.description = "Deploying \"app\"\nwith a newline";
  r.actor = "bob";
  r.app = "app";
  r.provider = "shell";
  r.payload_json = R"({"name":"app","config":{"provider":"shell"}})";
  return r;
}

inbound_event event(const std::string& delivery, deployment_request r,
                    lock_task lock = lock_task::none) {
  inbound_event ev;
  ev.delivery = delivery;
  ev.type = event_kind::deployment;
  ev.repo = r.repo;
  ev.body = R"({"deployment":{"id":)" + std::to_string(r.github_id) + "}}";
  ev.deployment = std::move(r);
  ev.lock_action = lock;
  return ev;
}

/// A SQLite data directory as a stopped heaven leaves it: a finished
/// deploy (a revision, its log and times), a lock, a queued deployment, one
/// that was running, a disabled repository, an unsettled status, log.key.
/// Returns the ids of the finished, queued and running deployments.
std::vector<int64_t> make_sqlite_data(const fs::path& dir) {
  fs::create_directories(dir);
  sqlite_store store{(dir / "heaven.db").string(), open_mode::create, false};
  committed_rows rows;
  auto done = store.accept(event("d-1", request(101, "deploy")), rows);
  BOOST_REQUIRE(done.deployment_id > 0);
  BOOST_REQUIRE(store.start(done.deployment_id, "Deploying", rows));
  BOOST_REQUIRE(store.finish(done.deployment_id,
                             {deploy_state::success, "Deployed"}, rows));
  auto locked = store.accept(
    event("d-2", request(102, "deploy:lock"), lock_task::lock), rows);
  BOOST_REQUIRE(locked.lock_state == lock_outcome::locked);
  // In other environments than the locked one: one stays queued, one was
  // running when heaven stopped.
  auto queued_req = request(103, "deploy");
  queued_req.environment = "staging";
  auto queued = store.accept(event("d-3", queued_req), rows);
  auto running_req = request(104, "deploy");
  running_req.environment = "qa";
  auto running = store.accept(event("d-4", running_req), rows);
  BOOST_REQUIRE(store.start(running.deployment_id, "Deploying", rows));
  store.set_repository_active("octo/other", false);
  // Some statuses were delivered, the rest not yet.
  outbox_change delivered;
  for (auto& row : store.unsettled("status"))
    if (row.id % 2 == 1)
      delivered.settled.push_back({row.id, "delivered"});
  BOOST_REQUIRE(!delivered.settled.empty());
  store.change_outbox(delivered, rows);
  int64_t clock = 1700000000000;
  log_book book{(dir / "logs").string(), {}, 0, [&] { return clock += 1500; }};
  book.open(done.deployment_id);
  book.append(done.deployment_id, stream::heaven, "Running deploy/run.sh");
  book.append(done.deployment_id, stream::out, "bytes \xff\x01 and \"quotes\"");
  book.append(done.deployment_id, stream::err, "done");
  book.close(done.deployment_id);
  std::ofstream{dir / "log.key"} << "0123456789abcdef0123456789abcdef\n";
  return {done.deployment_id, queued.deployment_id, running.deployment_id};
}

const std::vector<std::pair<std::string, std::string>> compared = {
  {"deliveries", "delivery, event, body, received_at"},
  {"deployments",
   "id, delivery, github_id, repo, app, environment, ref, sha, task, "
   "provider, actor, state, description, request, created_at, updated_at, "
   "finished_at, started_at"},
  {"repositories", "repo, active, first_seen"},
  {"locks", "repo, environment, actor, reason, locked_at, deployment_id"},
  {"revisions",
   "repo, app, environment, sha, previous_sha, github_id, deployment_id, "
   "recorded_at"},
  {"auto_deploys", "repo, app, environment, sha, claimed_at"},
  {"outbox", "id, kind, stream, body, created_at, settled_at, outcome"},
};

size_t column_count(const std::string& columns) {
  return static_cast<size_t>(std::count(columns.begin(), columns.end(), ','))
         + 1;
}

} // namespace

BOOST_AUTO_TEST_SUITE(db_operations)

BOOST_AUTO_TEST_CASE(migrate_creates_the_schema_then_finds_it_done) {
  auto url = fresh_database();
  auto data = make_temp_dir("heaven-migrate");
  auto first = heaven_cli("migrate", url, data / "data");
  BOOST_TEST(first.status == 0);
  BOOST_TEST(first.out == "Created heaven's tables (schema version 1).\n");
  pg::connection conn{url};
  BOOST_TEST(pg_table_rows(conn, "SELECT version FROM heaven_schema")
             == std::vector<std::string>{"1"});
  BOOST_TEST(count(conn, "deployments") == 0);
  BOOST_TEST(count(conn, "log_chunks") == 0);
  auto again = heaven_cli("migrate", url, data / "data");
  BOOST_TEST(again.status == 0);
  BOOST_TEST(again.out == "The database is already at schema version 1.\n");
  BOOST_TEST(pg_table_rows(conn, "SELECT version FROM heaven_schema")
             == std::vector<std::string>{"1"});
  // PostgreSQL's migrate makes no SQLite data directory.
  BOOST_TEST(!fs::exists(data / "data"));
  fs::remove_all(data);
}

BOOST_AUTO_TEST_CASE(migrate_without_a_url_migrates_the_sqlite_database) {
  auto data = make_temp_dir("heaven-migrate-sqlite");
  auto made = heaven_cli("migrate", "", data / "data");
  BOOST_TEST(made.status == 0);
  BOOST_TEST(made.out
             == "Created heaven's SQLite database "
                  + (data / "data" / "heaven.db").string()
                  + " (schema version 5).\n");
  BOOST_TEST(fs::exists(data / "data" / "heaven.db"));
  auto again = heaven_cli("migrate", "", data / "data");
  BOOST_TEST(again.out
             == "The SQLite database " + (data / "data" / "heaven.db").string()
                  + " is already at schema version 5.\n");
  fs::remove_all(data);
}

BOOST_AUTO_TEST_CASE(a_newer_or_missing_schema_is_refused) {
  auto url = fresh_database();
  auto data = make_temp_dir("heaven-newer");
  auto none = heaven_cli("locks", url, data);
  BOOST_TEST(none.status == 1);
  BOOST_TEST(none.out
             == "heaven: the database has no heaven tables yet: run 'heaven "
                "migrate' (or start heaven serve) first\n");
  {
    pg::connection conn{url};
    conn.exec("CREATE TABLE heaven_schema(version INTEGER NOT NULL);"
              "INSERT INTO heaven_schema VALUES(99)");
  }
  auto expected = std::string{"heaven: the database has heaven schema version "
                              "99, newer than this heaven's 1\n"};
  auto migrate = heaven_cli("migrate", url, data);
  BOOST_TEST(migrate.status == 1);
  BOOST_TEST(migrate.out == expected);
  auto locks = heaven_cli("locks", url, data);
  BOOST_TEST(locks.status == 1);
  BOOST_TEST(locks.out == expected);
  auto unlock = heaven_cli("unlock octo/app production", url, data);
  BOOST_TEST(unlock.status == 1);
  BOOST_TEST(unlock.out == expected);
  pg::connection conn{url};
  // Nothing was made.
  BOOST_TEST(pg_table_rows(conn, "SELECT to_regclass('deployments') IS NULL")
             == std::vector<std::string>{"t"});
  BOOST_TEST(pg_table_rows(conn, "SELECT version FROM heaven_schema")
             == std::vector<std::string>{"99"});
  fs::remove_all(data);
}

BOOST_AUTO_TEST_CASE(db_copy_moves_a_sqlite_directory_once) {
  auto url = fresh_database();
  auto tmp = make_temp_dir("heaven-copy");
  auto ids = make_sqlite_data(tmp / "old");
  auto db_file = tmp / "old" / "heaven.db";
  // Without heaven.db: refused, nothing made.
  auto empty = heaven_cli("db copy --from " + tmp.string(), url, tmp / "data");
  BOOST_TEST(empty.status == 1);
  BOOST_TEST(empty.out
             == "heaven: there is no heaven.db in " + tmp.string()
                  + ": nothing to copy\n");
  {
    pg::connection conn{url};
    BOOST_TEST(
      pg_table_rows(conn, "SELECT to_regclass('heaven_schema') IS NULL")
      == std::vector<std::string>{"t"});
  }
  auto copy = heaven_cli("db copy --from " + (tmp / "old").string(), url,
                         tmp / "data");
  BOOST_TEST(copy.status == 0);
  auto in_sqlite = [&](const std::string& table) {
    return sqlite_table_rows(db_file, "SELECT count(*) FROM " + table, 1).at(0);
  };
  auto outbox_rows = in_sqlite("outbox");
  BOOST_TEST(copy.out
             == "Copied " + (tmp / "old").string()
                  + " into PostgreSQL: 4 deployment(s), 4 deliveries, 1 "
                    "lock(s), "
                  + in_sqlite("repositories") + " repositories, 1 "
                  + "revision(s), 0 auto-deploy claim(s), " + outbox_rows
                  + " outbox row(s), 1 log(s) and the log key.\n"
                    "1 deployment(s) that were running when heaven stopped "
                    "ended with error, as a restart ends them.\n");
  BOOST_TEST(in_sqlite("repositories") == "2");
  pg::connection conn{url};
  // Every row as SQLite has it (after the running one was ended).
  for (auto& [table, columns] : compared) {
    auto order = " ORDER BY " + columns.substr(0, columns.find(','));
    auto want = sqlite_table_rows(
      db_file, "SELECT " + columns + " FROM " + table + order,
      static_cast<int>(column_count(columns)));
    auto got = pg_table_rows(conn,
                             "SELECT " + columns + " FROM " + table + order);
    BOOST_TEST(got == want, table);
  }
  BOOST_TEST(count(conn, "deployments") == 4);
  BOOST_TEST(count(conn, "locks") == 1);
  BOOST_TEST(count(conn, "revisions") == 1);
  auto running = std::to_string(ids[2]);
  BOOST_TEST(pg_table_rows(conn, "SELECT state, description FROM deployments "
                                 "WHERE id = "
                                   + running)
             == std::vector<std::string>{
               "error|heaven restarted during this deployment; its outcome "
               "is unknown: deploy again"});
  BOOST_TEST(pg_table_rows(conn, "SELECT state FROM deployments WHERE id = "
                                   + std::to_string(ids[1]))
             == std::vector<std::string>{"queued"});
  // Nobody owns anything yet: the first instance adopts the unsettled rows.
  BOOST_TEST(pg_table_rows(conn,
                           "SELECT count(*) FROM deployments WHERE owner IS "
                           "NOT NULL")
             == std::vector<std::string>{"0"});
  BOOST_TEST(pg_table_rows(conn,
                           "SELECT count(*) FROM outbox WHERE owner IS NOT "
                           "NULL")
             == std::vector<std::string>{"0"});
  BOOST_TEST(
    pg_table_rows(conn, "SELECT count(*) > 0 FROM outbox WHERE settled_at "
                        "IS NULL AND stream = 'd"
                          + running + "' AND body LIKE '%\"error\"%'")
    == std::vector<std::string>{"t"});
  // New ids come after the copied ones.
  BOOST_TEST(pg_table_rows(conn, "SELECT nextval('deployments_id_seq')")
             == std::vector<std::string>{std::to_string(ids[2] + 1)});
  BOOST_TEST(
    pg_table_rows(conn, "SELECT nextval('outbox_id_seq')")
    == std::vector<std::string>{std::to_string(std::stoll(outbox_rows) + 1)});
  // The log, byte for byte, its times, and the key of the links.
  auto log = tmp / "old" / "logs" / (std::to_string(ids[0]) + ".log");
  auto log_bytes = read_text(log);
  BOOST_TEST(log_bytes.find("\xff\x01") != std::string::npos);
  auto chunk = conn.query("SELECT deployment_id, start_offset, '', times "
                          "FROM log_chunks");
  BOOST_REQUIRE(chunk.rows() == 1);
  BOOST_TEST(chunk.int64(0, 0) == ids[0]);
  BOOST_TEST(chunk.int64(0, 1) == 0);
  BOOST_TEST(
    chunk.text(0, 3)
    == read_text(tmp / "old" / "logs" / (std::to_string(ids[0]) + ".times")));
  BOOST_TEST(!chunk.text(0, 3).empty());
  auto hex
    = conn.query("SELECT encode(data, 'hex') FROM log_chunks").text(0, 0);
  std::string back;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    back += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  BOOST_TEST(back == log_bytes);
  BOOST_TEST(
    pg_table_rows(conn, "SELECT name, value FROM secrets")
    == std::vector<std::string>{"log_key|0123456789abcdef0123456789abcdef"});
  // A second copy is refused and changes nothing.
  auto before = pg_table_rows(conn,
                              "SELECT id, state, updated_at FROM deployments "
                              "ORDER BY id");
  auto second = heaven_cli("db copy --from " + (tmp / "old").string(), url,
                           tmp / "data");
  BOOST_TEST(second.status == 1);
  BOOST_TEST(second.out
             == "heaven: the PostgreSQL database already holds 4 "
                "deployment(s): db copy only fills an empty one\n");
  BOOST_TEST(pg_table_rows(conn,
                           "SELECT id, state, updated_at FROM deployments "
                           "ORDER BY id")
             == before);
  BOOST_TEST(count(conn, "log_chunks") == 1);
  BOOST_TEST(std::to_string(count(conn, "outbox")) == outbox_rows);
  // The data directory of HEAVEN_DATA_DIR was not used (--from was).
  BOOST_TEST(!fs::exists(tmp / "data"));
  fs::remove_all(tmp);
}

BOOST_AUTO_TEST_CASE(db_copy_wants_a_database_url) {
  auto tmp = make_temp_dir("heaven-copy-nourl");
  auto r = heaven_cli("db copy", "", tmp);
  BOOST_TEST(r.status == 2);
  BOOST_TEST(r.out
             == "heaven: db copy moves a SQLite data directory into "
                "PostgreSQL: set HEAVEN_DATABASE_URL (or pass "
                "--database-url-file <file>) to the database it goes to\n");
  fs::remove_all(tmp);
}

// Through the PostgreSQL store (pg_store, opened without migrating).
BOOST_AUTO_TEST_CASE(locks_unlock_and_repos_work_on_postgresql) {
  auto url = fresh_database();
  auto tmp = make_temp_dir("heaven-cli-pg");
  make_sqlite_data(tmp / "old");
  auto lock = sqlite_table_rows(
    tmp / "old" / "heaven.db",
    "SELECT locked_at, deployment_id, reason FROM locks", 3);
  BOOST_REQUIRE(lock.size() == 1u);
  auto first_bar = lock[0].find('|');
  auto second_bar = lock[0].find('|', first_bar + 1);
  auto locked_at = lock[0].substr(0, first_bar);
  auto lock_id = lock[0].substr(first_bar + 1, second_bar - first_bar - 1);
  auto reason = lock[0].substr(second_bar + 1);
  BOOST_REQUIRE(lock_id != "0");
  BOOST_REQUIRE(
    heaven_cli("db copy --from " + (tmp / "old").string(), url, tmp).status
    == 0);
  // The SQLite directory is not what they read: remove it.
  fs::remove_all(tmp / "old");
  auto locks = heaven_cli("locks", url, tmp / "none");
  BOOST_TEST(locks.status == 0);
  BOOST_TEST(locks.out
             == "octo/app is locked on production by bob since " + locked_at
                  + " (deployment " + lock_id + ")"
                  + (reason.empty() ? "" : ": " + reason)
                  + "\nServed as JSON at https://heaven.example.test/"
                    "locks?token="
                  + locks_token("0123456789abcdef0123456789abcdef") + "\n");
  auto repos = heaven_cli("repos disable octo/app", url, tmp / "none");
  BOOST_TEST(repos.status == 0);
  pg::connection conn{url};
  BOOST_TEST(pg_table_rows(conn,
                           "SELECT repo, active FROM repositories ORDER BY "
                           "repo")
             == (std::vector<std::string>{"octo/app|0", "octo/other|0"}));
  auto listed = heaven_cli("repos", url, tmp / "none");
  BOOST_TEST(listed.status == 0);
  BOOST_TEST(listed.out.find("octo/app\tdisabled\tfirst seen ")
             != std::string::npos);
  auto unlocked = heaven_cli("unlock octo/app production", url, tmp / "none");
  BOOST_TEST(unlocked.status == 0);
  BOOST_TEST(unlocked.out
             == "Unlocked octo/app on production (locked by bob "
                "since "
                  + locked_at + ").\n");
  BOOST_TEST(count(conn, "locks") == 0);
  auto again = heaven_cli("unlock octo/app production", url, tmp / "none");
  BOOST_TEST(again.status == 1);
  BOOST_TEST(again.out == "octo/app is not locked on production.\n");
  BOOST_TEST(heaven_cli("locks", url, tmp / "none").out
             == "No environment is locked.\nServed as JSON at "
                "https://heaven.example.test/locks?token="
                  + locks_token("0123456789abcdef0123456789abcdef") + "\n");
  BOOST_TEST(!fs::exists(tmp / "none"));
  fs::remove_all(tmp);
}

BOOST_AUTO_TEST_SUITE_END()
