/// GitHub deployments that auto_deploy creates: what the store's "deploy"
/// outbox rows mean and how the OUTBOX actor creates them, once.
///
/// The store writes a row when auto_deploy claims (repo, app, environment,
/// sha), in the claim's transaction: `{"repo", "app", "environment", "sha",
/// "request": <the body of POST /repos/{repo}/deployments>}`. So a claimed
/// auto-deployment is created even when heaven stops between the claim and
/// the request, and the outbox's lookup makes it created once when an
/// answer is lost.
#pragma once

#include "actors/outbox.hpp"
#include "actors/statuses.hpp"

namespace heaven {

/// The kind of the rows.
inline constexpr const char* deploy_kind = "deploy";

/// The description of every deployment auto_deploy creates: how a lookup
/// tells them from the rest.
inline constexpr const char* auto_deploy_description
  = "Heaven auto deploy triggered by a commit status change";

/// The courier of "deploy" rows: `POST /repos/{repo}/deployments` with the
/// row's request. A request whose answer was lost (or a row an earlier run
/// left) is looked up first in `GET
/// /repos/{repo}/deployments?sha=&environment=&task=deploy&per_page=100`
/// (up to 10 pages, by the answer's Link): a deployment there with the same
/// sha, environment and task, auto_deploy's description and a payload naming
/// the same app is the one created (the store's claim lets heaven create
/// one such deployment per app, environment and sha); when the list is
/// refused (a 4xx), the creation is dropped rather than risked. A 401 is
/// checked against `GET /rate_limit`. The GitHub deployment's id is logged
/// when it is created or found. Without a token nothing is created
/// (logged). With a GitHub App, the repository's installation token (see
/// status_courier).
courier deployment_courier(github_api api,
                           std::shared_ptr<github_app> app = nullptr);

} // namespace heaven
