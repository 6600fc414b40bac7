// SLACK: an incoming webhook (SLACK_WEBHOOK_URL, a secret: its path carries
// the token, so it is never logged), one attachment per message.
//
// The deployment message (Heaven's, in Slack's `<url|text>` links):
//   "<log_url|#<id>> : <web_endpoint/<user>|<user>>" then the sentence of
//   notifier.hpp with the app as "<repo_url|<app>>" (start message:
//   "<repo_url/tree/<ref>|<app>>"), and for errors "¯\_(ツ)_/¯ " before the
//   description:
//   "<L|#42> : <https://github.com/alice|alice>'s production deployment of
//    <https://github.com/octo/app|app> has errors. ¯\_(ツ)_/¯ Timed out"
//   Without a log URL the id is not linked ("#42 : ...").
//   The start message ends with the Rails Heaven's compare link against the
//   revision deployed there before it (the notice's base, see
//   notice_row_body), on the repository's own host:
//   " (<repo_url/compare/<base>...<sha>|compare>)"; none when nothing was
//   deployed there yet or the base is the sha itself.
// The commit list: plain header, then "<url|<sha:8>> by <author_url|<author>>:
//   <subject>" per commit and "<compare_url|And N more commits...>"; in a
//   subject, each "#<digits>" links to that issue, as the Rails Heaven's
//   linked comparison did ("<repo_url/issues/123|#123>"; the repository's page
//   as above, so GitHub Enterprise links stay on its host).
//
// Body: {"channel": "#<room>" (omitted without a room; a room already
// starting with # or @ is used as is), "username": SLACK_BOT_NAME,
// "icon_url": SLACK_BOT_ICON, "attachments": [{"text", "color": "good"
// (start, success, commit list) or "danger" (failure, error), "pretext":
// "#<id> - <app> / <ref> / <env>" for the start message else " ",
// "fallback": the plain text, "mrkdwn_in": ["text", "pretext"]}]}.
// User-supplied text is escaped as Slack wants (&amp; &lt; &gt;).
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/notifiers/notifier.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

struct slack_setup {
  std::string webhook_url;
  std::string bot_name;
  std::string bot_icon;
  std::string web_endpoint;
};

/// `s` with &, < and > escaped the way Slack's message text wants.
std::string slack_escape(std::string_view s) {
  return replace_chars(s, {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}});
}

/// `url` with the characters that would end a Slack link %-encoded.
std::string slack_url(std::string_view url) {
  return replace_chars(
    url, {{'<', "%3C"}, {'>', "%3E"}, {'|', "%7C"}, {' ', "%20"}});
}

/// "<url|text>", or just `text` when there is no URL (`text` is escaped
/// already).
std::string link(std::string_view url, const std::string& text) {
  if (url.empty())
    return text;
  return "<" + slack_url(url) + "|" + text + ">";
}

std::string deployment_text(const slack_setup& s, const deployment_notice& n,
                            const std::string& base) {
  auto repo = repo_url(n, s.web_endpoint);
  auto user = chat_user(n);
  sentence_parts p;
  p.user = link(join_url(s.web_endpoint, user), slack_escape(user));
  p.environment = slack_escape(n.environment);
  p.app = link(repo, slack_escape(n.app));
  p.app_tree = link(repo + "/tree/" + n.ref, slack_escape(n.app));
  p.before_description = face("error") + " ";
  p.description = slack_escape(n.description);
  p.state = n.state;
  auto id = "#" + std::to_string(n.deployment_id);
  auto text = link(n.log_url, id) + " : " + sentence(p);
  if (start_state(n.state) && !base.empty() && !n.sha.empty() && base != n.sha)
    text += " (" + link(compare_url(repo, base, n.sha), "compare") + ")";
  return text;
}

/// `text` (escaped already) with every "#<digits>" as a link to that issue
/// of the repository at `repo`.
std::string issue_links(const std::string& text, const std::string& repo) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t digits = i + 1;
    while (text[i] == '#' && digits < text.size() && text[digits] >= '0'
           && text[digits] <= '9')
      ++digits;
    if (text[i] != '#' || digits == i + 1) {
      out += text[i++];
      continue;
    }
    auto number = text.substr(i + 1, digits - i - 1);
    out += link(repo + "/issues/" + number, "#" + number);
    i = digits;
  }
  return out;
}

std::string changes_markup(const commit_changes& c, const std::string& repo) {
  auto text = changes_summary(c, "\n");
  for (const auto& commit : c.commits)
    text += "\n" + link(commit.url, short_sha(commit.sha, 8)) + " by "
            + link(commit.author_url, slack_escape(commit.author)) + ": "
            + issue_links(slack_escape(commit.message), repo);
  if (c.more > 0)
    text += "\n" + link(c.url, more_commits(c.more));
  return text;
}

std::string channel(const std::string& room) {
  if (room.front() == '#' || room.front() == '@')
    return room;
  return "#" + room;
}

std::string body(const slack_setup& s, const deployment_notice& n,
                 std::string text, std::string color, std::string pretext,
                 std::string fallback) {
  json attachment = {{"text", std::move(text)},
                     {"color", std::move(color)},
                     {"pretext", std::move(pretext)},
                     {"fallback", std::move(fallback)},
                     {"mrkdwn_in", {"text", "pretext"}}};
  json b = {{"username", s.bot_name},
            {"icon_url", s.bot_icon},
            {"attachments", json::array({std::move(attachment)})}};
  if (!n.room.empty())
    b["channel"] = channel(n.room);
  return to_text(b);
}

std::vector<outgoing> format(const slack_setup& s, const deployment_notice& n,
                             const std::string& base) {
  if (!announced(n.state))
    return {};
  std::vector<outgoing> out;
  auto green = start_state(n.state) || n.state == "success";
  auto pretext = start_state(n.state) ? slack_escape(
                   "#" + std::to_string(n.deployment_id) + " - " + n.app + " / "
                   + n.ref + " / " + n.environment)
                                      : " ";
  out.push_back(
    {json_post(s.webhook_url,
               body(s, n, deployment_text(s, n, base),
                    green ? "good" : "danger", pretext, plain_message(n))),
     describe(n)});
  if (n.state == "success" && n.changes.present)
    out.push_back(
      {json_post(s.webhook_url,
                 body(s, n,
                      changes_markup(n.changes, repo_url(n, s.web_endpoint)),
                      "good", " ", changes_text(n.changes))),
       "commit list of " + describe(n)});
  return out;
}

} // namespace

formatter slack(const settings& cfg) {
  auto s = std::make_shared<const slack_setup>(
    slack_setup{cfg.slack_webhook_url, cfg.slack_bot_name, cfg.slack_bot_icon,
                cfg.web_endpoint});
  return [s](const deployment_notice& n, const std::string&,
             const std::string& base) { return format(*s, n, base); };
}

} // namespace heaven::notifiers
