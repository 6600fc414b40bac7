/// What the ingress answers once routing has decided (ingress_route.hpp):
/// the actors it asks and how their data becomes HTTP statuses and JSON
/// bodies. No Beast here: the transport (http_ingress.cpp) hands each
/// answer a callback that writes the response.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/ingress_route.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class health_board;

/// Writes the answer to the current request; callable from any thread.
using reply_fn = std::function<void(int status, std::string body)>;

/// `POST /events`: hands the checked and parsed event to the receiver and
/// answers how it was taken (see receipt_answer; 503 when the receiver does
/// not answer in time).
void answer_event(caf::actor_system& sys, const receiver_actor& receiver,
                  inbound_event ev, reply_fn reply);

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

/// The deployments as the JSON array `GET /deployments` answers: one
/// object per deployment, keys in alphabetical order, `finished_at` null
/// while it has not ended (invalid UTF-8 replaced).
std::string deployments_json(const std::vector<deployment_row>& rows);

/// The environment locks as the JSON array `GET /locks` answers, each
/// lock's fields in a fixed order.
std::string locks_json(const std::vector<env_lock>& locks);

} // namespace heaven
