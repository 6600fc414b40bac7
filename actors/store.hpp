/// The STORE actor: heaven's database (SQLite, WAL, in the data directory),
/// reached through the store contract (store_backend.hpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/store_backend.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class health_board;

/// State of the STORE actor.
struct store_state {
  static inline const char* name = "store";
  /// The database (null when it could not be opened).
  std::unique_ptr<store_backend> db;
  /// Told when writing fails and when it works again (may be null).
  std::shared_ptr<health_board> health;
  /// The outboxes to hand committed rows to, by kind.
  std::map<std::string, std::vector<outbox_actor>> subscribers;
};

/// The STORE actor. Opens (creating if needed) the database at `path`.
/// SQLite calls block, so production spawns it detached. A write that fails
/// is reported to `health` (may be null) until one works again.
store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path,
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
