#include "base/rows.hpp"

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace heaven {

nlohmann::json row_object(const outbox_row& row, std::string_view what) {
  auto j = nlohmann::json::parse(row.body, nullptr, false);
  if (!j.is_object())
    throw std::runtime_error(std::string{what} + " row "
                             + std::to_string(row.id)
                             + " is not a JSON object");
  return j;
}

} // namespace heaven
