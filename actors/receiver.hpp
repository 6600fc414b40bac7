/// The RECEIVER actor: has the store record and judge every event, and
/// runs the deployments that may run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <caf/response_promise.hpp>

#include "actors/deployment_context.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// State of the RECEIVER actor.
struct receiver_state {
  static inline const char* name = "receiver";
  context_ptr ctx;
  /// Deployment actors alive, with heaven's id of their deployment: at most
  /// HEAVEN_MAX_RUNNING.
  std::map<caf::actor_addr, int64_t> running;
  /// The ids in `running`.
  std::set<int64_t> running_ids;
  /// Queued deployments next in line, by id, with their requests: at most
  /// HEAVEN_MAX_RUNNING. The others wait as rows in the store only.
  std::map<int64_t, deployment_request> waiting;
  /// Set while queued deployments may wait in the store only: those whose
  /// id is above `store_after`, read a page at a time as `waiting` empties.
  bool spilled = true;
  int64_t store_after = 0;
  /// A page of waiting deployments is being read.
  bool reading = false;
  /// The lowest id that went to the store only while that read was under
  /// way (0: none): the read may have missed it.
  int64_t spilled_while_reading = 0;
  /// Failed reads of waiting deployments in a row.
  int read_failures = 0;
  /// Set while a failed read waits to be tried again.
  bool read_retry = false;
  /// Set until the deployments an earlier run left running have been read
  /// (a page at a time, from `resume_after` on) and ended.
  bool resuming = true;
  bool resume_reading = false;
  int64_t resume_after = 0;
  /// Set once heaven stops: nothing more starts.
  bool draining = false;
  /// Answered once no deployment actor is left after `drain`.
  std::optional<caf::typed_response_promise<bool>> drained;
  /// Failed attempts in a row to read the unfinished deployments.
  int pending_failures = 0;
  /// The ids of the queued deployments known to wait for their turn, in
  /// memory or as rows (heaven_deployments_waiting).
  std::set<int64_t> queued_ids;
  /// Several instances: a claim is under way, and another one was asked
  /// for meanwhile.
  bool claiming = false;
  bool claim_again = false;
  /// Queued deployments (base/queueing.hpp): the app+environment of each
  /// deployment in `running` or `waiting` (or being read back to run next),
  /// and how many of those each app+environment has (one, but for a
  /// deployment that ends before its start on several instances).
  std::map<int64_t, std::string> place_of;
  std::map<std::string, int> in_use;
  /// One instance: the queued deployments whose app+environment is in use
  /// here, by app+environment, oldest first (ids only: a request is read
  /// back from the store when its turn comes), and all their ids.
  std::map<std::string, std::set<int64_t>> behind;
  std::set<int64_t> behind_ids;
  /// Set while reading back the next deployment behind failed: tried again
  /// on `pending`.
  bool release_retry = false;
  /// The actors recording the end of a deployment left running by an
  /// earlier run, or whose actor died (see take_over), with its id: its
  /// app+environment stays in use until they are done.
  std::map<caf::actor_addr, int64_t> undertakers;
};

/// The RECEIVER actor. Every event goes to the store, which records it and
/// decides the rules in one transaction (a disabled repository's events are
/// ignored; lock and unlock tasks; a locked environment; one
/// deployment per app+environment; the refusals the receiver found: an
/// unknown provider, an invalid ref, task, sha or clone URL); only then is
/// the webhook answered, with an `event_receipt` saying how the event was
/// taken. A deployment recorded as queued gets a deployment actor once
/// fewer than HEAVEN_MAX_RUNNING run, in the order the store accepted them
/// (ids ascending); until then it waits, queued: in memory while few wait,
/// else as its row only, read back a page at a time. One the rules ended
/// gets only its log line (its status is in the outbox). `status` events go to
/// auto_deploy, `deployment_status` events to notify. At start it asks the
/// store for deployments an earlier run left unfinished: those never started
/// wait their turn as any queued one does; those that were running end with
/// `error`, since nobody knows how far they got. A deployment actor that dies
/// without recording its end (a bug threw in it) is ended by `take_over`.
///
/// One deployment of an app and environment runs at a time: a queued one
/// (see base/queueing.hpp) whose app+environment is in use here waits in
/// `behind` and is read back from the store (it may have been superseded
/// meanwhile) once the one before it has ended, oldest first; one that
/// reads back from the store is held back the same way. Nothing more
/// starts once heaven is stopping.
///
/// When several instances share the store (`ctx->shared`), queued
/// deployments are not handed out here but claimed from the store, oldest
/// first, as long as fewer than HEAVEN_MAX_RUNNING run: when this instance
/// accepted one, when one of its deployments ended, and on `wake` (another
/// instance's NOTIFY, the lease's tick). What an earlier run left is the
/// business of the instances' leases (see store_backend::renew_lease).
receiver_actor::behavior_type
receiver(receiver_actor::stateful_pointer<receiver_state> self,
         context_ptr ctx);

} // namespace heaven
