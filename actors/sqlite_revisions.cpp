/// The store contract on SQLite: what is deployed where. The `revisions`
/// table is the only place that says so; it is written when heaven finishes
/// a successful `deploy` and when GitHub reports one (heaven's or another
/// tool's), and read for the chat notice's commit list, a start's compare
/// link and auto-deploy.
#include "actors/sqlite_store.hpp"

#include <optional>
#include <utility>

#include "actors/revision_rules.hpp"

namespace heaven {

namespace sqlite_rows {

namespace {

using revision_rules::place;
using revision_rules::revision;

/// The `revisions` table of `db` (see revision_rules.hpp).
struct revision_table {
  database& db;

  std::optional<revision> find(const place& p) {
    auto& stmt = db.cached("SELECT sha, previous_sha, github_id FROM "
                           "revisions WHERE repo = ? AND app = ? AND "
                           "environment = ?");
    stmt.bind(1, p.repo).bind(2, p.app).bind(3, p.environment);
    std::optional<revision> found;
    if (stmt.step())
      found = revision{stmt.text(0), stmt.text(1), stmt.int64(2)};
    stmt.reset(); // See find_lock.
    return found;
  }

  void put(const place& p, const std::string& sha,
           const std::optional<revision>& current, int64_t github_id,
           int64_t deployment_id, const std::string& now) {
    auto& stmt = db.cached(
      "INSERT INTO revisions(repo, app, environment, sha, previous_sha, "
      "github_id, deployment_id, recorded_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT(repo, app, environment) DO UPDATE SET sha = excluded.sha, "
      "previous_sha = excluded.previous_sha, github_id = excluded.github_id, "
      "deployment_id = excluded.deployment_id, "
      "recorded_at = excluded.recorded_at");
    stmt.bind(1, p.repo).bind(2, p.app).bind(3, p.environment).bind(4, sha);
    if (current)
      stmt.bind(5, current->sha);
    else
      stmt.bind(5, nullptr);
    stmt.bind(6, github_id);
    if (deployment_id != 0)
      stmt.bind(7, deployment_id);
    else
      stmt.bind(7, nullptr);
    stmt.bind(8, now).run();
  }

  bool heaven_deployed(const std::string& repo, int64_t github_id) {
    auto& stmt = db.cached("SELECT 1 FROM deployments WHERE repo = ? AND "
                           "github_id = ? AND task = 'deploy' AND "
                           "state = 'success' LIMIT 1");
    stmt.bind(1, repo).bind(2, github_id);
    bool found = stmt.step();
    stmt.reset(); // See find_lock.
    return found;
  }
};

} // namespace

void record_finished(database& db, int64_t id, const deployment_request& r,
                     const std::string& now) {
  revision_table table{db};
  revision_rules::record_finished(table, id, r, now);
}

std::string record_reported(database& db, const deployment_notice& n,
                            const std::string& now) {
  revision_table table{db};
  return revision_rules::record_reported(table, n, now);
}

} // namespace sqlite_rows

using namespace sqlite_rows;
using revision_rules::stored_payload;

std::vector<deployed_environment>
sqlite_store::latest(const std::string& repo) {
  std::vector<deployed_environment> result;
  // The deployment to repeat is the one that put the sha there, else
  // heaven's newest successful deploy of that app and environment; a place
  // heaven never deployed to is left out.
  auto& stmt = db_.cached(
    "SELECT r.app, r.environment, r.sha, d.request, d.github_id, d.id "
    "FROM revisions r JOIN deployments d ON d.id = coalesce(r.deployment_id, "
    "(SELECT max(id) FROM deployments WHERE repo = r.repo AND app = r.app "
    "AND environment = r.environment AND task = 'deploy' "
    "AND state = 'success')) "
    "WHERE r.repo = ?1 ORDER BY r.app, r.environment");
  stmt.bind(1, repo);
  while (stmt.step()) {
    deployed_environment x;
    stmt.columns(0, x.app, x.environment, x.sha);
    stmt.columns(4, x.github_id, x.deployment_id);
    x.payload_json = stored_payload(stmt.text(3), x.deployment_id);
    result.push_back(std::move(x));
  }
  for (auto& x : result) {
    if (auto held = find_lock(db_, repo, x.environment)) {
      x.locked = true;
      x.lock = std::move(*held);
    }
  }
  return result;
}

} // namespace heaven
