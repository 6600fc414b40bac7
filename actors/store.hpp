/// The STORE actor: heaven's SQLite database (WAL) in the data directory.
#pragma once

#include <memory>
#include <string>

#include "messages/interfaces.hpp"

namespace heaven {

class database; // actors/store.cpp

/// State of the STORE actor.
struct store_state {
  static inline const char* name = "store";
  std::unique_ptr<database> db;
  // Both defined in store.cpp, where `database` is complete: a constructor
  // made inline would need ~unique_ptr<database> in every spawning TU.
  store_state();
  ~store_state();
};

/// The STORE actor. Opens (creating if needed) the database at `path`.
/// SQLite calls block, so production spawns it detached.
store_actor::behavior_type store(store_actor::stateful_pointer<store_state> self,
                                 std::string path);

} // namespace heaven
