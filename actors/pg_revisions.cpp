/// The store contract on PostgreSQL: what is deployed where (see
/// sqlite_revisions.cpp, whose rules these follow).
#include "actors/pg_revisions.hpp"

#include <optional>
#include <utility>

#include "actors/pg_store.hpp"
#include "actors/revision_rules.hpp"
#include "actors/sqlite_store.hpp"

namespace heaven {

namespace pg_rows {

namespace {

using revision_rules::place;
using revision_rules::revision;

/// The `revisions` table on `conn` (see revision_rules.hpp).
struct revision_table {
  pg::connection& conn;

  /// (Its row locked until the transaction ends.)
  std::optional<revision> find(const place& p) {
    auto r = conn.query("SELECT sha, previous_sha, github_id FROM revisions "
                        "WHERE repo = $1 AND app = $2 AND environment = $3 "
                        "FOR UPDATE",
                        {p.repo, p.app, p.environment});
    if (r.rows() == 0)
      return std::nullopt;
    return revision{r.text(0, 0), r.text(0, 1),
                    r.is_null(0, 2) ? 0 : r.int64(0, 2)};
  }

  void put(const place& p, const std::string& sha,
           const std::optional<revision>& current, int64_t github_id,
           int64_t deployment_id, const std::string& now) {
    conn.query(
      "INSERT INTO revisions(repo, app, environment, sha, previous_sha, "
      "github_id, deployment_id, recorded_at) "
      "VALUES($1, $2, $3, $4, $5, $6, $7, $8) "
      "ON CONFLICT(repo, app, environment) DO UPDATE SET sha = excluded.sha, "
      "previous_sha = excluded.previous_sha, github_id = excluded.github_id, "
      "deployment_id = excluded.deployment_id, "
      "recorded_at = excluded.recorded_at",
      {p.repo, p.app, p.environment, sha,
       current ? pg::param{current->sha} : std::nullopt,
       pg::int64_param(github_id),
       deployment_id != 0 ? pg::int64_param(deployment_id) : std::nullopt,
       now});
  }

  bool heaven_deployed(const std::string& repo, int64_t github_id) {
    return conn
             .query("SELECT 1 FROM deployments WHERE repo = $1 AND "
                    "github_id = $2 AND task = 'deploy' AND "
                    "state = 'success' LIMIT 1",
                    {repo, pg::int64_param(github_id)})
             .rows()
           > 0;
  }
};

} // namespace

void record_finished(pg::connection& conn, int64_t id,
                     const deployment_request& r, const std::string& now) {
  revision_table table{conn};
  revision_rules::record_finished(table, id, r, now);
}

std::string record_reported(pg::connection& conn, const deployment_notice& n,
                            const std::string& now) {
  revision_table table{conn};
  return revision_rules::record_reported(table, n, now);
}

} // namespace pg_rows

using revision_rules::stored_payload;

std::vector<deployed_environment> pg_store::latest(const std::string& repo) {
  return transact([&](pg::connection& conn) {
    std::vector<deployed_environment> result;
    // The deployment to repeat is the one that put the sha there, else
    // heaven's newest successful deploy of that app and environment; a
    // place heaven never deployed to is left out.
    auto r = conn.query(
      "SELECT r.app, r.environment, r.sha, d.request, d.github_id, d.id, "
      "l.repo IS NOT NULL, l.actor, l.reason, l.locked_at, l.deployment_id "
      "FROM revisions r JOIN deployments d ON d.id = coalesce("
      "r.deployment_id, (SELECT max(id) FROM deployments WHERE repo = r.repo "
      "AND app = r.app AND environment = r.environment AND task = 'deploy' "
      "AND state = 'success')) "
      "LEFT JOIN locks l ON l.repo = r.repo AND l.environment = r.environment "
      "WHERE r.repo = $1 ORDER BY r.app COLLATE \"C\", "
      "r.environment COLLATE \"C\"",
      {repo});
    for (int i = 0; i < r.rows(); ++i) {
      deployed_environment x;
      x.app = r.text(i, 0);
      x.environment = r.text(i, 1);
      x.sha = r.text(i, 2);
      x.github_id = r.is_null(i, 4) ? 0 : r.int64(i, 4);
      x.deployment_id = r.int64(i, 5);
      x.payload_json = stored_payload(r.text(i, 3), x.deployment_id);
      if (r.text(i, 6) == "t") {
        x.locked = true;
        x.lock.repo = repo;
        x.lock.environment = x.environment;
        x.lock.actor = r.text(i, 7);
        x.lock.reason = r.text(i, 8);
        x.lock.locked_at = r.text(i, 9);
        x.lock.deployment_id = r.int64(i, 10);
      }
      result.push_back(std::move(x));
    }
    return result;
  });
}

} // namespace heaven
