/// Chat notices as the store's outbox rows carry them: written by the store
/// when it accepts a `deployment_status` event (kind "notice"), turned into
/// one row per chat service and message by the notice courier (kinds
/// "chat.<service>"; see actors/notify.hpp).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "messages/types.hpp"

namespace heaven {

/// The kind of the rows the store writes for `deployment_status` events.
inline constexpr const char* notice_kind = "notice";

/// A successful `deploy` with a sha: it is the revision of its repository,
/// app and environment (and may list the commits it brought).
bool records_revision(const deployment_notice& n);

/// A start (pending, in_progress) with a sha: its chat messages compare it
/// with what is deployed in its repository, app and environment.
bool compares_with_deployed(const deployment_notice& n);

/// The stream of `n`'s row: one per GitHub deployment, so that one
/// deployment's notices go out in order ("octo/app#42").
std::string notice_stream(const deployment_notice& n);

/// The stored form of a commit list (a part of notice_json).
nlohmann::json changes_json(const commit_changes& c);

/// Every field of `n` (its commit list included) as a JSON object.
nlohmann::json notice_json(const deployment_notice& n);

/// The notice `j` holds (see notice_json); throws std::runtime_error when it
/// is not such an object.
deployment_notice notice_of(const nlohmann::json& j);

/// The body of a "notice" row: `n`, and `base`: for a successful deploy, the
/// sha it replaced in its repository, app and environment; for a start
/// (compares_with_deployed), the sha deployed there as it starts; "" when
/// none, not known, or another notice.
std::string notice_row_body(const deployment_notice& n,
                            const std::string& base);

} // namespace heaven
