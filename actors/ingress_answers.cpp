#include "actors/ingress_answers.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

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

/// Events submitted and not yet taken by the intake actor.
struct event_intake::queue {
  std::mutex mtx;
  std::vector<inbound_event> events;
  std::vector<reply_fn> replies; // One per event.
  /// Batches waiting for the receiver's answer. At most `max_in_flight`:
  /// the events submitted meanwhile wait for an answer (and send no tick).
  int in_flight = 0;
  /// The size of the last batch taken, so that the vectors the next one
  /// fills are allocated once, not grown event by event. Only the intake
  /// actor touches it.
  std::size_t batch_hint = 16;
  /// How answers reach the transport's thread.
  event_intake::post_fn post;
};

namespace {

/// Batches on their way at once: one in the store's commit and the next
/// ready for the commit after it.
constexpr int max_in_flight = 2;

/// Hands everything queued to the receiver in one message, unless
/// `max_in_flight` batches are on their way already: then the events wait
/// for an answer and go together in the next one. So the batches grow with
/// the load (about one store commit's worth), and a burst costs one message
/// each way per commit, not one per event.
void send_batch(caf::event_based_actor* self,
                const std::shared_ptr<event_intake::queue>& q,
                const receiver_actor& receiver, bool answered = false) {
  std::vector<inbound_event> events;
  auto replies = std::make_shared<std::vector<reply_fn>>();
  // What the submitters fill next, allocated outside the lock.
  std::vector<inbound_event> next_events;
  std::vector<reply_fn> next_replies;
  next_events.reserve(q->batch_hint);
  next_replies.reserve(q->batch_hint);
  {
    std::lock_guard<std::mutex> guard{q->mtx};
    if (answered)
      --q->in_flight;
    if (q->in_flight >= max_in_flight || q->events.empty())
      return;
    ++q->in_flight;
    events = std::exchange(q->events, std::move(next_events));
    *replies = std::exchange(q->replies, std::move(next_replies));
  }
  q->batch_hint = std::max<std::size_t>(16, events.size());
  self->request(receiver, caf::infinite, event_atom::value, std::move(events))
    .then(
      [=](std::vector<event_receipt>& receipts) {
        auto answers = std::make_shared<std::vector<ingress_reply>>();
        answers->reserve(replies->size());
        for (std::size_t i = 0; i < replies->size(); ++i)
          answers->push_back(
            i < receipts.size()
              ? receipt_answer(receipts[i])
              : ingress_reply{503, json_error("receiver unavailable: it "
                                              "answered too few events")});
        q->post([replies, answers] {
          for (std::size_t i = 0; i < replies->size(); ++i)
            (*replies)[i]((*answers)[i].status, std::move((*answers)[i].body));
        });
        send_batch(self, q, receiver, true);
      },
      [=](caf::error& err) {
        auto body = json_error("receiver unavailable: "
                               + self->system().render(err));
        q->post([replies, body] {
          for (auto& reply : *replies)
            reply(503, body);
        });
        send_batch(self, q, receiver, true);
      });
}

caf::behavior intake(caf::event_based_actor* self,
                     std::shared_ptr<event_intake::queue> q,
                     receiver_actor receiver) {
  return {
    [=](tick_atom) { send_batch(self, q, receiver); },
  };
}

} // namespace

event_intake::event_intake(caf::actor_system& sys, receiver_actor receiver,
                           post_fn post)
  : queue_(std::make_shared<queue>()) {
  queue_->post = std::move(post);
  actor_ = sys.spawn(intake, queue_, std::move(receiver));
}

