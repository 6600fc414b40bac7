// FLOWDOCK: the threads API, one activity per announced notice, all of one
// deployment in one thread.
//
// POST <HEAVEN_FLOWDOCK_ENDPOINT>/messages with
// {"flow_token": FLOWDOCK_FLOW_TOKENS[payload.notify.room] (a secret: the
//    body is never logged; no token for the room: error log, not announced),
//  "event": "activity",
//  "external_thread_id": "heaven:deployment:<owner>:<name>:<deployment id>",
//  "title": Heaven's activity title:
//     start   "Started deploying <app> to <env>."
//     success "<app> deployed with ref <ref> to <env>."
//     failure "Failed deploying <app> to <env>."
//     error   "Error deploying <app> to <env>.",
//  "author": {"name": FLOWDOCK_USER_NAME, "avatar": FLOWDOCK_USER_AVATAR, else
//     Heaven's build_ok (start, success) / build_fail icon,
//     "email": FLOWDOCK_USER_EMAIL},
//  "tags": ["deploy", <env>, <app>, <state>],
//  "thread": {"title": "Deployment #<id> of <app> to <env>",
//     "body": "<p><deployment description></p>" and, for a successful deploy
//        with a commit list, that list as HTML (Flowdock has no second
//        message: the thread shows it),
//     "external_url": <log url> (omitted without one),
//     "status": {"value": <state>, "color": yellow (start) | green (success)
//        | red (failure, error)},
//     "fields": [Repository, Deployment, Deployed ref, Environment,
//        Previous deployment, Application] as Heaven had them (HTML links);
//        Previous deployment (a successful deploy only: the store knows the
//        sha a deployment replaced only then; left out otherwise):
//        "<a href='<repo>/commits/<base>'><base:8></a> (<a href='<repo>/
//        compare/<base>...<sha>'>Show diff</a>)", or "No previous
//        deployments" when it replaced none}}.
// Text inside the HTML parts is HTML-escaped.
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/notifiers/notifier.hpp"
#include "base/notices.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

constexpr auto build_ok_icon
  = "https://d2ph5hv9wbwvla.cloudfront.net/heaven/build_ok.png";
constexpr auto build_fail_icon
  = "https://d2ph5hv9wbwvla.cloudfront.net/heaven/build_fail.png";

struct flowdock_setup {
  /// Flow name -> flow token.
  std::map<std::string, std::string> tokens;
  std::string endpoint;
  std::string user_name;
  std::string user_email;
  std::string user_avatar;
  std::string web_endpoint;
};

std::string activity_title(const deployment_notice& n) {
  if (start_state(n.state))
    return "Started deploying " + n.app + " to " + n.environment + ".";
  if (n.state == "success")
    return n.app + " deployed with ref " + n.ref + " to " + n.environment + ".";
  if (n.state == "failure")
    return "Failed deploying " + n.app + " to " + n.environment + ".";
  return "Error deploying " + n.app + " to " + n.environment + ".";
}

std::string status_color(const std::string& state) {
  if (start_state(state))
    return "yellow";
  return state == "success" ? "green" : "red";
}

/// `<a href='url'>text</a>` with both escaped.
std::string anchor(std::string_view url, std::string_view text) {
  return "<a href='" + html_escape(url) + "'>" + html_escape(text) + "</a>";
}

std::string thread_id(const deployment_notice& n) {
  auto repo = n.repo;
  for (auto& c : repo)
    if (c == '/')
      c = ':';
  return "heaven:deployment:" + repo + ":" + std::to_string(n.deployment_id);
}

/// The commit list as HTML for the thread's body.
std::string changes_html(const commit_changes& c) {
  auto html = "<p>" + changes_summary(c, "<br>") + "</p><ul>";
  for (const auto& commit : c.commits) {
    html += "<li>" + anchor(commit.url, short_sha(commit.sha, 8)) + " by ";
    html += commit.author_url.empty()
              ? html_escape(commit.author)
              : anchor(commit.author_url, commit.author);
    html += ": " + html_escape(commit.message) + "</li>";
  }
  html += "</ul>";
  if (c.more > 0)
    html += "<p>" + anchor(c.url, more_commits(c.more)) + "</p>";
  return html;
}

