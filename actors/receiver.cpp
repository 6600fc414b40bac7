#include "actors/receiver.hpp"

#include <malloc.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/deployment.hpp"
#include "base/health.hpp"
#include "base/lifecycle.hpp"
#include "base/log_book.hpp"
#include "base/retry.hpp"

namespace heaven {

namespace {

using self_ptr = receiver_actor::stateful_pointer<receiver_state>;

/// The description a deployment left running by a stopped or killed heaven
/// ends with.
constexpr auto restarted
  = "heaven restarted during this deployment; its outcome is unknown: "
    "deploy again";

/// Runs queued deployment `id`, watched until it ends.
void launch(self_ptr self, int64_t id, const deployment_request& req) {
  auto& st = self->state;
  auto d = self->spawn(deployment, st.ctx, id, req);
  self->monitor(d);
  st.running.emplace(d.address(), id);
}

/// Answers `drain` once nothing runs any more.
void check_drained(self_ptr self) {
  auto& st = self->state;
  if (st.drained && st.running.empty()) {
    spdlog::info("receiver: no deployment runs any more");
    st.drained->deliver(true);
    st.drained.reset();
  }
}

/// What the store's answer to `ev` means, acted upon.
void act(self_ptr self, const inbound_event& ev, const accept_result& res) {
  auto& st = self->state;
  auto& ctx = st.ctx;
  if (ev.type == event_kind::deployment) {
    if (res.deployment_id <= 0)
      return;
    if (res.state != deploy_state::queued) {
      // The rules ended it; its status is in the outbox already.
      if (res.state == deploy_state::error)
        spdlog::info("deployment {} of {} to {} refused: {}", res.deployment_id,
                     ev.deployment.repo, ev.deployment.environment,
                     res.description);
      ctx->logs->open(res.deployment_id);
      ctx->logs->append(res.deployment_id, stream::heaven,
                        to_string(res.state) + ": " + res.description);
      ctx->logs->close(res.deployment_id);
      return;
    }
    if (st.draining) {
      spdlog::info("deployment {} of {} to {} stays queued: heaven is "
                   "stopping",
                   res.deployment_id, ev.deployment.repo,
                   ev.deployment.environment);
      return;
    }
    launch(self, res.deployment_id, ev.deployment);
  } else if (ev.type == event_kind::status) {
    if (ctx->auto_deploy)
      self->send(ctx->auto_deploy, status_atom::value, ev.status);
  }
  // A deployment_status event's chat notice was queued by the store, in
  // the transaction that recorded the event: the notice outbox has it.
}

/// Picks up what an earlier run of heaven left: queued deployments run,
/// running ones end with `error`.
void resume(self_ptr self) {
  self->request(self->state.ctx->store, caf::infinite, pending_atom::value)
    .then(
      [=](std::vector<unfinished_deployment>& left) {
        auto& st = self->state;
        st.pending_failures = 0;
        for (auto& d : left) {
          spdlog::info("receiver found deployment {} of {} to {} left {} by "
                       "an earlier run",
                       d.id, d.request.repo, d.request.environment,
                       to_string(d.state));
          if (d.state == deploy_state::running)
            take_over(self->system(), st.ctx, d.id, restarted);
          else if (!st.draining)
            launch(self, d.id, d.request);
        }
      },
      [=](caf::error& err) {
        auto wait = std::chrono::milliseconds(5000);
        spdlog::error("{}",
                      retry_line("receiver reading the unfinished "
                                 "deployments",
                                 self->system().render(err),
                                 ++self->state.pending_failures, 0, wait));
        self->delayed_send(self, wait, pending_atom::value);
      });
}

} // namespace

receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx) {
  self->state.ctx = ctx;
  resume(self);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.running.find(msg.source);
    if (i == st.running.end())
      return;
    auto id = i->second;
    st.running.erase(i);
    if (msg.reason && msg.reason != caf::exit_reason::user_shutdown) {
      auto why = msg.reason.context().match_elements<std::string>()
                   ? msg.reason.context().get_as<std::string>(0)
                   : self->system().render(msg.reason);
      take_over(self->system(), st.ctx, id, why);
    }
    // The last deployment of a burst has ended: give the memory it used
    // back to the system (glibc keeps freed heap otherwise).
    if (st.running.empty())
      malloc_trim(0);
    check_drained(self);
  });
  return {
    [=](event_atom, inbound_event& ev) -> caf::result<event_receipt> {
      auto rp = self->make_response_promise<event_receipt>();
      auto& ctx = self->state.ctx;
      if (ev.type == event_kind::deployment) {
        ev.lock_action = lock_action(ctx->cfg.deploy_prefix,
                                     ev.deployment.task);
        if (ev.lock_action == lock_task::none)
          ev.refusal = refusal(*ctx, ev.deployment).value_or("");
      }
      // What `act` needs afterwards; the body stays with the store.
      inbound_event kept;
      kept.type = ev.type;
      kept.repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
      kept.lock_action = ev.lock_action;
      kept.deployment = ev.deployment;
      kept.status = ev.status;
      self
        ->request(ctx->store, caf::infinite, accept_atom::value, std::move(ev))
        .then(
          [=](accept_result& res) mutable {
            if (res.duplicate) {
              rp.deliver(event_receipt{receipt_kind::redelivery, 0, {}, {}});
              return;
            }
            if (res.ignored) {
              spdlog::info("receiver ignores a {} event of {}: the "
                           "repository is disabled (heaven repos enable {})",
                           to_string(kept.type), kept.repo, kept.repo);
              rp.deliver(event_receipt{receipt_kind::ignored, 0, {}, {}});
              return;
            }
            event_receipt receipt{receipt_kind::accepted, res.deployment_id,
                                  res.state, res.description};
            if (res.deployment_id > 0 && res.state == deploy_state::error)
              receipt.kind = receipt_kind::refused;
            rp.deliver(std::move(receipt));
            act(self, kept, res);
          },
          [=](caf::error& err) mutable {
            auto why = self->system().render(err);
            spdlog::error("receiver could not store a {} event: {}",
                          to_string(kept.type), why);
            rp.deliver(event_receipt{receipt_kind::unstored, 0,
                                     deploy_state::queued, why});
          });
      return rp;
    },
    [=](drain_atom, int64_t seconds) -> caf::result<bool> {
      auto& st = self->state;
      st.draining = true;
      if (st.ctx->health)
        st.ctx->health->set_draining();
      spdlog::info("receiver starts nothing more; {} deployment(s) may "
                   "finish within {} s",
                   st.running.size(), seconds);
      for (auto& [addr, id] : st.running)
        if (auto d = caf::actor_cast<deployment_actor>(addr))
          self->send(d, shelve_atom::value);
      auto rp = self->make_response_promise<bool>();
      st.drained = rp;
      if (st.running.empty()) {
        check_drained(self);
      } else {
        self->delayed_send(self, std::chrono::seconds(seconds),
                           cancel_atom::value);
      }
      return rp;
    },
    [=](pending_atom) { resume(self); },
    [=](cancel_atom) {
      auto& st = self->state;
      if (!st.draining || st.running.empty())
        return;
      spdlog::warn("receiver stops the {} deployment(s) still running",
                   st.running.size());
      for (auto& [addr, id] : st.running)
        if (auto d = caf::actor_cast<deployment_actor>(addr))
          self->send(d, cancel_atom::value,
                     std::string{"heaven was stopped during the deployment"});
    },
  };
}

} // namespace heaven
