/// The store's tables and how an older database file is brought up to date.
#pragma once

#include <string>

namespace heaven {

class database;

/// The schema version this heaven writes (`PRAGMA user_version`).
int schema_version();

/// Runs the migrations the file at `path` (open as `db`) lacks, all in one
/// write transaction so that two connections opening an old file at once
/// migrate it once. Throws `sqlite_error`, also when the file is newer than
/// this heaven understands.
void migrate(database& db, const std::string& path);

} // namespace heaven
