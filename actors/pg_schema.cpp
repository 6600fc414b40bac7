#include "actors/pg_schema.hpp"

#include <iterator>

#include <spdlog/spdlog.h>

#include "actors/pg.hpp"

namespace heaven {

namespace {

/// Version 1: everything SQLite's schema 5 holds (same tables, columns and
/// meanings; ids are bigserial, times the same ISO-8601 text), and what
/// several instances share: who claimed a deployment and who delivers an
/// outbox row (`owner`, an instance id), the instances and their leases,
/// the secrets every instance uses, and the deployments' logs.
constexpr const char* schema_v1_sql = R"sql(
CREATE TABLE deliveries(
  delivery TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at TEXT NOT NULL);
CREATE TABLE deployments(
  id BIGSERIAL PRIMARY KEY,
  delivery TEXT REFERENCES deliveries(delivery),
  github_id BIGINT,
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
  finished_at TEXT,
  started_at TEXT,
  owner TEXT);
CREATE INDEX deployments_repo_environment ON deployments(repo, environment);
CREATE INDEX deployments_app_environment_state
  ON deployments(app, environment, state);
CREATE INDEX deployments_repo_github_id ON deployments(repo, github_id);
CREATE INDEX deployments_repo_id ON deployments(repo, id);
CREATE INDEX deployments_state_id ON deployments(state, id);
CREATE INDEX deployments_repo_state_id ON deployments(repo, state, id);
CREATE INDEX deployments_unclaimed ON deployments(id)
  WHERE state = 'queued' AND owner IS NULL;
CREATE INDEX deployments_owned ON deployments(owner, id)
  WHERE state IN ('queued', 'running');
CREATE TABLE repositories(
  repo TEXT PRIMARY KEY,
  active INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT);
CREATE TABLE locks(
  repo TEXT NOT NULL,
  environment TEXT NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  locked_at TEXT NOT NULL,
  deployment_id BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY(repo, environment));
CREATE TABLE revisions(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  previous_sha TEXT,
  github_id BIGINT,
  deployment_id BIGINT REFERENCES deployments(id),
  recorded_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment));
CREATE TABLE auto_deploys(
  repo TEXT NOT NULL,
  app TEXT NOT NULL,
  environment TEXT NOT NULL,
  sha TEXT NOT NULL,
  claimed_at TEXT NOT NULL,
  PRIMARY KEY(repo, app, environment, sha));
CREATE TABLE outbox(
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL,
  stream TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  settled_at BIGINT,
  outcome TEXT,
  owner TEXT);
CREATE INDEX outbox_unsettled ON outbox(kind, id) WHERE settled_at IS NULL;
CREATE INDEX outbox_unsettled_stream ON outbox(stream)
  WHERE settled_at IS NULL;
CREATE INDEX outbox_status_stream ON outbox(stream, id) WHERE kind = 'status';
CREATE TABLE instances(
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  listen TEXT NOT NULL,
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  renewed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  lease_seconds INTEGER NOT NULL,
  left_at TIMESTAMPTZ,
  taken_over_by TEXT,
  taken_over_at TIMESTAMPTZ);
CREATE TABLE secrets(
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL);
CREATE TABLE log_chunks(
  deployment_id BIGINT NOT NULL,
  start_offset BIGINT NOT NULL,
  data BYTEA NOT NULL,
  times TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(deployment_id, start_offset));
)sql";

/// The migrations, in order: entry i takes a database from schema version i
/// to i + 1.
constexpr const char* migrations[] = {schema_v1_sql};

constexpr int current_version = static_cast<int>(std::size(migrations));

/// Taken while migrating: "heaven" in ASCII.
constexpr int64_t migration_lock = 0x68656176656e;

bool has_schema_table(pg::connection& conn) {
  return conn.query("SELECT to_regclass('heaven_schema') IS NOT NULL")
           .text(0, 0)
         == "t";
}

void check_not_newer(int found) {
  if (found > current_version)
    throw pg::error("the database has heaven schema version "
                    + std::to_string(found) + ", newer than this heaven's "
                    + std::to_string(current_version));
}

} // namespace

int pg_schema_version() {
  return current_version;
}

int pg_found_version(pg::connection& conn) {
  if (!has_schema_table(conn))
    return 0;
  auto r = conn.query("SELECT version FROM heaven_schema");
  return r.rows() == 0 ? 0 : static_cast<int>(r.int64(0, 0));
}

int pg_migrate(pg::connection& conn) {
  auto found = pg_found_version(conn);
  check_not_newer(found);
  if (found == current_version)
    return found; // The common case takes no lock.
  conn.advisory_lock(migration_lock);
  try {
    pg::transaction tx{conn};
    found = pg_found_version(conn); // Another instance may have done it.
    check_not_newer(found);
    if (found < current_version) {
      if (found == 0)
        conn.exec("CREATE TABLE IF NOT EXISTS heaven_schema("
                  "version INTEGER NOT NULL)");
      for (int v = found; v < current_version; ++v)
        conn.exec(migrations[v]);
      conn.exec("DELETE FROM heaven_schema");
      conn.query("INSERT INTO heaven_schema(version) VALUES($1)",
                 {std::to_string(current_version)});
    }
    tx.commit();
  } catch (...) {
    conn.advisory_unlock(migration_lock);
    throw;
  }
  conn.advisory_unlock(migration_lock);
  if (found > 0 && found < current_version)
    spdlog::info("store migrated the database from schema version {} to {}",
                 found, current_version);
  else if (found == 0)
    spdlog::info("store created heaven's tables (schema version {})",
                 current_version);
  return found;
}

void pg_check_schema(pg::connection& conn) {
  auto found = pg_found_version(conn);
  check_not_newer(found);
  if (found == 0)
    throw pg::error("the database has no heaven tables yet: run "
                    "'heaven migrate' (or start heaven serve) first");
  if (found < current_version)
    throw pg::error("the database has heaven schema version "
                    + std::to_string(found) + ", older than this heaven's "
                    + std::to_string(current_version)
                    + ": run 'heaven migrate' first");
}

} // namespace heaven
