/// The rules the store decides when it records a deployment, in the
/// transaction of its delivery: what its lock task does to the environment's
/// lock, whether the concurrency rule applies, and the state it is recorded
/// in. Plain functions of what the store read; the store does the writing.
#pragma once

#include <cstdint>
#include <optional>
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
/// environment, "Already deploying." when `busy` (unless `queue`), the
/// receiver's `refusal` (see admit in base/lifecycle.hpp), else queued: with
/// "waiting for deployment <ahead> to finish" when `busy` and `queue`
/// (`ahead` is GitHub's id of the deployment it waits for), else its queued
/// description.
verdict decide_state(const deployment_request& r, lock_task action,
                     const lock_decision& lock, const std::string& holder,
                     bool busy, const std::string& refusal, bool queue = false,
                     int64_t ahead = 0);

/// Applies the lock rule to (`repo`, the environment of `ev`'s deployment)
/// and fills `res.lock_state` and `res.lock`. The backend reads and writes
/// that lock: `find()` returns it (std::optional<env_lock>), `put()` writes
/// the deployment's lock (see lock_change::put), `remove()` deletes it and
/// returns what it was.
template <class Find, class Put, class Remove>
lock_decision apply_lock_rule(const inbound_event& ev, const std::string& repo,
                              accept_result& res, Find find, Put put,
                              Remove remove) {
  const auto& r = ev.deployment;
  auto held = find();
  auto decision = decide_lock(ev.lock_action, held ? &*held : nullptr, r.actor);
  switch (decision.change) {
    case lock_change::put:
      put();
      res.lock = find().value();
      break;
    case lock_change::remove:
      res.lock = remove().value();
      break;
    case lock_change::keep:
      if (held) {
        res.lock = std::move(*held);
      } else if (decision.outcome != lock_outcome::none) {
        res.lock.repo = repo;
        res.lock.environment = r.environment;
      }
      break;
  }
  res.lock_state = decision.outcome;
  return decision;
}

// -- the outbox rows' bodies: the same JSON text on every backend ----------

/// The body of the "status" row saying that deployment `id` (of `r`) is in
/// `state`.
std::string status_body(int64_t id, const deployment_request& r,
                        deploy_state state, const std::string& description);

/// The stream of auto-deployments to `x`'s app and environment.
std::string deploy_stream(const auto_deployment& x);

/// The body of the "deploy" row that creates GitHub deployment `x`; throws
/// std::invalid_argument ("<what> request is not a JSON object") when `x`
/// carries no JSON object.
std::string deploy_body(const auto_deployment& x, const char* what);

} // namespace heaven
