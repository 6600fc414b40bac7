/// `heaven migrate` and `heaven db copy`: the database's operations, run
/// alone from the command line.
#pragma once

#include <string>
#include <vector>

namespace heaven {

struct settings;

/// `heaven migrate`: creates or migrates PostgreSQL's schema (with
/// HEAVEN_DATABASE_URL), else the SQLite database in the data directory
/// (made when there is none yet). Says what it did; returns the exit
/// status.
int migrate_command(const settings& cfg);

/// `heaven db copy [--from <data dir>]`: moves a SQLite data directory
/// (`from`; the configured data directory when empty) into the PostgreSQL
/// database of HEAVEN_DATABASE_URL. Returns the exit status.
int db_copy_command(const settings& cfg, const std::string& from);

} // namespace heaven
