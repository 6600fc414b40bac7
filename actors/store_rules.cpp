#include "actors/store_rules.hpp"

#include "base/lifecycle.hpp"

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
                     bool busy, const std::string& refusal) {
  admission a;
  a.lock_action = action;
  a.lock_state = lock.outcome;
  a.holder = holder;
  a.busy = busy;
  a.refusal = refusal;
  auto ended = admit(r, a);
  if (!ended)
    return {deploy_state::queued, queued_description(r)};
  return {ended->state, std::move(ended->description)};
}

} // namespace heaven
