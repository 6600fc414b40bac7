#include "actors/receiver.hpp"

#include <malloc.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/deployment.hpp"

namespace heaven {

namespace {

using self_ptr = receiver_actor::stateful_pointer<receiver_state>;

/// Spawns the deployment actor for `req`, applying the concurrency rule
/// unless a verdict already decides how it ends.
void launch(self_ptr self, int64_t id, const deployment_request& req,
            provider_outcome verdict = {}) {
  auto& st = self->state;
  auto key = deployment_key(req);
  if (verdict.state.empty() && st.running.count(key) > 0)
    verdict = provider_outcome{"error", "Already deploying."};
  bool holds = verdict.state.empty();
  auto d = self->spawn(deployment, st.ctx, id, req, receiver_actor{self},
                       holds ? key : std::string{}, std::move(verdict));
  if (holds) {
    // Also watched: a deployment that dies without saying `done` must not
    // hold its app+environment until heaven restarts.
    self->monitor(d);
    st.running.emplace(key, d);
  }
}

/// How the lock rule ends a deployment the store has just recorded (with
/// lock action `action` carried out), or no verdict (state "") when it may
/// go on to its provider.
provider_outcome lock_verdict(const std::string& action,
                              const deployment_request& req,
                              const accept_result& res) {
  auto& repo = req.repo;
  auto& env = req.environment;
  auto& holder = res.lock.actor;
  if (action == "lock") {
    if (res.lock_state == "already_locked")
      return {"error", repo + " is already locked on " + env + " by " + holder
                         + ": ask them, or unlock it first"};
    return {"success", repo + " locked on " + env + " by " + req.actor};
  }
  if (action == "unlock") {
    if (res.lock_state == "not_locked")
      return {"success", repo + " was not locked on " + env};
    return {"success", repo + " unlocked on " + env + " by " + req.actor};
  }
  if (res.lock_state == "locked")
    return {"error", repo + " is locked on " + env + " by " + holder};
  return {};
}

/// What the store's answer to `ev` means, acted upon.
void act(self_ptr self, const inbound_event& ev, const accept_result& res) {
  auto& ctx = self->state.ctx;
  if (ev.type == "deployment") {
    if (res.deployment_id <= 0)
      return;
    // The deployment logs how the verdict ended it.
    auto verdict = lock_verdict(ev.lock_action, ev.deployment, res);
    launch(self, res.deployment_id, ev.deployment, std::move(verdict));
  } else if (ev.type == "status") {
    if (ctx->auto_deploy)
      self->send(ctx->auto_deploy, status_atom::value, ev.status);
  } else if (ev.type == "deployment_status") {
    if (ctx->notify)
      self->send(ctx->notify, notify_atom::value, ev.notice);
  }
}

} // namespace

std::string lock_action(const std::string& prefix, const std::string& task) {
  if (task == prefix + ":lock")
    return "lock";
  if (task == prefix + ":unlock")
    return "unlock";
  return {};
}

receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx) {
  self->state.ctx = ctx;
  self->request(ctx->store, caf::infinite, pending_atom::value)
    .then(
      [=](std::vector<unfinished_deployment>& left) {
        auto& prefix = self->state.ctx->cfg.deploy_prefix;
        for (auto& d : left) {
          spdlog::info("receiver found deployment {} of {} to {} left {} by "
                       "an earlier run",
                       d.id, d.request.repo, d.request.environment, d.state);
          auto& req = d.request;
          // The store carried the lock task out when it recorded it; only
          // its status is missing.
          auto action = lock_action(prefix, req.task);
          if (action == "lock")
            launch(self, d.id, req,
                   {"success", req.repo + " locked on " + req.environment
                                 + " by " + req.actor});
          else if (action == "unlock")
            launch(self, d.id, req,
                   {"success", req.repo + " unlocked on " + req.environment
                                 + " by " + req.actor});
          else if (d.state == "running")
            launch(self, d.id, req,
                   {"error", "heaven restarted during this deployment; its "
                             "outcome is unknown: deploy again"});
          else
            launch(self, d.id, req);
        }
      },
      [=](caf::error& err) {
        spdlog::error("receiver could not read unfinished deployments: {}",
                      self->system().render(err));
      });
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& running = self->state.running;
    for (auto i = running.begin(); i != running.end(); ++i)
      if (i->second.address() == msg.source) {
        running.erase(i);
        return;
      }
  });
  self->set_exit_handler([=](caf::exit_msg& msg) {
    // Shutting down: every running deployment ends with `error` now, so
    // GitHub never shows one as forever in progress.
    auto& st = self->state;
    for (auto& kvp : st.running)
      self->send(kvp.second, cancel_atom::value,
                 std::string{"heaven was stopped during the deployment"});
    st.running.clear();
    self->quit(msg.reason);
  });
  return {
    [=](event_atom, inbound_event& ev) -> caf::result<ingress_reply> {
      auto rp = self->make_response_promise<ingress_reply>();
      if (ev.type == "deployment")
        ev.lock_action = lock_action(self->state.ctx->cfg.deploy_prefix,
                                     ev.deployment.task);
      // What `act` needs afterwards; the body stays with the store.
      inbound_event kept;
      kept.type = ev.type;
      kept.repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
      kept.lock_action = ev.lock_action;
      kept.deployment = ev.deployment;
      kept.status = ev.status;
      kept.notice = ev.notice;
      self->request(self->state.ctx->store, caf::infinite, accept_atom::value,
                    std::move(ev))
        .then(
          [=](accept_result& res) mutable {
            if (res.duplicate) {
              rp.deliver(ingress_reply{200, R"({"status":"duplicate"})"});
              return;
            }
            if (res.ignored) {
              spdlog::info("receiver ignores a {} event of {}: the "
                           "repository is disabled (heaven repos enable {})",
                           kept.type, kept.repo, kept.repo);
              rp.deliver(ingress_reply{
                202, R"({"status":"ignored","reason":"repository disabled"})"});
              return;
            }
            rp.deliver(ingress_reply{201, "{}"});
            act(self, kept, res);
          },
          [=](caf::error& err) mutable {
            spdlog::error("receiver could not store a {} event: {}", kept.type,
                          self->system().render(err));
            rp.deliver(ingress_reply{
              503, R"({"error":"heaven could not store the event"})"});
          });
      return rp;
    },
    [=](done_atom, std::string& key) {
      self->state.running.erase(key);
      // The last deployment of a burst has ended: give the memory it used
      // back to the system (glibc keeps freed heap otherwise).
      if (self->state.running.empty())
        malloc_trim(0);
    },
  };
}

} // namespace heaven
