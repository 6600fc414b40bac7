/// The rules the store decides when it records a deployment, in the
/// transaction of its delivery: what its lock task does to the environment's
/// lock, whether the concurrency rule applies, and the state it is recorded
/// in. Plain functions of what the store read; the store does the writing.
#pragma once

#include <string>

#include "messages/types.hpp"

namespace heaven {

/// What the lock rule does to the environment's lock.
enum class lock_change {
  /// Leave it as it is.
  keep,
  /// Write the deployment's lock (a re-lock by the holder keeps its
  /// locked_at and actor, with a new reason).
  put,
  /// Remove it.
  remove,
};

/// The lock rule's verdict on one deployment.
struct lock_decision {
  /// What `accept_result::lock_state` says.
  lock_outcome outcome = lock_outcome::none;
  lock_change change = lock_change::keep;
};

/// The lock rule: a deployment's lock task by `actor` meets the
/// environment's lock (`held`, null when free). Locking an environment
/// someone else holds changes nothing; without a lock task a held lock is
/// reported as locked.
lock_decision decide_lock(lock_task action, const env_lock* held,
                          const std::string& actor);

/// Whether the concurrency rule (one deployment of an app and environment
/// at a time) decides: only for a deployment that is no lock task and meets
/// no lock.
bool concurrency_applies(lock_task action, lock_outcome outcome);

/// The state a deployment is recorded in, and its description.
struct verdict {
  deploy_state state = deploy_state::queued;
  std::string description;
};

/// The state a deployment is recorded in: its lock task's end, a locked
/// environment, "Already deploying." when `busy`, the receiver's `refusal`
/// (see admit in base/lifecycle.hpp), else queued with its queued
/// description.
verdict decide_state(const deployment_request& r, lock_task action,
                     const lock_decision& lock, const std::string& holder,
                     bool busy, const std::string& refusal);

} // namespace heaven
