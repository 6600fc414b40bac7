/// GitHub deployment statuses: what the store's "status" outbox rows mean
/// and how the OUTBOX actor delivers them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "actors/outbox.hpp"
#include "base/github.hpp"
#include "messages/types.hpp"

namespace heaven {

/// The status an outbox row of kind "status" holds (without its log_url).
/// Throws std::runtime_error when the row cannot be read.
github_status status_of(const outbox_row& row);

/// The deployment id (heaven's own) of a "status" row, 0 when it has none.
int64_t status_deployment(const outbox_row& row);

/// The courier of GitHub statuses: `POST
/// /repos/{repo}/deployments/{id}/statuses` with the status, its log link
/// (`log_url(deployment id)`) and environment URL; an attempt whose answer
/// was lost is looked up in `GET .../statuses` (the same state and
/// description: heaven posts each state of a deployment once); a 401 is
/// checked against `GET /rate_limit`. Without a token a status is only
/// logged.
courier status_courier(github_api api,
                       std::function<std::string(int64_t)> log_url);

} // namespace heaven
