// CAMPFIRE: the room speak API.
//
// POST <HEAVEN_CAMPFIRE_ENDPOINT with {subdomain} = CAMPFIRE_SUBDOMAIN>
// room/<payload.notify.room, %-encoded>/speak.json, Basic auth
// "<CAMPFIRE_TOKEN>:X". Body: {"message": {"type": "TextMessage", "body"}}.
// A notice without a room is logged as an error and not announced.
//
// The deployment message is the plain sentence of notifier.hpp with the log
// URL appended after one space, as Heaven appended its output link:
//   "alice's production deployment of app is done! https://heaven/log/42"
// The commit list is the plain one, as is.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/notifiers/notifier.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

constexpr std::string_view subdomain_marker = "{subdomain}";

struct campfire_setup {
  /// The API base with the subdomain filled in.
  std::string base;
  /// "Basic <base64 of token:X>".
  std::string authorization;
};

outgoing message(const campfire_setup& s, const deployment_notice& n,
                 std::string text, std::string label) {
  json b = {{"message", {{"type", "TextMessage"}, {"body", std::move(text)}}}};
  auto req = json_post(
    join_url(s.base, "room/" + percent_encode(n.room) + "/speak.json"),
    to_text(b));
  req.headers.emplace_back("Authorization", s.authorization);
  return {std::move(req), std::move(label)};
}

std::vector<outgoing> format(const campfire_setup& s,
                             const deployment_notice& n) {
  if (!announced(n.state))
    return {};
  if (n.room.empty()) {
    spdlog::error("campfire: {} names no room (payload.notify.room); not "
                  "announced",
                  describe(n));
    return {};
  }
  std::vector<outgoing> out;
  out.push_back(
    message(s, n, with_suffix(plain_message(n), n.log_url), describe(n)));
  if (n.state == "success" && n.changes.present)
    out.push_back(
      message(s, n, changes_text(n.changes), "commit list of " + describe(n)));
  return out;
}

} // namespace

formatter campfire(const settings& cfg) {
  auto base = cfg.campfire_endpoint;
  auto at = base.find(subdomain_marker);
  if (at != std::string::npos) {
    if (cfg.campfire_subdomain.empty()) {
      spdlog::error("campfire: CAMPFIRE_SUBDOMAIN is not set; Campfire is not "
                    "notified");
      return {};
    }
    base.replace(at, subdomain_marker.size(), cfg.campfire_subdomain);
  }
  auto s = std::make_shared<const campfire_setup>(campfire_setup{
    std::move(base), "Basic " + base64_encode(cfg.campfire_token + ":X")});
  return [s](const deployment_notice& n, const std::string&,
             const std::string&) { return format(*s, n); };
}

} // namespace heaven::notifiers
