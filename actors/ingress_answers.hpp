/// What the ingress answers once routing has decided (ingress_route.hpp):
/// the actors it asks and how their data becomes HTTP statuses and JSON
/// bodies. No Beast here: the transport (http_ingress.cpp) hands each
/// answer a callback that writes the response.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/http_ingress.hpp"
#include "actors/ingress_auth.hpp"
#include "actors/ingress_route.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class health_board;

/// Writes the answer to the current request; callable from any thread.
using reply_fn = std::function<void(int status, std::string body)>;

/// `POST /events`: hands checked and parsed events to the receiver and
/// answers how each was taken (see receipt_answer; 503 when the receiver is
/// gone). One long-lived actor asks for all of them: an event costs no actor
/// of its own and no timer (the transport answers an event the receiver
/// leaves unanswered too long itself). Events submitted while it is busy
/// reach it together, in one message.
class event_intake {
public:
  /// Runs a function on the transport's thread, unless the transport has
  /// stopped; callable from any thread.
  using post_fn = std::function<void(std::function<void()>)>;

  event_intake(caf::actor_system& sys, receiver_actor receiver, post_fn post);
  /// Ends the actor; answers still on their way are dropped.
  ~event_intake();
  event_intake(const event_intake&) = delete;
  event_intake& operator=(const event_intake&) = delete;

  /// Hands `ev` on; `reply` is called once with its answer, on the
  /// transport's thread (the answers of one batch all in one `post`).
  /// Callable from any thread.
  void submit(inbound_event ev, reply_fn reply);

  struct queue;

private:
  std::shared_ptr<queue> queue_;
  caf::actor actor_;
};

/// `GET /deployments`: the store's newest `limit` deployments as JSON.
void answer_list(caf::actor_system& sys, const store_actor& store,
                 int32_t limit, reply_fn reply);

/// `GET /locks` (its token checked): the store's environment locks as JSON.
void answer_locks(caf::actor_system& sys, const store_actor& store,
                  reply_fn reply);

/// `GET /healthz`: 200 "ok"; 503 "draining" while heaven stops, or
/// "degraded" with the problems it knows of (a store that cannot write).
/// Always ok without a board.
ingress_reply health_answer(const health_board* health);

/// Sign-in with GitHub as the ingress runs it.
struct sign_in_setup {
  sign_in_options options;
  std::shared_ptr<session_table> sessions;
  /// Asked for the code exchange, the user and the membership.
  http_client_actor http;
};

/// What routing needs of `opts` (views of its strings; a session cookie is
/// checked against `opts.sign_in`'s sessions).
route_options routing_of(const ingress_options& opts);

/// Writes an answer with headers (`Set-Cookie` may come twice); callable
/// from any thread.
using header_reply_fn
  = std::function<void(int status, std::string body, string_pairs headers)>;

/// Answers the sign-in routes (route_decision::kind::sign_in, callback,
/// sign_out). `GET /auth/github`: 302 to GitHub with a fresh state, also
/// set as a cookie. The callback: the code exchanged, the user read, the
/// membership checked, each from a short-lived actor (the io thread never
/// waits); a member gets a session cookie and 302 to `/`; anyone else 403
/// and no session (502 when GitHub cannot be reached). The GitHub token is
/// forgotten once the membership is known. `POST /auth/signout`: the session
/// ended, its cookie cleared, 303 to `/`.
void answer_sign_in(caf::actor_system& sys, const sign_in_setup& setup,
                    route_decision r, header_reply_fn reply);

/// The deployments as the JSON array `GET /deployments` answers: one
/// object per deployment, keys in alphabetical order, `finished_at` null
/// while it has not ended (invalid UTF-8 replaced).
std::string deployments_json(const std::vector<deployment_row>& rows);

/// The environment locks as the JSON array `GET /locks` answers, each
/// lock's fields in a fixed order.
std::string locks_json(const std::vector<env_lock>& locks);

} // namespace heaven
