/// The store contract on SQLite: what is deployed where. The `revisions`
/// table is the only place that says so; it is written when heaven finishes
/// a successful `deploy` and when GitHub reports one (heaven's or another
/// tool's), and read for the chat notice's commit list and for auto-deploy.
#include "actors/sqlite_store.hpp"

#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/notices.hpp"

namespace heaven {

namespace sqlite_rows {

namespace {

/// A `revisions` row, as far as its writers need it.
struct revision {
  std::string sha;
  /// The sha it replaced ("" when none or unknown).
  std::string previous_sha;
  /// The GitHub deployment that put it there (0 when unknown: a row moved
  /// from schema version 3).
  int64_t github_id = 0;
};

/// Where a sha is deployed.
struct place {
  const std::string& repo;
  const std::string& app;
  const std::string& environment;
};

/// The revision of `p`, if any.
std::optional<revision> find_revision(database& db, const place& p) {
  auto& stmt = db.cached("SELECT sha, previous_sha, github_id FROM revisions "
                         "WHERE repo = ? AND app = ? AND environment = ?");
  stmt.bind(1, p.repo).bind(2, p.app).bind(3, p.environment);
  std::optional<revision> found;
  if (stmt.step())
    found = revision{stmt.text(0), stmt.text(1), stmt.int64(2)};
  stmt.reset(); // See find_lock.
  return found;
}

/// Whether `current` is GitHub deployment `github_id`'s revision already.
bool recorded(const std::optional<revision>& current, int64_t github_id) {
  return current && github_id != 0 && current->github_id == github_id;
}

/// Makes `sha` (GitHub deployment `github_id`; heaven's deployment
/// `deployment_id`, 0 for another tool's) the revision of `p`, replacing
/// `current`.
void put_revision(database& db, const place& p, const std::string& sha,
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

/// Whether heaven itself finished GitHub deployment `github_id` of `repo`
/// as a successful `deploy` (and so recorded its revision then).
bool heaven_deployed(database& db, const std::string& repo, int64_t github_id) {
  auto& stmt = db.cached("SELECT 1 FROM deployments WHERE repo = ? AND "
                         "github_id = ? AND task = 'deploy' AND "
                         "state = 'success' LIMIT 1");
  stmt.bind(1, repo).bind(2, github_id);
  bool found = stmt.step();
  stmt.reset(); // See find_lock.
  return found;
}

} // namespace

void record_finished(database& db, int64_t id, const deployment_request& r,
                     const std::string& now) {
  if (r.task != "deploy" || r.sha.empty())
    return;
  place p{r.repo, r.app, r.environment};
  auto current = find_revision(db, p);
  if (!recorded(current, r.github_id))
    put_revision(db, p, r.sha, current, r.github_id, id, now);
}

std::string record_reported(database& db, const deployment_notice& n,
                            const std::string& now) {
  if (!records_revision(n))
    return {};
  place p{n.repo, n.app, n.environment};
  auto current = find_revision(db, p);
  // Heaven's own deployment, recorded when it finished: the base is what
  // it replaced then.
  if (recorded(current, n.deployment_id))
    return current->previous_sha;
  // Heaven's own deployment, replaced since (the event came late, or was
  // redelivered by hand): the place stays as it is, and what the deployment
  // replaced is no longer known.
  if (heaven_deployed(db, n.repo, n.deployment_id))
    return {};
  // Another tool's deployment: it is what is deployed there now.
  put_revision(db, p, n.sha, current, n.deployment_id, 0, now);
  return current ? current->sha : std::string{};
}

} // namespace sqlite_rows

using namespace sqlite_rows;

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
