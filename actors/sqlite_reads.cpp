/// The store contract on SQLite: the reads.
#include "actors/sqlite_store.hpp"

#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace heaven {

// A deployment's stored request: every field by its name.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(deployment_request, github_id, repo,
                                   clone_url, sha, ref, environment, task,
                                   description, actor, app, provider,
                                   environment_url, payload_json)

namespace sqlite_rows {

namespace {

/// The columns `read_lock` expects, in its order.
constexpr const char* lock_columns
  = "repo, environment, actor, reason, locked_at, deployment_id";

/// A lock row selected as `lock_columns`.
env_lock read_lock(const statement& stmt) {
  env_lock l;
  stmt.columns(0, l.repo, l.environment, l.actor, l.reason, l.locked_at,
               l.deployment_id);
  return l;
}

} // namespace

std::optional<env_lock> find_lock(database& db, const std::string& repo,
                                  const std::string& environment) {
  auto& stmt = db.cached(std::string("SELECT ") + lock_columns
                         + " FROM locks WHERE repo = ? AND environment = ?");
  stmt.bind(1, repo).bind(2, environment);
  std::optional<env_lock> result;
  if (stmt.step())
    result = read_lock(stmt);
  // A statement left on a row keeps its read snapshot open, and a later
  // write of this connection would then fail behind another's (the CLI's).
  stmt.reset();
  return result;
}

nlohmann::json request_to_json(const deployment_request& r) {
  return r;
}

bool read_request(const std::string& text, deployment_request& r, int64_t id) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    return false;
  try {
    auto merged = request_to_json(r);
    merged.update(j);
    r = merged.get<deployment_request>();
  } catch (const nlohmann::json::exception& e) {
    spdlog::error("store found a damaged request for deployment {}: {}", id,
                  e.what());
  }
  return true;
}

deployment_request request_of_row(const deployment_row& row,
                                  const std::string& text) {
  deployment_request r;
  r.github_id = row.github_id;
  r.repo = row.repo;
  r.app = row.app;
  r.environment = row.environment;
  r.ref = row.ref;
  r.sha = row.sha;
  r.task = row.task;
  r.provider = row.provider;
  r.actor = row.actor;
  r.payload_json = "{}";
  read_request(text, r, row.id);
  return r;
}

status_entry status_entry_of(const std::string& body, int64_t queued_ms,
                             int64_t settled_ms, std::string outcome) {
  status_entry e;
  auto j = nlohmann::json::parse(body, nullptr, false);
  auto field = [&j](const char* key) {
    auto i = j.is_object() ? j.find(key) : j.end();
    return i != j.end() && i->is_string() ? i->get<std::string>()
                                          : std::string{};
  };
  e.state = field("state");
  e.description = field("description");
  e.queued_ms = queued_ms;
  e.settled_ms = settled_ms;
  e.outcome = std::move(outcome);
  return e;
}

} // namespace sqlite_rows

using namespace sqlite_rows;

std::vector<outbox_row> sqlite_store::unsettled(const std::string& kind) {
  std::vector<outbox_row> result;
  auto& stmt = db_.cached("SELECT id, kind, stream, body, created_at FROM "
                          "outbox WHERE kind = ? AND settled_at IS NULL "
                          "ORDER BY id");
  stmt.bind(1, kind);
  while (stmt.step())
    result.push_back(
      {stmt.int64(0), stmt.text(1), stmt.text(2), stmt.text(3), stmt.int64(4)});
  return result;
}

namespace {

/// The columns of a deployment_row, read by deployment_of.
constexpr auto row_columns
  = "SELECT id, github_id, repo, app, environment, ref, sha, task, provider, "
    "actor, state, description, created_at, updated_at, finished_at";

deployment_row deployment_of(statement& stmt) {
  deployment_row x;
  stmt.columns(0, x.id, x.github_id, x.repo, x.app, x.environment, x.ref, x.sha,
               x.task, x.provider, x.actor);
  // Only heaven writes states; an unknown one lists as error.
  x.state = parse<deploy_state>(stmt.text(10)).value_or(deploy_state::error);
  stmt.columns(11, x.description, x.created_at, x.updated_at, x.finished_at);
  return x;
}

} // namespace

std::vector<deployment_row> sqlite_store::list(int32_t n) {
  deployment_filter all;
  all.limit = n;
  return list(all);
}