event_intake::~event_intake() {
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

void event_intake::submit(inbound_event ev, reply_fn reply) {
  bool first = false;
  {
    std::lock_guard<std::mutex> guard{queue_->mtx};
    first = queue_->events.empty() && queue_->in_flight < max_in_flight;
    queue_->events.push_back(std::move(ev));
    queue_->replies.push_back(std::move(reply));
  }
  // The events pushed after this tick and before the actor took them ride
  // along; while a batch is on its way, its answer takes the next one.
  if (first)
    caf::anon_send(actor_, tick_atom::value);
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
  // Which database, and whether the store reaches it (a lost one is among
  // the problems too, so the answer is 503).
  if (auto kind = health->database(); !kind.empty())
    body["database"] = {{"kind", kind},
                        {"reachable", !health->failing("database")}};
  return {problems.empty() && !health->draining() ? 200 : 503,
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

namespace {

/// How long each of GitHub's answers may take.
constexpr auto github_timeout = std::chrono::seconds(15);

/// The callback's three questions to GitHub, one after the other.
void sign_in_flow(caf::event_based_actor* self, sign_in_setup setup,
                  std::string code, header_reply_fn reply) {
  auto& o = setup.options;
  auto refused = [reply](std::string why) { reply(403, json_error(why), {}); };
  auto unreachable = [reply, self](caf::error& err) {
    spdlog::warn("sign-in: GitHub could not be asked: {}",
                 self->system().render(err));
    reply(502, json_error("GitHub could not be asked"), {});
  };
  self->request(setup.http, github_timeout, token_request(o, code))
    .then(
      [=](http_response& res) {
        auto token = access_token_of(res);
        if (!token) {
          spdlog::info("sign-in: GitHub did not exchange the code ({})",
                       res.status);
          return refused("GitHub did not sign you in");
        }
        self->request(setup.http, github_timeout, user_request(o, *token))
          .then(
            [=](http_response& res) {
              auto login = login_of(res);
              if (!login)
                return refused("GitHub did not say who you are");
              self
                ->request(setup.http, github_timeout,
                          membership_request(o, *login, *token))
                .then(
                  [=](http_response& res) {
                    auto team = o.team_id.empty() ? "organisation " + o.org
                                                  : "team " + o.team_id;
                    if (!is_member(o, res)) {
                      spdlog::warn("sign-in: {} is not a member of {} ({})",
                                   *login, team, res.status);
                      return refused("not a member of the " + team);
                    }
                    auto secure = secure_cookies(o);
                    auto id = setup.sessions->open(*login,
                                                   session_table::clock::now());
                    spdlog::info("sign-in: {} signed in", *login);
                    reply(
                      302, "{}",
                      {{"Location", "/"},
                       {"Set-Cookie",
                        session_cookie(id, setup.sessions->ttl(), secure)},
                       {"Set-Cookie", cleared_cookie(state_cookie_name,
                                                     "/auth/github", secure)}});
                  },
                  unreachable);
            },
            unreachable);
      },
      unreachable);
}

} // namespace

route_options routing_of(const ingress_options& opts) {
  route_options ro;
  ro.secret = opts.secret;
  ro.insecure = opts.insecure;
  ro.log_key = opts.log_key;
  ro.has_logs = opts.logs != nullptr;
  ro.api_token = opts.api_token;
  ro.metrics_only = opts.metrics_only;
  ro.installation_seen = opts.installation_seen;
  if (auto s = opts.sign_in) {
    ro.github_sign_in = true;
    ro.session_login = [s](std::string_view id) {
      return s->sessions->login_of(id, session_table::clock::now());
    };
  }
  return ro;
}

void answer_sign_in(caf::actor_system& sys, const sign_in_setup& setup,
                    route_decision r, header_reply_fn reply) {
  auto& o = setup.options;
  auto secure = secure_cookies(o);
  switch (r.what) {
    case route_decision::kind::sign_in: {
      auto state = random_hex(32);
      return reply(302, "{}",
                   {{"Location", authorize_location(o, state)},
                    {"Set-Cookie", state_cookie(state, secure)}});
    }
    case route_decision::kind::sign_out:
      if (!r.session.empty())
        setup.sessions->close(r.session);
      return reply(
        303, "{}",
        {{"Location", "/"},
         {"Set-Cookie", cleared_cookie(session_cookie_name, "/", secure)}});
    case route_decision::kind::callback:
      sys.spawn(sign_in_flow, setup, std::move(r.code), std::move(reply));
      return;
    default:
      return reply(404, json_error("not found"), {});
  }
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
