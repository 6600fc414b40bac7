#include "actors/receiver.hpp"

#include <algorithm>
#include <optional>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/deployment.hpp"
#include "base/health.hpp"
#include "base/lifecycle.hpp"
#include "base/log_format.hpp"
#include "base/memory.hpp"
#include "base/metrics.hpp"
#include "base/retry.hpp"

namespace heaven {

namespace {

using self_ptr = receiver_actor::stateful_pointer<receiver_state>;

/// The description a deployment left running by a stopped or killed heaven
/// ends with.
constexpr auto restarted
  = "heaven restarted during this deployment; its outcome is unknown: "
    "deploy again";

/// The app and environment of `r`: one deployment of it runs at a time.
std::string place(const deployment_request& r) {
  return r.app + "\n" + r.environment;
}

/// Deployment `id` runs or waits next in `place`.
void hold(receiver_state& st, int64_t id, const std::string& p) {
  if (st.place_of.emplace(id, p).second)
    ++st.in_use[p];
}

/// Deployment `id` runs or waits next no more: the place it freed, if it
/// did.
std::optional<std::string> drop(receiver_state& st, int64_t id) {
  auto i = st.place_of.find(id);
  if (i == st.place_of.end())
    return std::nullopt;
  auto p = std::move(i->second);
  st.place_of.erase(i);
  auto j = st.in_use.find(p);
  if (j == st.in_use.end() || --j->second > 0)
    return std::nullopt;
  st.in_use.erase(j);
  return p;
}

/// True when a deployment of `p` runs, waits next or waits behind.
bool occupied(const receiver_state& st, const std::string& p) {
  return st.in_use.count(p) > 0 || st.behind.count(p) > 0;
}

/// Queued deployment `id` of `p` waits behind the one there.
void wait_behind(receiver_state& st, int64_t id, const std::string& p) {
  st.behind[p].insert(id);
  st.behind_ids.insert(id);
}

/// Runs queued deployment `id`, watched until it ends.
void launch(self_ptr self, int64_t id, const deployment_request& req) {
  auto& st = self->state;
  hold(st, id, place(req));
  auto d = self->spawn(deployment, st.ctx, id, req);
  self->monitor(d);
  st.running.emplace(d.address(), id);
  st.running_ids.insert(id);
  st.queued_ids.erase(id);
  metrics::deployments_running().set(static_cast<double>(st.running.size()));
  metrics::deployments_waiting().set(static_cast<double>(st.queued_ids.size()));
}

/// Deployment `id` waits for its turn.
void waits(receiver_state& st, int64_t id) {
  st.queued_ids.insert(id);
  metrics::deployments_waiting().set(static_cast<double>(st.queued_ids.size()));
}

/// How many deployments run at once, and how many waiting ones are kept in
/// memory.
size_t max_running(const receiver_state& st) {
  return static_cast<size_t>(std::max<int64_t>(1, st.ctx->cfg.max_running));
}

/// True when deployment `id` runs or waits in memory (next, or behind
/// another of its app+environment).
bool held(const receiver_state& st, int64_t id) {
  return st.running_ids.count(id) > 0 || st.waiting.count(id) > 0
         || st.behind_ids.count(id) > 0 || st.place_of.count(id) > 0;
}

/// Queued deployment `id` runs now when it may, else waits its turn: in
/// memory while few wait, else as its row only.
void offer(self_ptr self, int64_t id, deployment_request req) {
  auto& st = self->state;
  if (held(st, id))
    return;
  auto p = place(req);
  if (occupied(st, p)) {
    waits(st, id);
    wait_behind(st, id, p);
    return;
  }
  auto max = max_running(st);
  if (!st.spilled && st.waiting.empty() && st.running.size() < max) {
    launch(self, id, req);
    return;
  }
  waits(st, id);
  if (!st.spilled && st.waiting.size() < max) {
    hold(st, id, p);
    st.waiting.emplace(id, std::move(req));
    return;
  }
  if (!st.spilled) {
    spdlog::info("receiver: {} deployment(s) run and {} wait (at most "
                 "HEAVEN_MAX_RUNNING = {} of each in memory); those after "
                 "deployment {} wait as queued rows",
                 st.running.size(), st.waiting.size(), max, id - 1);
    st.spilled = true;
    st.store_after = id - 1;
  } else {
    st.store_after = std::min(st.store_after, id - 1);
  }
  if (st.reading
      && (st.spilled_while_reading == 0 || id < st.spilled_while_reading))
    st.spilled_while_reading = id;
}

void advance(self_ptr self);

/// Ends deployment `id` of `p` through take_over; `p` stays in use until
/// that end is recorded.
void bury(self_ptr self, int64_t id, const std::string& p,
          const std::string& why) {
  auto& st = self->state;
  hold(st, id, p);
  auto u = take_over(self->system(), st.ctx, id, why);
  self->monitor(u);
  st.undertakers.emplace(u, id);
}

/// One instance: the oldest deployment behind in `p`, which nothing runs
/// any more, is read back from the store and waits next (unless it ended
/// meanwhile: superseded; then the one after it).
void release(self_ptr self, const std::string& p) {
  auto& st = self->state;
  if (st.draining || st.ctx->shared)
    return;
  auto i = st.behind.find(p);
  if (i == st.behind.end() || st.in_use.count(p) > 0)
    return;
  auto id = *i->second.begin();
  i->second.erase(i->second.begin());
  if (i->second.empty())
    st.behind.erase(i);
  st.behind_ids.erase(id);
  hold(st, id, p); // Reserved while it is read back.
  self
    ->request(st.ctx->store, caf::infinite, pending_atom::value, id - 1,
              int32_t{1})
    .then(
      [=](std::vector<unfinished_deployment>& rows) {
        auto& st = self->state;
        if (!rows.empty() && rows.front().id == id
            && rows.front().state == deploy_state::queued && !st.draining) {
          st.waiting.emplace(id, std::move(rows.front().request));
          advance(self);
          return;
        }
        // It ended while it waited (superseded), or heaven stops.
        st.queued_ids.erase(id);
        metrics::deployments_waiting().set(
          static_cast<double>(st.queued_ids.size()));
        if (auto freed = drop(st, id))
          release(self, *freed);
      },
      [=](caf::error& err) {
        auto& st = self->state;
        spdlog::error("receiver could not read back deployment {}, next "
                      "in line: {}; tried again in 5 s",
                      id, self->system().render(err));
        drop(st, id);
        wait_behind(st, id, p);
        st.release_retry = true;
        self->delayed_send(self, std::chrono::seconds(5), pending_atom::value);
      });
}

/// Deployment `id` of `p`, which waited, was superseded in the store: it
/// waits no more, and is counted so at once. One being read back (its
/// place reserved, not waiting yet) is dropped when its row shows it ended;
/// one waiting as its row only is never read.
void forget_superseded(self_ptr self, int64_t id, const std::string& p) {
  auto& st = self->state;
  st.queued_ids.erase(id);
  metrics::deployments_waiting().set(static_cast<double>(st.queued_ids.size()));
  if (auto b = st.behind.find(p);
      b != st.behind.end() && b->second.erase(id) > 0) {
    if (b->second.empty())
      st.behind.erase(b);
    st.behind_ids.erase(id);
  } else if (st.waiting.erase(id) > 0) {
    if (auto freed = drop(st, id))
      release(self, *freed);
  }
}

/// Reads the next page of deployments waiting in the store only.
void read_waiting(self_ptr self) {
  auto& st = self->state;
  st.reading = true;
  st.spilled_while_reading = 0;
  auto limit = static_cast<int32_t>(
    std::min<size_t>(max_running(st) - st.waiting.size(), 100000));
  auto after = st.store_after;
  self->request(st.ctx->store, caf::infinite, pending_atom::value, after, limit)
    .then(
      [=](std::vector<unfinished_deployment>& rows) {
        auto& st = self->state;
        st.reading = false;
        st.read_failures = 0;
        bool exhausted = rows.size() < static_cast<size_t>(limit);
        auto last = after;
        for (auto& d : rows) {
          last = std::max(last, d.id);
          // A running one runs here, or is ended by `resume`.
          if (d.state != deploy_state::queued || held(st, d.id))
            continue;
          auto p = place(d.request);
          if (occupied(st, p)) {
            wait_behind(st, d.id, p);
          } else {
            hold(st, d.id, p);
            st.waiting.emplace(d.id, std::move(d.request));
          }
        }
        st.store_after = std::max(st.store_after, last);
        if (st.spilled_while_reading != 0)
          st.store_after = std::min(st.store_after,
                                    st.spilled_while_reading - 1);
        else if (exhausted)
          st.spilled = false;
        advance(self);
      },
      [=](caf::error& err) {
        auto& st = self->state;
        auto wait = std::chrono::milliseconds(5000);
        spdlog::error("{}", retry_line("receiver reading the queued "
                                       "deployments",
                                       self->system().render(err),
                                       ++st.read_failures, 0, wait));
        st.reading = false;
        st.read_retry = true;
        self->delayed_send(self, wait, pending_atom::value);
      });
}

/// Several instances: claims queued deployments from the store while fewer
/// than HEAVEN_MAX_RUNNING run here, and runs them.
void claim_more(self_ptr self) {
  auto& st = self->state;
  if (st.draining)
    return;
  if (st.claiming) {
    st.claim_again = true;
    return;
  }
  auto max = max_running(st);
  if (st.running.size() >= max)
    return;
  auto limit = static_cast<int32_t>(
    std::min<size_t>(max - st.running.size(), 1000));
  st.claiming = true;
  st.claim_again = false;
  self->request(st.ctx->store, caf::infinite, claim_atom::value, limit)
    .then(
      [=](std::vector<unfinished_deployment>& got) {
        auto& st = self->state;
        st.claiming = false;
        for (auto& d : got) {
          log_context about{d.id, d.request.repo, d.request.environment};
          log_scope in{about};
          spdlog::info("receiver claimed deployment {} of {} to {}", d.id,
                       d.request.repo, d.request.environment);
          if (!held(st, d.id))
            launch(self, d.id, d.request);
        }
        if (st.claim_again || got.size() == static_cast<size_t>(limit))
          claim_more(self);
      },
      [=](caf::error& err) {
        auto& st = self->state;
        st.claiming = false;
        // The lease's next tick wakes the receiver again.
        spdlog::error("receiver could not claim queued deployments: {}",
                      self->system().render(err));
      });
}

/// Starts waiting deployments, in order, while fewer than
/// HEAVEN_MAX_RUNNING run; reads the next ones from the store when only
/// rows are left.
void advance(self_ptr self) {
  auto& st = self->state;
  if (st.draining)
    return;
  if (st.ctx->shared) {
    claim_more(self);
    return;
  }
  auto max = max_running(st);
  while (st.running.size() < max && !st.waiting.empty()) {
    auto i = st.waiting.begin();
    auto id = i->first;
    auto req = std::move(i->second);
    st.waiting.erase(i);
    launch(self, id, req);
  }
  if (st.spilled && !st.reading && !st.read_retry && st.waiting.size() < max)
    read_waiting(self);
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
    // heaven's lines about it carry its id, repository and environment.
    log_context about{res.deployment_id, ev.deployment.repo,
                      ev.deployment.environment};
    log_scope in{about};
    for (auto ended : res.superseded)
      forget_superseded(self, ended, place(ev.deployment));
    if (res.state != deploy_state::queued) {
      // The rules ended it; its status is in the outbox already. It never
      // runs, so it gets no log file: its log is the one line of its end,
      // made from its row when read (see unstarted_log). Creating two files
      // for it here cost more than the rest of its intake.
      if (res.state == deploy_state::error)
        spdlog::info("deployment {} of {} to {} refused: {}", res.deployment_id,
                     ev.deployment.repo, ev.deployment.environment,
                     res.description);
      return;
    }
    if (st.draining) {
      spdlog::info("deployment {} of {} to {} stays queued: heaven is "
                   "stopping",
                   res.deployment_id, ev.deployment.repo,
                   ev.deployment.environment);
      return;
    }
    if (st.ctx->shared)
      claim_more(self); // The oldest claimable, not necessarily this one.
    else
      offer(self, res.deployment_id, ev.deployment);
  } else if (ev.type == event_kind::status) {
    if (ctx->auto_deploy)
      self->send(ctx->auto_deploy, status_atom::value, ev.status);
  }
  // A deployment_status event's chat notice was queued by the store, in
  // the transaction that recorded the event: the notice outbox has it.
}

/// Picks up what an earlier run of heaven left, a page at a time: running
/// ones end with `error`; queued ones run in their turn (see advance).
void resume(self_ptr self) {
  auto& st = self->state;
  if (!st.resuming || st.resume_reading)
    return;
  st.resume_reading = true;
  constexpr int32_t page = 256;
  self
    ->request(st.ctx->store, caf::infinite, pending_atom::value,
              st.resume_after, page)
    .then(
      [=](std::vector<unfinished_deployment>& left) {
        auto& st = self->state;
        st.resume_reading = false;
        st.pending_failures = 0;
        for (auto& d : left) {
          st.resume_after = std::max(st.resume_after, d.id);
          // One this run started already is no leftover.
          if (held(st, d.id))
            continue;
          log_context about{d.id, d.request.repo, d.request.environment};
          log_scope in{about};
          spdlog::info("receiver found deployment {} of {} to {} left {} by "
                       "an earlier run",
                       d.id, d.request.repo, d.request.environment,
                       to_string(d.state));
          if (d.state == deploy_state::running)
            bury(self, d.id, place(d.request), restarted);
          else if (!st.draining)
            waits(st, d.id);
        }
        if (left.size() < static_cast<size_t>(page))
          st.resuming = false;
        else
          resume(self);
      },
      [=](caf::error& err) {
        auto& st = self->state;
        st.resume_reading = false;
        auto wait = std::chrono::milliseconds(5000);
        spdlog::error("{}", retry_line("receiver reading the unfinished "
                                       "deployments",
                                       self->system().render(err),
                                       ++st.pending_failures, 0, wait));
        self->delayed_send(self, wait, pending_atom::value);
      });
}

/// Applies the receiver's rules that go into the store's transaction to
/// `ev` (a deployment's lock action and refusal) and returns what `act`
/// needs of it afterwards; the body stays with the store.
inbound_event prepare(const deployment_context& ctx, inbound_event& ev) {
  if (ev.type == event_kind::deployment) {
    ev.lock_action = lock_action(ctx.cfg.deploy_prefix, ev.deployment.task);
    if (ev.lock_action == lock_task::none)
      ev.refusal = refusal(ctx, ev.deployment).value_or("");
  }
  inbound_event kept;
  kept.type = ev.type;
  kept.repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
  kept.lock_action = ev.lock_action;
  kept.deployment = ev.deployment;
  kept.status = ev.status;
  return kept;
}

/// How the event `kept` was taken, as the store's `res` says.
event_receipt receipt_of(const inbound_event& kept, const accept_result& res) {
  if (res.duplicate)
    return {receipt_kind::redelivery, 0, {}, {}};
  if (res.ignored) {
    spdlog::info("receiver ignores a {} event of {}: the repository is "
                 "disabled (heaven repos enable {})",
                 to_string(kept.type), kept.repo, kept.repo);
    return {receipt_kind::ignored, 0, {}, {}};
  }
  event_receipt receipt{receipt_kind::accepted, res.deployment_id, res.state,
                        res.description};
  if (res.deployment_id > 0 && res.state == deploy_state::error)
    receipt.kind = receipt_kind::refused;
  return receipt;
}

/// The receipt of an event the store could not record, and its log line.
event_receipt unstored(const inbound_event& kept, const std::string& why) {
  spdlog::error("receiver could not store a {} event: {}", to_string(kept.type),
                why);
  return {receipt_kind::unstored, 0, deploy_state::queued, why};
}

} // namespace

receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx) {
  self->state.ctx = ctx;
  if (ctx->shared)
    self->state.resuming = false; // The leases take care of leftovers.
  else
    resume(self);
  advance(self);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.running.find(msg.source);
    if (i == st.running.end()) {
      auto u = st.undertakers.find(msg.source);
      if (u == st.undertakers.end())
        return;
      // A deployment's end is recorded: the next of its app+environment.
      auto id = u->second;
      st.undertakers.erase(u);
      if (auto freed = drop(st, id))
        release(self, *freed);
      advance(self);
      return;
    }
    auto id = i->second;
    st.running.erase(i);
    st.running_ids.erase(id);
    std::optional<std::string> freed;
    metrics::deployments_running().set(static_cast<double>(st.running.size()));
    if (msg.reason && msg.reason != caf::exit_reason::user_shutdown) {
      auto why = msg.reason.context().match_elements<std::string>()
                   ? msg.reason.context().get_as<std::string>(0)
                   : self->system().render(msg.reason);
      auto p = st.place_of.count(id) > 0 ? st.place_of[id] : std::string{};
      bury(self, id, p, why);
    } else {
      freed = drop(st, id);
    }
    // The last deployment of a burst has ended: give the memory it used
    // back to the system (the allocator keeps freed heap otherwise).
    if (st.running.empty())
      give_back_free_memory();
    if (freed)
      release(self, *freed);
    advance(self);
    check_drained(self);
  });
  return {
    [=](event_atom, inbound_event& ev) -> caf::result<event_receipt> {
      auto rp = self->make_response_promise<event_receipt>();
      auto kept = prepare(*self->state.ctx, ev);
      self
        ->request(self->state.ctx->store, caf::infinite, accept_atom::value,
                  std::move(ev))
        .then(
          [=](accept_result& res) mutable {
            rp.deliver(receipt_of(kept, res));
            act(self, kept, res);
          },
          [=](caf::error& err) mutable {
            rp.deliver(unstored(kept, self->system().render(err)));
          });
      return rp;
    },
    [=](event_atom, std::vector<inbound_event>& evs)
      -> caf::result<std::vector<event_receipt>> {
      auto rp = self->make_response_promise<std::vector<event_receipt>>();
      auto kept = std::make_shared<std::vector<inbound_event>>();
      kept->reserve(evs.size());
      for (auto& ev : evs)
        kept->push_back(prepare(*self->state.ctx, ev));
      self
        ->request(self->state.ctx->store, caf::infinite, accept_atom::value,
                  std::move(evs))
        .then(
          [=](std::vector<accept_result>& res) mutable {
            std::vector<event_receipt> receipts;
            receipts.reserve(kept->size());
            for (std::size_t i = 0; i < kept->size(); ++i)
              receipts.push_back(
                i >= res.size()
                  ? unstored((*kept)[i], "the store answered too few events")
                : !res[i].unstored.empty()
                  ? unstored((*kept)[i], res[i].unstored)
                  : receipt_of((*kept)[i], res[i]));
            rp.deliver(std::move(receipts));
            for (std::size_t i = 0; i < kept->size() && i < res.size(); ++i)
              if (res[i].unstored.empty())
                act(self, (*kept)[i], res[i]);
          },
          [=](caf::error& err) mutable {
            auto why = self->system().render(err);
            std::vector<event_receipt> receipts;
            for (auto& k : *kept)
              receipts.push_back(unstored(k, why));
            rp.deliver(std::move(receipts));
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
      // Those waiting stay queued for the next start.
      for (auto& w : st.waiting)
        drop(st, w.first);
      st.waiting.clear();
      st.behind.clear();
      st.behind_ids.clear();
      st.queued_ids.clear();
      metrics::deployments_waiting().set(0);
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
    [=](pending_atom) {
      // A read failed earlier: try again.
      resume(self);
      auto& st = self->state;
      if (st.read_retry) {
        st.read_retry = false;
        advance(self);
      }
      if (st.release_retry) {
        st.release_retry = false;
        std::vector<std::string> free;
        for (auto& [p, ids] : st.behind)
          if (st.in_use.count(p) == 0)
            free.push_back(p);
        for (auto& p : free)
          release(self, p);
      }
    },
    [=](wake_atom) {
      if (self->state.ctx->shared)
        claim_more(self);
    },
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
