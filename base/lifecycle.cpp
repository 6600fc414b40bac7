#include "base/lifecycle.hpp"

namespace heaven {

bool terminal_state(std::string_view state) {
  return state == "success" || state == "failure" || state == "error";
}

std::string lock_action(const std::string& prefix, const std::string& task) {
  if (task == prefix + ":lock")
    return "lock";
  if (task == prefix + ":unlock")
    return "unlock";
  return {};
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

provider_outcome admit(const deployment_request& req, const admission& a) {
  auto& repo = req.repo;
  auto& env = req.environment;
  if (a.lock_action == "lock") {
    if (a.lock_state == "already_locked")
      return {"error", repo + " is already locked on " + env + " by "
                         + a.holder + ": ask them, or unlock it first"};
    return {"success", repo + " locked on " + env + " by " + req.actor};
  }
  if (a.lock_action == "unlock") {
    if (a.lock_state == "not_locked")
      return {"success", repo + " was not locked on " + env};
    return {"success", repo + " unlocked on " + env + " by " + req.actor};
  }
  if (a.lock_state == "locked")
    return {"error", repo + " is locked on " + env + " by " + a.holder};
  if (a.busy)
    return {"error", "Already deploying."};
  if (!a.refusal.empty())
    return {"error", a.refusal};
  return {};
}

} // namespace heaven
