#include "actors/receiver.hpp"

#include <malloc.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/deployment.hpp"

namespace heaven {

namespace {

using self_ptr = receiver_actor::stateful_pointer<receiver_state>;

/// Spawns the deployment actor for `req`, applying the concurrency rule.
void launch(self_ptr self, int64_t id, const deployment_request& req,
            std::string rejection = {}) {
  auto& st = self->state;
  auto key = deployment_key(req);
  if (rejection.empty() && st.running.count(key) > 0)
    rejection = "Already deploying.";
  bool holds = rejection.empty();
  auto d = self->spawn(deployment, st.ctx, id, req, receiver_actor{self},
                       holds ? key : std::string{}, std::move(rejection));
  if (holds) {
    // Also watched: a deployment that dies without saying `done` must not
    // hold its app+environment until heaven restarts.
    self->monitor(d);
    st.running.emplace(key, d);
  }
}

} // namespace

receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx) {
  self->state.ctx = ctx;
  self->request(ctx->store, caf::infinite, pending_atom::value)
    .then(
      [=](std::vector<unfinished_deployment>& left) {
        for (auto& d : left) {
          spdlog::info("receiver found deployment {} of {} to {} left {} by "
                       "an earlier run",
                       d.id, d.request.repo, d.request.environment, d.state);
          if (d.state == "running")
            launch(self, d.id, d.request,
                   "heaven restarted during this deployment; its outcome is "
                   "unknown: deploy again");
          else
            launch(self, d.id, d.request);
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
      auto req = ev.deployment;
      auto type = ev.type;
      self->request(self->state.ctx->store, caf::infinite, accept_atom::value,
                    std::move(ev))
        .then(
          [=](accept_result& res) mutable {
            if (res.duplicate) {
              rp.deliver(ingress_reply{200, R"({"status":"duplicate"})"});
              return;
            }
            rp.deliver(ingress_reply{201, "{}"});
            if (type == "deployment" && res.deployment_id > 0)
              launch(self, res.deployment_id, req);
          },
          [=](caf::error& err) mutable {
            spdlog::error("receiver could not store a {} event: {}", type,
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
