/// Reading the bodies of outbox rows (JSON objects whose meaning is their
/// kind's), with errors that name the row.
#pragma once

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "messages/types.hpp"

namespace heaven {

/// The body of `row` as a JSON object; throws std::runtime_error
/// ("<what> row <id> is not a JSON object") when it is none.
nlohmann::json row_object(const outbox_row& row, std::string_view what);

} // namespace heaven
