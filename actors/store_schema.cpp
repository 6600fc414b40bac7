#include "actors/store_schema.hpp"

#include <iterator>

#include <spdlog/spdlog.h>

#include "actors/sqlite.hpp"

namespace heaven {

namespace {

/// Version 1: deliveries, deployments and the repositories heard from.
constexpr const char* schema_v1_sql = R"sql(
CREATE TABLE IF NOT EXISTS deliveries(
  delivery TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery TEXT REFERENCES deliveries(delivery),
  github_id INTEGER,
  repo TEXT,
  app TEXT,
  environment TEXT,
  ref TEXT,
  sha TEXT,
  task TEXT,
  provider TEXT,
  actor TEXT,
  state TEXT,
  description TEXT,
  request TEXT,
  created_at TEXT,
  updated_at TEXT,
  finished_at TEXT);
CREATE INDEX IF NOT EXISTS deployments_repo_environment
  ON deployments(repo, environment);
CREATE TABLE IF NOT EXISTS repositories(
  repo TEXT PRIMARY KEY,
  active INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT);
)sql";

/// Version 2 (chat-ops): environment locks, the last revision deployed per
/// repository+environment, and the auto-deployments already claimed.
constexpr const char* schema_v2_sql = R"sql(
CREATE TABLE IF NOT EXISTS locks(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  locked_at TEXT NOT NULL,
  deployment_id INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(repo, environment));
CREATE TABLE IF NOT EXISTS revisions(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY(repo, environment));
CREATE TABLE IF NOT EXISTS auto_deploys(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment, sha));
)sql";

/// Version 3 (the write-ahead lifecycle): when a deployment's provider
/// started, the outbox of messages every transition leads to (GitHub
/// statuses, ...), and no more "received" state: a deployment is recorded
/// queued, or ended by the rules, in the transaction of its delivery.
constexpr const char* schema_v3_sql = R"sql(
ALTER TABLE deployments ADD COLUMN started_at TEXT;
UPDATE deployments SET state = 'queued' WHERE state = 'received';
CREATE INDEX IF NOT EXISTS deployments_app_environment_state
  ON deployments(app, environment, state);
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  stream TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  outcome TEXT);
CREATE INDEX IF NOT EXISTS outbox_unsettled
  ON outbox(kind, id) WHERE settled_at IS NULL;
)sql";

/// Version 4: one place says what is deployed where. `revisions` is keyed
/// by repository, app and environment, and names the GitHub deployment that
/// put the sha there (and heaven's own record of it, when heaven deployed
/// it) and the sha it replaced. The data moves: for each app+environment the
/// newer of heaven's newest successful `deploy` and the old row (which had
/// no app: the repository's name after the '/', as the webhook's default),
/// heaven's deployment when both name the same sha. When heaven's deployment
/// wins, the old row's different sha is the one it replaced (the base its
/// GitHub deployment_status event would have been given).
constexpr const char* schema_v4_sql = R"sql(
ALTER TABLE revisions RENAME TO revisions_v3;
CREATE TABLE revisions(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  previous_sha TEXT,
  github_id INTEGER,
  deployment_id INTEGER REFERENCES deployments(id),
  recorded_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment));
CREATE INDEX IF NOT EXISTS deployments_repo_github_id
  ON deployments(repo, github_id);
INSERT INTO revisions(repo, app, environment, sha, previous_sha, github_id,
                      deployment_id, recorded_at)
WITH heaven AS (
  SELECT repo, app, environment, sha, github_id, id,
         coalesce(finished_at, updated_at, created_at, '') AS at
    FROM deployments
   WHERE id IN (SELECT max(id) FROM deployments
                 WHERE task = 'deploy' AND state = 'success'
                   AND repo IS NOT NULL AND app IS NOT NULL
                   AND environment IS NOT NULL AND coalesce(sha, '') != ''
                 GROUP BY repo, app, environment)),
