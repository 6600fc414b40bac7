/// heaven's tables on PostgreSQL and how an older schema is brought up to
/// date: versioned like SQLite's (store_schema.hpp), recorded in the table
/// heaven_schema, migrated under an advisory lock so that instances
/// starting together migrate once.
#pragma once

#include <string>

namespace heaven {

namespace pg {
class connection;
}

/// The PostgreSQL schema version this heaven writes.
int pg_schema_version();

/// The schema version the database says it has (0: none of heaven's tables).
int pg_found_version(pg::connection& conn);

/// Creates or migrates heaven's schema, under pg_advisory_lock: all
/// missing migrations in one transaction. Throws pg::error when the
/// database is newer than this heaven understands, and when it fails.
/// Returns the version found before (0: it was created).
int pg_migrate(pg::connection& conn);

/// Throws pg::error unless the database has exactly this heaven's schema
/// (the command line's tools migrate nothing: `heaven migrate` does).
void pg_check_schema(pg::connection& conn);

} // namespace heaven
