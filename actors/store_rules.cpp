#include "actors/store_rules.hpp"

#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/lifecycle.hpp"
#include "base/queueing.hpp"

namespace heaven {

lock_decision decide_lock(lock_task action, const env_lock* held,
                          const std::string& actor) {
  switch (action) {
    case lock_task::lock:
      if (held != nullptr && held->actor != actor)
        return {lock_outcome::already_locked, lock_change::keep};
      return {lock_outcome::locked, lock_change::put};
    case lock_task::unlock:
      if (held != nullptr)
        return {lock_outcome::unlocked, lock_change::remove};
      return {lock_outcome::not_locked, lock_change::keep};
    default:
      if (held != nullptr)
        return {lock_outcome::locked, lock_change::keep};
      return {};
  }
}

bool concurrency_applies(lock_task action, lock_outcome outcome) {
  return action == lock_task::none && outcome == lock_outcome::none;
}

verdict decide_state(const deployment_request& r, lock_task action,
                     const lock_decision& lock, const std::string& holder,
                     bool busy, const std::string& refusal, bool queue,
                     int64_t ahead) {
  admission a;
  a.lock_action = action;
  a.lock_state = lock.outcome;
  a.holder = holder;
  a.busy = busy;
  a.refusal = refusal;
  a.queue = queue;
  auto ended = admit(r, a);
  if (!ended && busy)
    return {deploy_state::queued, waiting_description(ahead)};
  if (!ended)
    return {deploy_state::queued, queued_description(r)};
  return {ended->state, std::move(ended->description)};
}

namespace {

/// JSON text as the outbox stores it (invalid UTF-8 replaced).
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string status_body(int64_t id, const deployment_request& r,
                        deploy_state state, const std::string& description) {
  nlohmann::json body = {{"repo", r.repo},
                         {"github_id", r.github_id},
                         {"deployment_id", id},
                         {"environment", r.environment},
                         {"state", to_string(status_state_of(state))},
                         {"description", description},
                         {"environment_url", r.environment_url}};
  return dump(body);
}

std::string deploy_stream(const auto_deployment& x) {
  return x.repo + ":" + x.app + ":" + x.environment;
}

std::string deploy_body(const auto_deployment& x, const char* what) {
  auto request = nlohmann::json::parse(x.body, nullptr, false);
  if (!request.is_object())
    throw std::invalid_argument(std::string{what}
                                + " request is not a JSON object");
  nlohmann::json body = {{"repo", x.repo},
                         {"app", x.app},
                         {"environment", x.environment},
                         {"sha", x.sha},
                         {"request", std::move(request)}};
  return dump(body);
}

} // namespace heaven