/// The "Previous deployment" field's value: `base`, linked, with the diff.
std::string previous_deployment(const std::string& repo,
                                const deployment_notice& n,
                                const std::string& base) {
  if (base.empty())
    return "No previous deployments";
  return anchor(repo + "/commits/" + base, short_sha(base, 8)) + " ("
         + anchor(compare_url(repo, base, n.sha), "Show diff") + ")";
}

json thread(const flowdock_setup& s, const deployment_notice& n,
            const std::string& base) {
  auto repo = repo_url(n, s.web_endpoint);
  auto id = std::to_string(n.deployment_id);
  auto deployment = n.log_url.empty()
                      ? id
                      : id + " (" + anchor(n.log_url, "output") + ")";
  json fields = json::array(
    {{{"label", "Repository"}, {"value", anchor(repo, n.repo)}},
     {{"label", "Deployment"}, {"value", deployment}},
     {{"label", "Deployed ref"},
      {"value", anchor(repo + "/tree/" + n.ref, n.ref) + " @ "
                  + anchor(repo + "/commits/" + n.sha, short_sha(n.sha, 8))}},
     {{"label", "Environment"}, {"value", html_escape(n.environment)}}});
  if (records_revision(n))
    fields.push_back({{"label", "Previous deployment"},
                      {"value", previous_deployment(repo, n, base)}});
  fields.push_back({{"label", "Application"}, {"value", html_escape(n.app)}});
  auto body = "<p>" + html_escape(n.deployment_description) + "</p>";
  if (n.state == "success" && n.changes.present)
    body += changes_html(n.changes);
  json t = {{"title",
             "Deployment #" + id + " of " + n.app + " to " + n.environment},
            {"body", body},
            {"status", {{"value", n.state}, {"color", status_color(n.state)}}},
            {"fields", std::move(fields)}};
  if (!n.log_url.empty())
    t["external_url"] = n.log_url;
  return t;
}

std::vector<outgoing> format(const flowdock_setup& s,
                             const deployment_notice& n,
                             const std::string& base) {
  if (!announced(n.state))
    return {};
  auto token = s.tokens.find(n.room);
  if (token == s.tokens.end()) {
    spdlog::error("flowdock: no flow token for flow '{}' "
                  "(payload.notify.room) in FLOWDOCK_FLOW_TOKENS; {} not "
                  "announced",
                  n.room, describe(n));
    return {};
  }
  auto green = start_state(n.state) || n.state == "success";
  auto avatar = !s.user_avatar.empty() ? s.user_avatar
                : green                ? build_ok_icon
                                       : build_fail_icon;
  json b = {
    {"flow_token", token->second},
    {"event", "activity"},
    {"external_thread_id", thread_id(n)},
    {"title", activity_title(n)},
    {"author",
     {{"name", s.user_name}, {"avatar", avatar}, {"email", s.user_email}}},
    {"tags", {"deploy", n.environment, n.app, n.state}},
    {"thread", thread(s, n, base)}};
  std::vector<outgoing> out;
  out.push_back(
    {json_post(join_url(s.endpoint, "messages"), to_text(b)), describe(n)});
  return out;
}

/// FLOWDOCK_FLOW_TOKENS as a map; false when it is not a JSON object of
/// strings. Never logs the text: it is all secrets.
bool parse_tokens(const std::string& text,
                  std::map<std::string, std::string>& tokens) {
  auto doc = json::parse(text, nullptr, false);
  if (!doc.is_object())
    return false;
  for (auto& [flow, token] : doc.items()) {
    if (!token.is_string())
      return false;
    tokens[flow] = token.get<std::string>();
  }
  return true;
}

} // namespace

formatter flowdock(const settings& cfg) {
  auto s = std::make_shared<flowdock_setup>();
  if (!parse_tokens(cfg.flowdock_flow_tokens, s->tokens)) {
    spdlog::error("flowdock: FLOWDOCK_FLOW_TOKENS is not a JSON object of "
                  "flow names to token strings; Flowdock is not notified");
    return {};
  }
  s->endpoint = cfg.flowdock_endpoint;
  s->user_name = cfg.flowdock_user_name;
  s->user_email = cfg.flowdock_user_email;
  s->user_avatar = cfg.flowdock_user_avatar;
  s->web_endpoint = cfg.web_endpoint;
  std::shared_ptr<const flowdock_setup> setup = std::move(s);
  return [setup](const deployment_notice& n, const std::string&,
                 const std::string& base) { return format(*setup, n, base); };
}

} // namespace heaven::notifiers
