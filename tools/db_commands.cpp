#include "tools/db_commands.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "actors/pg.hpp"
#include "actors/pg_schema.hpp"
#include "actors/sqlite.hpp"
#include "actors/sqlite_store.hpp"
#include "actors/store_schema.hpp"
#include "base/config.hpp"

namespace heaven {

namespace fs = std::filesystem;

namespace {

/// What a heaven stopped mid-deployment ends it with (as the receiver does
/// after a restart).
constexpr auto restarted
  = "heaven restarted during this deployment; its outcome is unknown: "
    "deploy again";

/// SQLite's `PRAGMA user_version` of the file at `path`.
int sqlite_version(const std::string& path) {
  database db{path, open_mode::existing};
  auto stmt = db.prepare("PRAGMA user_version");
  stmt.step();
  return static_cast<int>(stmt.int64(0));
}

int migrate_sqlite(const settings& cfg) {
  auto path = cfg.data_dir + "/heaven.db";
  if (!fs::exists(path)) {
    fs::create_directories(cfg.data_dir);
    sqlite_store made{path, open_mode::create, false};
    std::cout << "Created heaven's SQLite database " << path
              << " (schema version " << schema_version() << ").\n";
    return 0;
  }
  auto found = sqlite_version(path);
  { sqlite_store opened{path, open_mode::existing, false}; }
  if (found == schema_version())
    std::cout << "The SQLite database " << path
              << " is already at schema version " << found << ".\n";
  else
    std::cout << "Migrated the SQLite database " << path << " from schema "
              << "version " << found << " to " << schema_version() << ".\n";
  return 0;
}

/// The tables copied, in an order their references allow, with the
/// columns SQLite's schema and PostgreSQL's share.
struct table_copy {
  const char* name;
  std::vector<const char*> columns;
};

const std::vector<table_copy>& copied_tables() {
  static const std::vector<table_copy> tables = {
    {"deliveries", {"delivery", "event", "body", "received_at"}},
    {"deployments",
     {"id", "delivery", "github_id", "repo", "app", "environment", "ref", "sha",
      "task", "provider", "actor", "state", "description", "request",
      "created_at", "updated_at", "finished_at", "started_at"}},
    {"repositories", {"repo", "active", "first_seen"}},
    {"locks",
     {"repo", "environment", "actor", "reason", "locked_at", "deployment_id"}},
    {"revisions",
     {"repo", "app", "environment", "sha", "previous_sha", "github_id",
      "deployment_id", "recorded_at"}},
    {"auto_deploys", {"repo", "app", "environment", "sha", "claimed_at"}},
    {"outbox",
     {"id", "kind", "stream", "body", "created_at", "settled_at", "outcome"}},
  };
  return tables;
}

/// Copies one table's rows from SQLite into PostgreSQL (the caller's
/// transaction); returns how many.
int64_t copy_table(database& from, pg::connection& to, const table_copy& t) {
  std::string names;
  std::string places;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    names += (i ? ", " : "") + std::string{t.columns[i]};
    places += (i ? ", $" : "$") + std::to_string(i + 1);
  }
  auto read = from.prepare("SELECT " + names + " FROM " + t.name
                           + " ORDER BY rowid");
  auto insert = std::string{"INSERT INTO "} + t.name + "(" + names + ") VALUES("
                + places + ")";
  int64_t n = 0;
  std::vector<pg::param> row(t.columns.size());
  while (read.step()) {
    for (size_t i = 0; i < t.columns.size(); ++i)
      row[i] = read.is_null(static_cast<int>(i))
                 ? pg::param{}
                 : pg::param{read.text(static_cast<int>(i))};
    to.query(insert, row);
    ++n;
  }
  return n;
}

/// Sets `table`'s id sequence past every id SQLite handed out (also those
/// of rows deleted since: AUTOINCREMENT never hands them out again).
void set_sequence(database& from, pg::connection& to,
                  const std::string& table) {
  int64_t last = 0;
  auto seq = from.prepare("SELECT seq FROM sqlite_sequence WHERE name = ?");
  seq.bind(1, table);
  if (seq.step() && !seq.is_null(0))
    last = seq.int64(0);
  auto max = from.prepare("SELECT max(id) FROM " + table);
  if (max.step() && !max.is_null(0))
    last = std::max(last, max.int64(0));
  if (last > 0)
    to.query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)",
             {table, std::to_string(last)});
}

std::string read_file(const fs::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xF];
  }
  return out;
}

