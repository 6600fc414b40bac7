/// The rules of the `revisions` table (what is deployed where), once for
/// every backend: when heaven finishes a successful `deploy` and when GitHub
/// reports one (heaven's or another tool's). A backend hands in its table
/// (see revision_table below) and does only the reading and writing, in the
/// caller's transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/notices.hpp"
#include "messages/types.hpp"

namespace heaven::revision_rules {

/// A `revisions` row, as far as its writers need it.
struct revision {
  std::string sha;
  /// The sha it replaced ("" when none or unknown).
  std::string previous_sha;
  /// The GitHub deployment that put it there (0 when unknown: a row moved
  /// from SQLite schema version 3).
  int64_t github_id = 0;
};

/// Where a sha is deployed.
struct place {
  const std::string& repo;
  const std::string& app;
  const std::string& environment;
};

// A revision table `T` has:
//   std::optional<revision> find(const place& p);
//     the revision of `p`, if any;
//   void put(const place& p, const std::string& sha,
//            const std::optional<revision>& current, int64_t github_id,
//            int64_t deployment_id, const std::string& now);
//     makes `sha` (GitHub deployment `github_id`; heaven's deployment
//     `deployment_id`, 0 for another tool's) the revision of `p`, replacing
//     `current`;
//   bool heaven_deployed(const std::string& repo, int64_t github_id);
//     whether heaven itself finished GitHub deployment `github_id` of
//     `repo` as a successful `deploy` (and so recorded its revision then).

/// Whether `current` is GitHub deployment `github_id`'s revision already.
inline bool recorded(const std::optional<revision>& current,
                     int64_t github_id) {
  return current && github_id != 0 && current->github_id == github_id;
}

/// Heaven's deployment `id` of `r` ended in success: a `deploy` with a sha
/// becomes the revision of its repository, app and environment, unless that
/// GitHub deployment is its revision already.
template <class T>
void record_finished(T& table, int64_t id, const deployment_request& r,
                     const std::string& now) {
  if (r.task != "deploy" || r.sha.empty())
    return;
  place p{r.repo, r.app, r.environment};
  auto current = table.find(p);
  if (!recorded(current, r.github_id))
    table.put(p, r.sha, current, r.github_id, id, now);
}

/// The base of start notice `n` (compares_with_deployed): the revision of
/// its repository, app and environment, read and left as it is.
template <class T>
std::string deployed_before(T& table, const deployment_notice& n) {
  auto current = table.find(place{n.repo, n.app, n.environment});
  if (!current)
    return {};
  // Its own deployment's revision already (the start came late): the base
  // is what that replaced.
  if (recorded(current, n.deployment_id))
    return current->previous_sha;
  // Its deployment was heaven's, recorded and replaced since: what was
  // deployed before it is no longer known.
  if (table.heaven_deployed(n.repo, n.deployment_id))
    return {};
  return current->sha;
}

/// GitHub reports `n`: a successful `deploy` of another tool becomes the
/// revision of its repository, app and environment. Returns the notice's
/// base (see notice_row_body): the sha a successful `deploy` replaced there,
/// the sha deployed there as a start is reported (recording nothing), or ""
/// (none, not known, or another notice).
template <class T>
std::string
record_reported(T& table, const deployment_notice& n, const std::string& now) {
  if (compares_with_deployed(n))
    return deployed_before(table, n);
  if (!records_revision(n))
    return {};
  place p{n.repo, n.app, n.environment};
  auto current = table.find(p);
  // Heaven's own deployment, recorded when it finished: the base is what
  // it replaced then.
  if (recorded(current, n.deployment_id))
    return current->previous_sha;
  // Heaven's own deployment, replaced since (the event came late, or was
  // redelivered by hand): the place stays as it is, and what the deployment
  // replaced is no longer known.
  if (table.heaven_deployed(n.repo, n.deployment_id))
    return {};
  // Another tool's deployment: it is what is deployed there now.
  table.put(p, n.sha, current, n.deployment_id, 0, now);
  return current ? current->sha : std::string{};
}

/// The deployment payload stored in request JSON `request` of deployment
/// `id` ("{}" when missing; an unreadable request is logged).
std::string stored_payload(const std::string& request, int64_t id);

} // namespace heaven::revision_rules
