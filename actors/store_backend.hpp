/// The store contract: every operation the STORE actor performs on its
/// database, as one abstract class. SQLite implements it (sqlite_store.hpp);
/// a second database (PostgreSQL, for several heavens sharing state) would
/// implement the same class and leave the actor as it is.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "messages/types.hpp"

namespace heaven {

/// Outbox rows a transaction committed, to hand to the outboxes subscribed
/// to their kind once the commit is done.
using committed_rows = std::vector<outbox_row>;

/// Thrown, in a batch, by an operation or by commit_batch when the batch's
/// transaction was undone whole for a reason that running its operations
/// again, each in a transaction of its own, may overcome or confine to the
/// one that caused it (PostgreSQL: a deadlock with another instance, a lost
/// connection, an operation that failed). Nothing of the batch is written
/// and no batch is open any more; the store runs the batch's operations
/// again, one at a time.
class batch_undone : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// What a database must do for heaven. Each operation is atomic: a write
/// commits everything it names in one transaction (or, in a batch, in the
/// batch's transaction: see begin_batch), or nothing; rows it adds
/// to the outbox are appended to `rows` once committed. Every operation
/// throws std::exception on failure (std::invalid_argument for a request
/// that can never succeed), with a message fit for a log and a health
/// problem; the store's state is then unchanged.
class store_backend {
public:
  virtual ~store_backend();

  /// HEAVEN_QUEUE_DEPLOYMENTS: deployments to a busy app and environment
  /// wait their turn unless their payload.config.queue is false (see
  /// base/queueing.hpp); off by default.
  void set_queue_all(bool on) {
    queue_all_ = on;
  }

  // -- group commit ----------------------------------------------------------

  /// Opens a batch: the operations until commit_batch share one transaction
  /// (one write to disk), each still all or nothing on its own: a throwing
  /// operation undoes only itself, or (batch_undone) the whole batch, whose
  /// operations the store then runs again, each alone. Nothing of the batch
  /// is durable, and no row it committed may be handed on, before
  /// commit_batch returns.
  virtual void begin_batch() = 0;

  /// Makes the batch durable; throws when it can't (then nothing of it is
  /// written and no batch is open any more): batch_undone when running its
  /// operations again one at a time may succeed.
  virtual void commit_batch() = 0;

  /// False when the database ended the open batch itself (some errors, a
  /// full disk, undo the whole transaction): everything since begin_batch
  /// is gone.
  virtual bool in_batch() const = 0;

  /// Work no answer waits for, done once the batches' answers are on their
  /// way (SQLite copies its log back into the database file here).
  virtual void after_batches() {
  }

  // -- writes ----------------------------------------------------------------

  /// Records a delivery and everything it decides: the repository, the
  /// deployment and the rules' verdict on it (see store_rules.hpp) with the
  /// status that says so (a deployment that queues, see base/queueing.hpp,
  /// waits for a busy app and environment; one that supersedes ends the
  /// older waiting ones of its task, each with its `error` status), the lock
  /// change, a notice (unless the backend was opened without them) and the
  /// revision it records (see `latest`). A redelivery changes nothing.
  virtual accept_result accept(const inbound_event& ev, committed_rows& rows)
    = 0;

  /// Moves queued deployment `id` to running and queues its `in_progress`
  /// status, and the `queued` status of each deployment of its app and
  /// environment still waiting, now for it ("waiting for deployment N to
  /// finish"); false (nothing written) when it is not queued. A deployment
  /// that queues (see base/queueing.hpp) and finds its environment locked
  /// at its turn ends instead, with the lock's `error` (false too).
  virtual bool
  start(int64_t id, const std::string& description, committed_rows& rows)
    = 0;

  /// Ends deployment `id` and queues its terminal status, and a successful
  /// `deploy` becomes its app+environment's revision; false (nothing
  /// written) when there is no such deployment or it has ended already.
  virtual bool
  finish(int64_t id, const provider_outcome& outcome, committed_rows& rows)
    = 0;

  /// True only for the first claim of (repo, app, environment, sha); the
  /// first also queues the deployment's creation.
  virtual bool claim(const auto_deployment& x, committed_rows& rows) = 0;

  /// Queues the creation of GitHub deployment `x` (a "deploy" row), with
  /// no claim: a person asked for it.
  virtual void queue_creation(const auto_deployment& x, committed_rows& rows)
    = 0;

