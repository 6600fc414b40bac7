/// GitHub deployment statuses: what the store's "status" outbox rows mean
/// and how the OUTBOX actor delivers them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "actors/outbox.hpp"
#include "base/github.hpp"
#include "base/github_app.hpp"
#include "messages/types.hpp"

namespace heaven {

/// What an outbox row of kind "status" holds.
struct status_row {
  /// The status (without its log_url).
  github_status status;
  /// heaven's own id of the deployment, 0 when the row has none.
  int64_t deployment = 0;
  /// The deployment's environment, "" in rows written before the pages.
  std::string environment;
};

/// Reads a "status" row (one parse of its body). Throws std::runtime_error
/// when the row cannot be read.
status_row read_status_row(const outbox_row& row);

/// The status an outbox row of kind "status" holds (without its log_url).
/// Throws std::runtime_error when the row cannot be read.
github_status status_of(const outbox_row& row);

/// The courier of GitHub statuses: `POST
/// /repos/{repo}/deployments/{id}/statuses` with the status, its log link
/// (`log_url(deployment id)`) and environment URL; an attempt whose answer
/// was lost is looked up in `GET .../statuses` (the same state and
/// description: heaven posts each state of a deployment once); a 401 is
/// checked against `GET /rate_limit`. Without a token a status is only
/// logged. With a GitHub App (`app`), each request carries the token of the
/// status's repository (see courier_api): a row waits while none can be had,
/// and a 401 renews the installation's token once.
courier status_courier(github_api api,
                       std::function<std::string(int64_t)> log_url,
                       std::shared_ptr<github_app> app = nullptr);

/// The GitHub API of `repo` for a courier's request: `api` with the token
/// of `repo` (github_app::token_at_hand). Never waits for GitHub: throws
/// not_yet while the app's thread fetches the token, not_now when the app
/// cannot get one just now.
github_api courier_api(const std::shared_ptr<github_app>& app, github_api api,
                       const std::string& repo);

/// A courier's `renew`: forgets the installation token `sent` carried for
/// `repo` (true: worth one more try with a new one).
bool renew_token(const std::shared_ptr<github_app>& app,
                 const std::string& repo, const http_request& sent);

} // namespace heaven
