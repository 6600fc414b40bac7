/// The rules and words of a deployment's life, shared by the store (which
/// decides them in a transaction) and the actors (which act on them).
#pragma once

#include <optional>
#include <string>

#include "base/text.hpp" // short_sha, as the descriptions show a sha
#include "messages/types.hpp"

namespace heaven {

/// lock when `task` is `<prefix>:lock`, unlock for `<prefix>:unlock`, else
/// none.
lock_task lock_action(const std::string& prefix, const std::string& task);

/// The description of a deployment's `queued` status: "Queued main
/// (abc1234) for production by alice".
std::string queued_description(const deployment_request& req);

/// The description of its `in_progress` status: "Deploying main (abc1234)
/// to production with shell".
std::string running_description(const deployment_request& req);

/// The description of the `error` of a deployment that meets `req`'s
/// environment locked by `holder`: "<repo> is locked on <environment> by
/// <holder>" (at its arrival, or at its turn when it waited).
std::string locked_description(const deployment_request& req,
                               const std::string& holder);

/// What the store knows when it records a deployment, in one transaction.
struct admission {
  /// The deployment's lock action.
  lock_task lock_action = lock_task::none;
  /// What the lock rule found or did.
  lock_outcome lock_state = lock_outcome::none;
  /// The holder of the lock `lock_state` names.
  std::string holder;
  /// Whether another deployment of the same app and environment is queued or
  /// running.
  bool busy = false;
  /// Whether a busy app and environment makes it wait its turn (queued)
  /// rather than refuses it (see base/queueing.hpp).
  bool queue = false;
  /// The receiver's reason why it may not run, or "".
  std::string refusal;
};

/// How the rules end a deployment before it runs, in order: its lock or
/// unlock task (`success`, or `error` when someone else holds the lock), a
/// locked environment, "Already deploying." (busy, unless it queues), the
/// receiver's refusal; none when it may run or wait its turn.
std::optional<provider_outcome> admit(const deployment_request& req,
                                      const admission& a);

} // namespace heaven
