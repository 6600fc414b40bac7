/// The store contract on PostgreSQL: what is deployed where (see
/// sqlite_revisions.cpp, whose rules these follow).
#include "actors/pg_revisions.hpp"

#include <optional>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/pg_store.hpp"
#include "actors/sqlite_store.hpp"
#include "base/notices.hpp"

namespace heaven {

namespace pg_rows {

namespace {

/// A `revisions` row, as far as its writers need it.
struct revision {
  std::string sha;
  /// The sha it replaced ("" when none or unknown).
  std::string previous_sha;
  /// The GitHub deployment that put it there.
  int64_t github_id = 0;
};

/// Where a sha is deployed.
struct place {
  const std::string& repo;
  const std::string& app;
  const std::string& environment;
};

/// The revision of `p`, if any (its row locked until the transaction ends).
std::optional<revision> find_revision(pg::connection& conn, const place& p) {
  auto r = conn.query("SELECT sha, previous_sha, github_id FROM revisions "
                      "WHERE repo = $1 AND app = $2 AND environment = $3 "
                      "FOR UPDATE",
                      {p.repo, p.app, p.environment});
  if (r.rows() == 0)
    return std::nullopt;
  return revision{r.text(0, 0), r.text(0, 1),
                  r.is_null(0, 2) ? 0 : r.int64(0, 2)};
}

/// Whether `current` is GitHub deployment `github_id`'s revision already.
bool recorded(const std::optional<revision>& current, int64_t github_id) {
  return current && github_id != 0 && current->github_id == github_id;
}

/// Makes `sha` (GitHub deployment `github_id`; heaven's deployment
/// `deployment_id`, 0 for another tool's) the revision of `p`, replacing
/// `current`.
void put_revision(pg::connection& conn, const place& p, const std::string& sha,
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
     deployment_id != 0 ? pg::int64_param(deployment_id) : std::nullopt, now});
}

/// Whether heaven itself finished GitHub deployment `github_id` of `repo`
/// as a successful `deploy` (and so recorded its revision then).
bool heaven_deployed(pg::connection& conn, const std::string& repo,
                     int64_t github_id) {
  return conn
           .query("SELECT 1 FROM deployments WHERE repo = $1 AND "
                  "github_id = $2 AND task = 'deploy' AND "
                  "state = 'success' LIMIT 1",
                  {repo, pg::int64_param(github_id)})
           .rows()
         > 0;
}

} // namespace

void record_finished(pg::connection& conn, int64_t id,
                     const deployment_request& r, const std::string& now) {
  if (r.task != "deploy" || r.sha.empty())
    return;
  place p{r.repo, r.app, r.environment};
  auto current = find_revision(conn, p);
  if (!recorded(current, r.github_id))
    put_revision(conn, p, r.sha, current, r.github_id, id, now);
}

std::string record_reported(pg::connection& conn, const deployment_notice& n,
                            const std::string& now) {
  if (!records_revision(n))
    return {};
  place p{n.repo, n.app, n.environment};
  auto current = find_revision(conn, p);
  // Heaven's own deployment, recorded when it finished: the base is what
  // it replaced then.
  if (recorded(current, n.deployment_id))
    return current->previous_sha;
  // Heaven's own deployment, replaced since: the place stays as it is, and
  // what the deployment replaced is no longer known.
  if (heaven_deployed(conn, n.repo, n.deployment_id))
    return {};
  // Another tool's deployment: it is what is deployed there now.
  put_revision(conn, p, n.sha, current, n.deployment_id, 0, now);
  return current ? current->sha : std::string{};
}

} // namespace pg_rows

namespace {

/// The deployment payload stored in a request JSON ("{}" when missing).
std::string stored_payload(const std::string& request, int64_t id) {
  auto j = nlohmann::json::parse(request, nullptr, false);
  if (j.is_object()) {
    auto i = j.find("payload_json");
    if (i != j.end() && i->is_string() && !i->get<std::string>().empty())
      return i->get<std::string>();
  } else {
    spdlog::error("store found no readable request for deployment {}; "
                  "using an empty payload",
                  id);
  }
  return "{}";
}

} // namespace

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