/// Copies the logs of the deployments copied (logs/<id>.log and the times
/// of its lines, logs/<id>.times) as one chunk each from offset 0.
int64_t copy_logs(const fs::path& dir, pg::connection& to) {
  int64_t n = 0;
  std::error_code ec;
  if (!fs::is_directory(dir / "logs", ec))
    return 0;
  for (auto& entry : fs::directory_iterator{dir / "logs"}) {
    auto p = entry.path();
    if (p.extension() != ".log" || !entry.is_regular_file())
      continue;
    auto stem = p.stem().string();
    if (stem.empty()
        || stem.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto known = to.query("SELECT 1 FROM deployments WHERE id = $1", {stem});
    if (known.rows() == 0)
      continue;
    auto times = dir / "logs" / (stem + ".times");
    to.query("INSERT INTO log_chunks(deployment_id, start_offset, data, times)"
             " VALUES($1, 0, decode($2, 'hex'), $3)",
             {stem, hex(read_file(p)),
              fs::exists(times) ? read_file(times) : std::string{}});
    ++n;
  }
  return n;
}

/// Ends the deployments the stopped heaven was running, as its restart
/// would have: `error`, and their status queued in the outbox (which the
/// copy takes along, for the first instance to deliver).
int64_t end_running(const std::string& path) {
  sqlite_store store{path, open_mode::existing, false};
  int64_t n = 0;
  for (auto& d : store.pending())
    if (d.state == deploy_state::running) {
      committed_rows rows;
      if (store.finish(d.id, provider_outcome{deploy_state::error, restarted},
                       rows))
        ++n;
    }
  return n;
}

} // namespace

int migrate_command(const settings& cfg) {
  if (cfg.database_url.empty())
    return migrate_sqlite(cfg);
  pg::connection conn{cfg.database_url};
  auto found = pg_migrate(conn);
  auto now = pg_schema_version();
  if (found == 0)
    std::cout << "Created heaven's tables (schema version " << now << ").\n";
  else if (found == now)
    std::cout << "The database is already at schema version " << now << ".\n";
  else
    std::cout << "Migrated the database from schema version " << found << " to "
              << now << ".\n";
  return 0;
}

int db_copy_command(const settings& cfg, const std::string& from_dir) {
  if (cfg.database_url.empty()) {
    std::cerr << "heaven: db copy moves a SQLite data directory into "
                 "PostgreSQL: set HEAVEN_DATABASE_URL (or pass "
                 "--database-url-file <file>) to the database it goes to\n";
    return 2;
  }
  fs::path dir = from_dir.empty() ? cfg.data_dir : from_dir;
  auto path = (dir / "heaven.db").string();
  if (!fs::is_regular_file(path)) {
    std::cerr << "heaven: there is no heaven.db in " << dir.string()
              << ": nothing to copy\n";
    return 1;
  }
  pg::connection conn{cfg.database_url};
  // A database in use is refused before anything is written to either.
  if (pg_found_version(conn) > 0) {
    pg_check_schema(conn);
    auto held = conn.query("SELECT count(*) FROM deployments").int64(0, 0);
    if (held > 0) {
      std::cerr << "heaven: the PostgreSQL database already holds " << held
                << " deployment(s): db copy only fills an empty one\n";
      return 1;
    }
  }
  // Opening it migrates it to this heaven's schema (5) first.
  auto ended = end_running(path);
  pg_migrate(conn);
  database from{path, open_mode::existing};
  std::map<std::string, int64_t> counts;
  pg::transaction tx{conn};
  // Two copies at once: the second waits here, then finds deployments.
  conn.exec("LOCK TABLE deployments IN EXCLUSIVE MODE");
  if (conn.query("SELECT count(*) FROM deployments").int64(0, 0) > 0) {
    std::cerr << "heaven: the PostgreSQL database already holds deployments:"
                 " db copy only fills an empty one\n";
    return 1;
  }
  for (auto& t : copied_tables())
    counts[t.name] = copy_table(from, conn, t);
  set_sequence(from, conn, "deployments");
  set_sequence(from, conn, "outbox");
  auto logs = copy_logs(dir, conn);
  std::string key;
  {
    std::ifstream in{dir / "log.key"};
    std::getline(in, key);
  }
  if (!key.empty())
    conn.query("INSERT INTO secrets(name, value) VALUES('log_key', $1) ON "
               "CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
               {key});
  tx.commit();
  std::cout << "Copied " << dir.string()
            << " into PostgreSQL: " << counts["deployments"]
            << " deployment(s), " << counts["deliveries"] << " deliveries, "
            << counts["locks"] << " lock(s), " << counts["repositories"]
            << " repositories, " << counts["revisions"] << " revision(s), "
            << counts["auto_deploys"] << " auto-deploy claim(s), "
            << counts["outbox"] << " outbox row(s), " << logs << " log(s)"
            << (key.empty() ? "" : " and the log key") << ".\n";
  if (ended > 0)
    std::cout << ended << " deployment(s) that were running when heaven "
              << "stopped ended with error, as a restart ends them.\n";
  return 0;
}

} // namespace heaven
