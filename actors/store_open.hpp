/// The command line's database: `heaven locks`, `heaven unlock` and
/// `heaven repos` work on PostgreSQL when HEAVEN_DATABASE_URL is set, on
/// the SQLite file in the data directory otherwise. The choice is made here
/// only.
#pragma once

#include <memory>
#include <string>

#include "actors/store_backend.hpp"

namespace heaven {

struct settings;

/// The database `cfg` names, opened for the command line: SQLite's
/// existing file (it is migrated, never created), or PostgreSQL through a
/// pg_store that migrates nothing, holds no lease and claims nothing (a
/// database without heaven's schema, or with an older or newer one, is
/// refused: `heaven migrate` makes it). Throws std::runtime_error (or
/// pg::error, one of them) naming the problem, never the URL's password.
std::unique_ptr<store_backend> open_command_line_store(const settings& cfg);

/// The key behind log and lock links, read without making one: the data
/// directory's log.key on SQLite, the shared secret "log_key" on
/// PostgreSQL; "" when there is none yet.
std::string command_line_log_key(const settings& cfg);

} // namespace heaven
