/// The STORE actor: heaven's database (SQLite, WAL, in the data directory),
/// reached through the store contract (store_backend.hpp).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/store_backend.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class health_board;

/// One request waiting for the STORE actor's next group commit.
struct store_op {
  /// Does its part inside the batch's transaction; returns what to do once
  /// the batch is on disk (hand on its rows, answer), or nothing when it
  /// failed: then it has undone its own changes, answered with the error
  /// and set `why`.
  std::function<std::function<void()>(store_backend&, std::string& why)> run;
  /// Answers with an error instead: its batch was not written.
  std::function<void(const std::string& why)> fail;
  /// False for reads.
  bool write = false;
};

/// State of the STORE actor.
struct store_state {
  static inline const char* name = "store";
  /// The database (null when it could not be opened).
  std::unique_ptr<store_backend> db;
  /// Why there is no database.
  std::string open_error;
  /// Requests received since the last commit, in order: they go to disk
  /// together (see `store`).
  std::vector<store_op> queued;
  /// True while a `tick` to commit `queued` is on its way.
  bool commit_pending = false;
  /// Told when writing fails and when it works again (may be null).
  std::shared_ptr<health_board> health;
  /// The outboxes to hand committed rows to, by kind.
  std::map<std::string, std::vector<outbox_actor>> subscribers;
};

/// The STORE actor. Opens (creating if needed) the database at `path`.
/// SQLite calls block, so production spawns it detached. A write that fails
/// is reported to `health` (may be null) until one works again.
///
/// Group commit: a request is not done when it arrives but queued, and the
/// first one queued sends the actor a `tick`, which arrives after every
/// request already in its mailbox. The tick runs all queued requests in
/// order in one transaction (each in a savepoint of its own: a failing one
/// undoes only itself) and commits it, so N events that arrive together cost
/// one write to disk (synchronous=FULL) instead of N. Only once that commit
/// is on disk are the requests answered and their rows handed to the
/// outboxes; when it fails, every request of the batch is answered with the
/// error. Reads ride in the same batch, so each sees every request before
/// it, as if they ran one by one.
///
/// Without `notices` (no chat service is configured), deployment_status
/// events queue no chat notice: a row nobody would read is not written.
store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path,
      std::shared_ptr<health_board> health, bool notices);

/// Makes the database the STORE actor works on (throws when it cannot).
using store_opener = std::function<std::unique_ptr<store_backend>()>;

/// The STORE actor on the database `open` makes: SQLite's or PostgreSQL's
/// (see `store`, whose group commit it shares).
store_actor::behavior_type
open_store(store_actor::stateful_pointer<store_state> self, store_opener open,
           std::shared_ptr<health_board> health);

// -- the command line's access ---------------------------------------------
// `heaven locks`, `heaven unlock` and `heaven repos` work on the database at
// `path` directly, also while a heaven serves from it (SQLite's WAL and busy
// timeout take care of the two writers). None creates a database: each
// throws std::runtime_error naming the problem.

/// Every environment lock, oldest first.
std::vector<env_lock> read_locks(const std::string& path);

/// Removes the lock on (repo, environment); false when there was none.
bool remove_lock(const std::string& path, const std::string& repo,
                 const std::string& environment);

/// Every repository heaven has heard from (or that was switched), by name.
std::vector<repository_record> read_repositories(const std::string& path);

/// Sets whether heaven acts on `repo`'s events; records the repository when
/// heaven has not heard from it yet.
void set_repository_active(const std::string& path, const std::string& repo,
                           bool active);

} // namespace heaven
