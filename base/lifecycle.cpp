#include "base/lifecycle.hpp"

namespace heaven {

lock_task lock_action(const std::string& prefix, const std::string& task) {
  if (task == prefix + ":lock")
    return lock_task::lock;
  if (task == prefix + ":unlock")
    return lock_task::unlock;
  return lock_task::none;
}

std::string queued_description(const deployment_request& req) {
  return "Queued " + req.ref + " (" + short_sha(req.sha) + ") for "
         + req.environment + " by "
         + (req.actor.empty() ? std::string{"someone"} : req.actor);
}

std::string running_description(const deployment_request& req) {
  return "Deploying " + req.ref + " (" + short_sha(req.sha) + ") to "
         + req.environment + " with " + req.provider;
}

std::string locked_description(const deployment_request& req,
                               const std::string& holder) {
  return req.repo + " is locked on " + req.environment + " by " + holder;
}

std::optional<provider_outcome> admit(const deployment_request& req,
                                      const admission& a) {
  auto error = [](std::string why) {
    return provider_outcome{deploy_state::error, std::move(why)};
  };
  auto success = [](std::string what) {
    return provider_outcome{deploy_state::success, std::move(what)};
  };
  auto& repo = req.repo;
  auto& env = req.environment;
  if (a.lock_action == lock_task::lock) {
    if (a.lock_state == lock_outcome::already_locked)
      return error(repo + " is already locked on " + env + " by " + a.holder
                   + ": ask them, or unlock it first");
    return success(repo + " locked on " + env + " by " + req.actor);
  }
  if (a.lock_action == lock_task::unlock) {
    if (a.lock_state == lock_outcome::not_locked)
      return success(repo + " was not locked on " + env);
    return success(repo + " unlocked on " + env + " by " + req.actor);
  }
  if (a.lock_state == lock_outcome::locked)
    return error(locked_description(req, a.holder));
  if (a.busy && !a.queue)
    return error("Already deploying.");
  if (!a.refusal.empty())
    return error(a.refusal);
  return std::nullopt;
}

} // namespace heaven
