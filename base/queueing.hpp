/// Queued deployments: whether a deployment to a busy app+environment waits
/// its turn (payload.config.queue, HEAVEN_QUEUE_DEPLOYMENTS) and whether it
/// replaces the older ones of its task that wait (payload.config.supersede),
/// and the words of its waiting.
#pragma once

#include <cstdint>
#include <string>

#include "messages/types.hpp"

namespace heaven {

/// How a deployment meets a busy app+environment.
enum class queue_mode {
  /// Refused with "Already deploying." (the Rails Heaven's rule).
  refuse,
  /// Waits its turn, queued.
  wait,
  /// Waits its turn, and ends the older waiting deployments of its app,
  /// environment and task ("superseded by deployment N").
  supersede,
};

/// The mode of `req`: payload.config.supersede true is `supersede`; else
/// payload.config.queue true is `wait`, false is `refuse`; else `wait` when
/// `queue_all` (HEAVEN_QUEUE_DEPLOYMENTS), `refuse` otherwise. Only JSON
/// booleans count: any other value (or a payload that is no JSON object)
/// reads as absent.
queue_mode read_queue_mode(const deployment_request& req, bool queue_all);

/// The description of a deployment's `queued` status while it waits for
/// deployment `github_id` (GitHub's id) to finish: "waiting for deployment
/// 42 to finish".
std::string waiting_description(int64_t github_id);

/// The description of the `error` status of a waiting deployment replaced
/// by deployment `github_id`: "superseded by deployment 43".
std::string superseded_description(int64_t github_id);

} // namespace heaven
