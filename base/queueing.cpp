#include "base/queueing.hpp"

#include <nlohmann/json.hpp>

namespace heaven {

namespace {

/// 1 for true, 0 for false, -1 when `config` has no boolean at `key`.
int flag(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_boolean())
    return -1;
  return it->get<bool>() ? 1 : 0;
}

} // namespace

queue_mode read_queue_mode(const deployment_request& req, bool queue_all) {
  auto fallback = queue_all ? queue_mode::wait : queue_mode::refuse;
  auto payload = nlohmann::json::parse(req.payload_json, nullptr, false);
  if (!payload.is_object())
    return fallback;
  auto config = payload.find("config");
  if (config == payload.end() || !config->is_object())
    return fallback;
  if (flag(*config, "supersede") == 1)
    return queue_mode::supersede;
  switch (flag(*config, "queue")) {
    case 1:
      return queue_mode::wait;
    case 0:
      return queue_mode::refuse;
    default:
      return fallback;
  }
}

std::string waiting_description(int64_t github_id) {
  return "waiting for deployment " + std::to_string(github_id) + " to finish";
}

std::string superseded_description(int64_t github_id) {
  return "superseded by deployment " + std::to_string(github_id);
}

} // namespace heaven
