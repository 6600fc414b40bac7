#include "actors/ingress_answers.hpp"

#include <chrono>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "actors/ingress_route.hpp"
#include "base/health.hpp"

namespace heaven {

namespace {

/// GitHub gives up on a webhook after 10 s: answer before that.
constexpr auto actor_timeout = std::chrono::seconds(9);

/// Asks `to` with `xs...` from a short-lived actor (the io thread never
/// waits); `render` turns its `Answer` into (status, body); an error or a
/// timeout is 503 naming `who`.
template <class Answer, class Handle, class Render, class... Ts>
void ask(caf::actor_system& sys, Handle to, const char* who, Render render,
         reply_fn reply, Ts... xs) {
  sys.spawn([=](caf::event_based_actor* self) mutable {
    self->request(to, actor_timeout, std::move(xs)...)
      .then(
        [reply, render](Answer& answer) mutable {
          auto [status, body] = render(answer);
          reply(status, std::move(body));
        },
        [reply, self, who](caf::error& err) mutable {
          reply(503, json_error(std::string{who} + " unavailable: "
                                + self->system().render(err)));
        });
  });
}

} // namespace

void answer_event(caf::actor_system& sys, const receiver_actor& receiver,
                  inbound_event ev, reply_fn reply) {
  ask<event_receipt>(
    sys, receiver, "receiver",
    [](event_receipt& receipt) {
      auto r = receipt_answer(receipt);
      return std::make_pair(r.status, std::move(r.body));
    },
    std::move(reply), event_atom::value, std::move(ev));
}

void answer_list(caf::actor_system& sys, const store_actor& store,
                 int32_t limit, reply_fn reply) {
  ask<std::vector<deployment_row>>(
    sys, store, "store",
    [](std::vector<deployment_row>& rows) {
      return std::make_pair(200, deployments_json(rows));
    },
    std::move(reply), list_atom::value, limit);
}

void answer_locks(caf::actor_system& sys, const store_actor& store,
                  reply_fn reply) {
  ask<std::vector<env_lock>>(
    sys, store, "store",
    [](std::vector<env_lock>& locks) {
      return std::make_pair(200, locks_json(locks));
    },
    std::move(reply), locks_atom::value);
}

ingress_reply health_answer(const health_board* health) {
  if (health == nullptr)
    return {200, R"({"status":"ok"})"};
  auto problems = health->problems();
  nlohmann::json body;
  body["status"] = health->draining() ? "draining"
                   : problems.empty() ? "ok"
                                      : "degraded";
  body["problems"] = problems;
  return {problems.empty() && !health->draining() ? 200 : 503,
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

std::string deployments_json(const std::vector<deployment_row>& rows) {
  // Keys sorted (nlohmann::json's objects), as the listing always had them.
  auto result = nlohmann::json::array();
  for (auto& x : rows) {
    nlohmann::json obj = {{"id", x.id},
                          {"github_id", x.github_id},
                          {"repo", x.repo},
                          {"app", x.app},
                          {"environment", x.environment},
                          {"ref", x.ref},
                          {"sha", x.sha},
                          {"task", x.task},
                          {"provider", x.provider},
                          {"actor", x.actor},
                          {"state", to_string(x.state)},
                          {"description", x.description},
                          {"created_at", x.created_at},
                          {"updated_at", x.updated_at},
                          {"finished_at", nullptr}};
    if (!x.finished_at.empty())
      obj["finished_at"] = x.finished_at;
    result.push_back(std::move(obj));
  }
  // A provider's description may hold bytes that are not UTF-8; a listing
  // with a replacement character beats no listing.
  return result.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string locks_json(const std::vector<env_lock>& locks) {
  auto out = nlohmann::ordered_json::array();
  for (auto& l : locks)
    out.push_back({{"repo", l.repo},
                   {"environment", l.environment},
                   {"actor", l.actor},
                   {"reason", l.reason},
                   {"locked_at", l.locked_at},
                   {"deployment_id", l.deployment_id}});
  return out.dump(-1, ' ', false,
                  nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace heaven
