/// Times as web APIs write them (GitHub's `expires_at`, Heroku's
/// `created_at`), read in one place.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace heaven {

/// An RFC 3339 / ISO 8601 UTC time as APIs write it ("2024-05-01T10:00:00Z",
/// fractions and "+hh:mm" offsets allowed; kept to the millisecond), or
/// nullopt when `text` is none.
std::optional<std::chrono::system_clock::time_point>
parse_time(std::string_view text);

} // namespace heaven