std::vector<deployment_row> sqlite_store::list(const deployment_filter& f) {
  std::vector<deployment_row> result;
  if (f.limit <= 0) // SQLite reads a negative LIMIT as "no limit".
    return result;
  // One cached statement per combination of filters (at most 16).
  std::string sql = std::string{row_columns} + " FROM deployments WHERE 1";
  if (!f.repo.empty())
    sql += " AND repo = ?";
  if (!f.environment.empty())
    sql += " AND environment = ?";
  if (!f.state.empty())
    sql += " AND state = ?";
  if (f.before > 0)
    sql += " AND id < ?";
  sql += " ORDER BY id DESC LIMIT ?";
  auto& stmt = db_.cached(sql);
  int i = 1;
  if (!f.repo.empty())
    stmt.bind(i++, f.repo);
  if (!f.environment.empty())
    stmt.bind(i++, f.environment);
  if (!f.state.empty())
    stmt.bind(i++, f.state);
  if (f.before > 0)
    stmt.bind(i++, f.before);
  stmt.bind(i, int64_t{f.limit});
  while (stmt.step())
    result.push_back(deployment_of(stmt));
  return result;
}

deployment_detail sqlite_store::detail(int64_t id) {
  deployment_detail d;
  {
    auto& stmt = db_.cached(std::string{row_columns}
                            + ", request, started_at FROM deployments "
                              "WHERE id = ?");
    stmt.bind(1, id);
    if (!stmt.step()) {
      stmt.reset();
      return d;
    }
    d.found = true;
    d.row = deployment_of(stmt);
    d.request = request_of_row(d.row, stmt.text(15));
    d.started_at = stmt.text(16);
    stmt.reset();
  }
  {
    auto& stmt = db_.cached("SELECT body, created_at, settled_at, outcome "
                            "FROM outbox WHERE kind = 'status' AND stream = ? "
                            "ORDER BY id");
    stmt.bind(1, "d" + std::to_string(id));
    while (stmt.step()) {
      d.statuses.push_back(status_entry_of(stmt.text(0), stmt.int64(1),
                                           stmt.is_null(2) ? 0 : stmt.int64(2),
                                           stmt.text(3)));
    }
  }
  {
    auto& stmt = db_.cached("SELECT sha FROM revisions WHERE repo = ? AND "
                            "app = ? AND environment = ?");
    stmt.bind(1, d.row.repo).bind(2, d.row.app).bind(3, d.row.environment);
    if (stmt.step())
      d.current_sha = stmt.text(0);
    stmt.reset();
  }
  return d;
}

namespace {

/// The columns an unfinished deployment is read from, in unfinished_row's
/// order.
constexpr auto unfinished_columns
  = "SELECT id, state, request, github_id, repo, app, environment, ref, sha, "
    "task, provider, actor, description FROM deployments ";

unfinished_deployment unfinished_row(statement& stmt) {
  unfinished_deployment x;
  x.id = stmt.int64(0);
  x.state = parse<deploy_state>(stmt.text(1)).value_or(deploy_state::queued);
  auto& r = x.request;
  // The columns are the fallback should the JSON be damaged or old.
  stmt.columns(3, r.github_id, r.repo, r.app, r.environment, r.ref, r.sha,
               r.task, r.provider, r.actor, r.description);
  r.payload_json = "{}";
  if (!read_request(stmt.text(2), r, x.id))
    spdlog::error("store found no readable request for deployment {}; "
                  "rebuilding it from its columns",
                  x.id);
  return x;
}

} // namespace

std::vector<unfinished_deployment> sqlite_store::pending() {
  std::vector<unfinished_deployment> result;
  auto& stmt = db_.cached(std::string{unfinished_columns}
                          + "WHERE state IN ('queued', 'running') ORDER BY "
                            "id ASC");
  while (stmt.step())
    result.push_back(unfinished_row(stmt));
  return result;
}

std::vector<unfinished_deployment> sqlite_store::pending_after(int64_t after,
                                                               int32_t limit) {
  std::vector<unfinished_deployment> result;
  if (limit <= 0)
    return result;
  auto& stmt = db_.cached(std::string{unfinished_columns}
                          + "WHERE state IN ('queued', 'running') AND id > ? "
                            "ORDER BY id ASC LIMIT ?");
  stmt.bind(1, after);
  stmt.bind(2, int64_t{limit});
  while (stmt.step())
    result.push_back(unfinished_row(stmt));
  return result;
}

std::vector<env_lock> sqlite_store::locks() {
  std::vector<env_lock> result;
  auto& stmt = db_.cached(std::string("SELECT ") + lock_columns
                          + " FROM locks ORDER BY locked_at, repo, "
                            "environment");
  while (stmt.step())
    result.push_back(read_lock(stmt));
  return result;
}

std::vector<repository_record> sqlite_store::repositories() {
  std::vector<repository_record> result;
  auto& stmt = db_.cached(
    "SELECT repo, active, first_seen FROM repositories ORDER BY repo");
  while (stmt.step())
    result.push_back({stmt.text(0), stmt.int64(1) != 0, stmt.text(2)});
  return result;
}

} // namespace heaven
