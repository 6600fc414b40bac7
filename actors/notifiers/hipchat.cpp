// HIPCHAT: the v2 room notification API.
//
// POST <HIPCHAT_SERVER>/v2/room/<room, %-encoded>/notification with
// `Authorization: Bearer <HIPCHAT_TOKEN>` (never `auth_token` in the URL);
// room = payload.notify.room, else HIPCHAT_ROOM.
// Body: {"from": "heaven", "message", "color": "yellow" (start), "green"
// (success, commit list) or "red" (failure, error), "notify": true,
// "message_format": "text"}.
//
// The deployment message is Heaven's sentence with "@<user>" and raw URLs
// for the app (<repo_url>, start: <repo_url>/tree/<ref>), then one space and
// Heaven's ascii face:
//   "@alice's production deployment of https://github.com/octo/app is done!
//    (◕‿◕)"
//   "@alice is deploying https://github.com/octo/app/tree/main to production
//    •̀.̫•́✧"
// The commit list is the plain one (notifier.hpp), without a face.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/notifiers/notifier.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

struct hipchat_setup {
  std::string token;
  std::string room;
  std::string server;
  std::string web_endpoint;
};

std::string deployment_text(const hipchat_setup& s,
                            const deployment_notice& n) {
  auto repo = repo_url(n, s.web_endpoint);
  sentence_parts p;
  p.user = "@" + chat_user(n);
  p.environment = n.environment;
  p.app = repo;
  p.app_tree = repo + "/tree/" + n.ref;
  p.description = n.description;
  p.state = n.state;
  return with_suffix(sentence(p), face(n.state));
}

std::string color(const std::string& state) {
  if (start_state(state))
    return "yellow";
  return state == "success" ? "green" : "red";
}

outgoing message(const hipchat_setup& s, const deployment_notice& n,
                 std::string text, std::string color, std::string label) {
  auto room = n.room.empty() ? s.room : n.room;
  json b = {{"from", "heaven"},
            {"message", std::move(text)},
            {"color", std::move(color)},
            {"notify", true},
            {"message_format", "text"}};
  auto req = json_post(
    join_url(s.server, "v2/room/" + percent_encode(room) + "/notification"),
    to_text(b));
  req.headers.emplace_back("Authorization", "Bearer " + s.token);
  return {std::move(req), std::move(label)};
}

std::vector<outgoing> format(const hipchat_setup& s,
                             const deployment_notice& n) {
  if (!announced(n.state))
    return {};
  std::vector<outgoing> out;
  out.push_back(
    message(s, n, deployment_text(s, n), color(n.state), describe(n)));
  if (n.state == "success" && n.changes.present)
    out.push_back(message(s, n, changes_text(n.changes), "green",
                          "commit list of " + describe(n)));
  return out;
}

} // namespace

formatter hipchat(const settings& cfg) {
  auto s = std::make_shared<const hipchat_setup>(hipchat_setup{
    cfg.hipchat_token, cfg.hipchat_room, cfg.hipchat_server, cfg.web_endpoint});
  return [s](const deployment_notice& n, const std::string&,
             const std::string&) { return format(*s, n); };
}

} // namespace heaven::notifiers
