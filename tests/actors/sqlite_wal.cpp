// The store connection's write-ahead log, checkpointed by a thread of its
// own (database::checkpoint_in_background): the log is copied back and
// started over while the writer commits on, and no commit the writer saw
// succeed is lost when the process is killed in the middle of it.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/sqlite.hpp"

using namespace heaven;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system's temporary directory.
struct scratch {
  fs::path dir;
  scratch() {
    char name[] = "/tmp/heaven-wal-XXXXXX";
    BOOST_REQUIRE(mkdtemp(name) != nullptr);
    dir = name;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

/// The thread copies every 100 pages, the writer starts the log over at 800
/// (heaven's store: 1000 and 8000).
constexpr int wake_pages = 100;
constexpr int restart_pages = 800;

/// Makes the table the tests write and gives `db` background checkpoints.
void open_table(database& db) {
  db.exec("CREATE TABLE IF NOT EXISTS t(n INTEGER PRIMARY KEY, pad TEXT)");
  db.checkpoint_in_background(wake_pages, restart_pages);
}

/// Commits row `n`, about half a page, on its own.
void commit_row(database& db, int64_t n) {
  db.cached("INSERT INTO t(n, pad) VALUES(?, ?)")
    .bind(1, n)
    .bind(2, std::string(2000, 'x'))
    .run();
}

/// `SELECT count(*), max(n) FROM t` through a connection of its own.
std::pair<int64_t, int64_t> count_and_max(const fs::path& file) {
  sqlite3* conn = nullptr;
  BOOST_REQUIRE_EQUAL(sqlite3_open_v2(file.c_str(), &conn,
                                      SQLITE_OPEN_READWRITE, nullptr),
                      SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  BOOST_REQUIRE_EQUAL(sqlite3_prepare_v2(conn, "SELECT count(*), max(n) FROM t",
                                         -1, &stmt, nullptr),
                      SQLITE_OK);
  BOOST_REQUIRE_EQUAL(sqlite3_step(stmt), SQLITE_ROW);
  std::pair<int64_t, int64_t> out{sqlite3_column_int64(stmt, 0),
                                  sqlite3_column_int64(stmt, 1)};
  sqlite3_finalize(stmt);
  sqlite3_close(conn);
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(sqlite_wal)

// 4000 commits of a page or two each. Without the checkpoints the log would
// hold every one of them; without the writer's own it would never start
// over.
BOOST_AUTO_TEST_CASE(the_log_is_copied_back_and_started_over_meanwhile) {
  scratch tmp;
  auto file = tmp.dir / "heaven.db";
  auto wal = fs::path{file.string() + "-wal"};
  database db{file.string(), open_mode::create};
  open_table(db);
  constexpr int64_t rows = 4000;
  std::uintmax_t largest_log = 0;
  for (int64_t n = 1; n <= rows; ++n) {
    commit_row(db, n);
    largest_log = std::max(largest_log, fs::file_size(wal));
  }
  auto counts = db.checkpoints();
  BOOST_TEST_MESSAGE("checkpoints: " << counts.background << " background, "
                                     << counts.finishing << " finishing; log "
                                     << largest_log << " bytes at most");
  BOOST_TEST(counts.background >= 10);
  BOOST_TEST(counts.finishing >= 2);
  // The thread copied most of each round: the writer's checkpoints are a
  // few per restart (one, unless the thread was copying just then).
  BOOST_TEST(counts.finishing < counts.background);
  // A frame is a 4 KiB page and a 24-byte header.
  auto frames = largest_log / (4096 + 24);
  BOOST_TEST(frames < 2u * restart_pages,
             "the log reached " << frames << " pages");
  // What was copied back is in the database file itself, not only the log.
  BOOST_TEST(fs::file_size(file) > 1500u * 2000u);
  auto [count, max] = count_and_max(file);
  BOOST_TEST(count == rows);
  BOOST_TEST(max == rows);
}

// A child process commits row after row, from the last row there on, and
// reports each one the writer saw succeed; it is killed with SIGKILL while
// background checkpoints run, at a different point each round. Every
// reported row is in the database, and the rows have no gap. (A kill leaves
// the kernel's page cache: this checks what SQLite and heaven do with the
// log, not the disk's flushes.)
BOOST_AUTO_TEST_CASE(a_kill_during_checkpoints_loses_no_commit) {
  scratch tmp;
  auto file = tmp.dir / "heaven.db";
  int64_t before = 0;
  for (int64_t more : {1700, 1100, 2300, 900, 1300}) {
    int fds[2];
    BOOST_REQUIRE_EQUAL(pipe(fds), 0);
    auto pid = fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      try {
        database db{file.string(), open_mode::create};
        open_table(db);
        for (int64_t n = before + 1;; ++n) {
          commit_row(db, n);
          auto line = std::to_string(n) + "\n";
          if (write(fds[1], line.data(), line.size()) < 0)
            _exit(2);
        }
      } catch (...) {
        _exit(1);
      }
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    BOOST_REQUIRE(in != nullptr);
    long long last = before;
    long long n = 0;
    while (last < before + more && fscanf(in, "%lld", &n) == 1)
      last = n;
    kill(pid, SIGKILL);
    while (fscanf(in, "%lld", &n) == 1)
      last = n;
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    BOOST_REQUIRE(WIFSIGNALED(status));
    BOOST_REQUIRE(last >= before + more);
    auto [count, max] = count_and_max(file);
    BOOST_TEST_MESSAGE(last << " rows reported, " << count << " found");
    // A row committed and not yet reported may be there too.
    BOOST_TEST(max >= last);
    BOOST_TEST(count == max);
    before = max;
  }
}

BOOST_AUTO_TEST_SUITE_END()
