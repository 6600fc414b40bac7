/// What is deployed where, on PostgreSQL (as sqlite_revisions.cpp on
/// SQLite): the writers of the `revisions` table, used in pg_store.cpp's
/// transactions.
#pragma once

#include <cstdint>
#include <string>

#include "actors/pg.hpp"
#include "messages/types.hpp"

namespace heaven::pg_rows {

/// Heaven's deployment `id` of `r` ended in success: a `deploy` with a sha
/// becomes the revision of its repository, app and environment (in the
/// caller's transaction), unless that GitHub deployment is its revision
/// already.
void record_finished(pg::connection& conn, int64_t id,
                     const deployment_request& r, const std::string& now);

/// GitHub reports `n`: a successful `deploy` of another tool becomes the
/// revision of its repository, app and environment (in the caller's
/// transaction). Returns the notice's base (notice_row_body): the sha a
/// successful `deploy` replaced there, or for a start the sha deployed
/// there, read and left as it is ("" when none, not known, or another
/// notice).
std::string record_reported(pg::connection& conn, const deployment_notice& n,
                            const std::string& now);

} // namespace heaven::pg_rows