outside AS (
  SELECT repo, substr(repo, instr(repo, '/') + 1) AS app, environment, sha,
         recorded_at AS at
    FROM revisions_v3),
places AS (
  SELECT repo, app, environment FROM heaven
  UNION SELECT repo, app, environment FROM outside),
candidates AS (
  SELECT p.repo, p.app, p.environment, h.sha AS h_sha, h.github_id, h.id,
         h.at AS h_at, o.sha AS o_sha, o.at AS o_at,
         h.id IS NULL OR (o.sha IS NOT NULL AND o.sha != h.sha
                          AND o.at > h.at) AS outside_won
    FROM places p
    LEFT JOIN heaven h ON h.repo = p.repo AND h.app = p.app
                      AND h.environment = p.environment
    LEFT JOIN outside o ON o.repo = p.repo AND o.app = p.app
                       AND o.environment = p.environment)
SELECT repo, app, environment,
       CASE WHEN outside_won THEN o_sha ELSE h_sha END,
       CASE WHEN NOT outside_won AND o_sha != h_sha THEN o_sha END,
       CASE WHEN outside_won THEN NULL ELSE github_id END,
       CASE WHEN outside_won THEN NULL ELSE id END,
       CASE WHEN outside_won THEN o_at ELSE h_at END
  FROM candidates;
DROP TABLE revisions_v3;
)sql";

/// Version 5 (the pages): the Deployments page's filters and one
/// deployment's status timeline read through indexes, not a scan of every
/// deployment or outbox row (tools/README.md, "Pages": a busy repository's
/// page took 17-60 ms with 10,000 deployments stored, under 1 ms with them).
constexpr const char* schema_v5_sql = R"sql(
CREATE INDEX IF NOT EXISTS deployments_repo_id ON deployments(repo, id);
CREATE INDEX IF NOT EXISTS deployments_state_id ON deployments(state, id);
CREATE INDEX IF NOT EXISTS deployments_repo_state_id
  ON deployments(repo, state, id);
CREATE INDEX IF NOT EXISTS outbox_status_stream
  ON outbox(stream, id) WHERE kind = 'status';
)sql";

/// The migrations, in order: entry i takes a database from schema version i
/// to i + 1. They run in one transaction with the version check, so each
/// runs once.
constexpr const char* migrations[] = {
  schema_v1_sql, schema_v2_sql, schema_v3_sql, schema_v4_sql, schema_v5_sql};

/// The schema this code writes; stored in `PRAGMA user_version` so a later
/// version of heaven knows which migrations to run.
constexpr int current_version = static_cast<int>(std::size(migrations));

/// `PRAGMA user_version`: the schema version the file says it has.
int user_version(database& db) {
  auto stmt = db.prepare("PRAGMA user_version");
  return stmt.step() ? static_cast<int>(stmt.int64(0)) : 0;
}

/// Throws when the file is newer than this heaven understands.
void check_not_newer(const std::string& path, int found) {
  if (found > current_version)
    throw sqlite_error(path + " has schema version " + std::to_string(found)
                       + ", newer than this heaven's "
                       + std::to_string(current_version));
}

} // namespace

int schema_version() {
  return current_version;
}

void migrate(database& db, const std::string& path) {
  auto found = user_version(db);
  check_not_newer(path, found);
  if (found == current_version)
    return; // The common case takes no write lock.
  db.exec("BEGIN IMMEDIATE");
  try {
    found = user_version(db); // Someone may have migrated it meanwhile.
    check_not_newer(path, found);
    for (int v = found; v < current_version; ++v)
      db.exec(migrations[v]);
    db.exec("PRAGMA user_version=" + std::to_string(current_version));
    db.exec("COMMIT");
  } catch (...) {
    db.exec_quietly("ROLLBACK");
    throw;
  }
  if (found > 0)
    spdlog::info("store migrated {} from schema version {} to {}", path, found,
                 current_version);
}

} // namespace heaven
