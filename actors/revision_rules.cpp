#include "actors/revision_rules.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace heaven::revision_rules {

std::string stored_payload(const std::string& request, int64_t id) {
  auto j = nlohmann::json::parse(request, nullptr, false);
  if (j.is_object()) {
    auto i = j.find("payload_json");
    if (i != j.end() && i->is_string() && !i->get<std::string>().empty())
      return i->get<std::string>();
  } else {
    spdlog::error("store found no readable request for deployment {}; "
                  "using an empty payload",
                  id);
  }
  return "{}";
}

} // namespace heaven::revision_rules