  /// Settles outbox rows and adds the rows they lead to.
  virtual void change_outbox(const outbox_change& change, committed_rows& rows)
    = 0;

  /// Removes the lock on (repo, environment); false when there was none.
  virtual bool
  remove_lock(const std::string& repo, const std::string& environment)
    = 0;

  /// Sets whether heaven acts on `repo`'s events, recording the repository
  /// when heaven has not heard from it yet.
  virtual void set_repository_active(const std::string& repo, bool active) = 0;

  // -- reads -----------------------------------------------------------------

  /// The unsettled outbox rows of `kind`, oldest first.
  virtual std::vector<outbox_row> unsettled(const std::string& kind) = 0;

  /// The newest `n` deployments, newest first (none for n <= 0).
  virtual std::vector<deployment_row> list(int32_t n) = 0;

  /// The deployments matching `f`, newest first.
  virtual std::vector<deployment_row> list(const deployment_filter& f) = 0;

  /// Deployment `id` with its statuses (found = false when there is none).
  virtual deployment_detail detail(int64_t id) = 0;

  /// The deployments left queued or running, oldest first.
  virtual std::vector<unfinished_deployment> pending() = 0;

  /// The deployments left queued or running whose id is above `after`,
  /// oldest first, at most `limit` (none for limit <= 0).
  virtual std::vector<unfinished_deployment>
  pending_after(int64_t after, int32_t limit) = 0;

  /// Every lock, oldest first (ties by repository, then environment).
  virtual std::vector<env_lock> locks() = 0;

  /// For `repo`: each app+environment's revision (what is deployed there:
  /// recorded when heaven finishes a successful `deploy`, and when GitHub
  /// reports another tool's), ordered by app and environment, with the
  /// heaven deployment to repeat (the one that deployed it, else heaven's
  /// newest successful `deploy` there; places heaven never deployed to are
  /// left out) and the environment's lock.
  virtual std::vector<deployed_environment> latest(const std::string& repo) = 0;

  /// Every repository heaven has heard from (or that was switched), by name.
  virtual std::vector<repository_record> repositories() = 0;

  // -- several instances (PostgreSQL)
  // ------------------------------------------ SQLite serves one instance: its
  // receiver hands out what is queued itself, it holds its lease for ever and
  // keeps logs and the link key in files, so its versions of these are the
  // defaults in store_backend.cpp: no lease to renew, nothing to leave, `fresh`
  // as the secret, and std::logic_error from claim_queued and the log's two
  // (the receiver and the log route use them only when `shared()`).

  /// True when other heaven instances may share this database: then queued
  /// deployments are claimed (`claim_queued`), leases are renewed, logs and
  /// the link key live in the database.
  virtual bool shared() const;

  /// Claims up to `limit` queued deployments no instance has claimed,
  /// oldest first, for this instance (none for limit <= 0): only those
  /// whose earlier statuses are delivered, or are this instance's to
  /// deliver, so GitHub gets one deployment's statuses in order.
  virtual std::vector<unfinished_deployment> claim_queued(int32_t limit);

  /// Renews this instance's lease; then takes over every instance whose
  /// lease lapsed two periods ago: ends each deployment it was running
  /// with `error` and `why`, gives back the queued ones it had claimed,
  /// and makes its undelivered outbox rows this instance's (`adopted`,
  /// oldest first: it may have delivered some before it was lost), as it
  /// does with rows nobody delivers; the new statuses go to `rows`. `held`
  /// is false (and nothing else is done) when another instance took this
  /// one over.
  virtual lease_report renew_lease(const std::string& why, committed_rows& rows,
                                   committed_rows& adopted);

  /// This instance stops: gives back the queued deployments it claimed but
  /// did not start, and ends its lease (nobody needs to take it over).
  virtual void leave();

  /// Appends `bytes` (and the times records of their lines) to deployment
  /// `id`'s log at `offset`; a piece already stored is not stored again.
  virtual void append_log(int64_t id, int64_t offset, const std::string& bytes,
                          const std::string& times);

  /// Deployment `id`'s log from `from` on, at most about `max` bytes.
  virtual log_piece read_log(int64_t id, int64_t from, int64_t max);

  /// The secret named `name` every instance shares; `fresh` becomes it
  /// when there is none yet.
  virtual std::string shared_secret(const std::string& name,
                                    const std::string& fresh);

protected:
  bool queue_all_ = false;
};

} // namespace heaven
