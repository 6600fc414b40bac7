// The texts every chat service starts from (wording: notifier.hpp).
#include <string>

#include <nlohmann/json.hpp>

#include "actors/notifiers/notifier.hpp"

namespace heaven::notifiers {

bool start_state(std::string_view state) {
  return state == "pending" || state == "in_progress";
}

bool announced(std::string_view state) {
  return start_state(state) || state == "success" || state == "failure"
         || state == "error";
}

std::string face(std::string_view state) {
  if (start_state(state))
    return "•̀.̫•́✧";
  if (state == "success")
    return "(◕‿◕)";
  if (state == "failure")
    return "ಠﭛಠ";
  if (state == "error")
    return "¯\\_(ツ)_/¯";
  return "٩◔̯◔۶";
}

std::string sentence(const sentence_parts& p) {
  auto owner = p.user + "'s " + p.environment + " deployment of " + p.app;
  if (start_state(p.state))
    return p.user + " is deploying " + p.app_tree + " to " + p.environment;
  if (p.state == "success")
    return owner + " is done! ";
  if (p.state == "failure")
    return owner + " failed. ";
  if (p.state == "error")
    return owner + " has errors. " + p.before_description + p.description;
  return owner + " is " + p.state;
}

std::string plain_message(const deployment_notice& n) {
  sentence_parts p;
  p.user = chat_user(n);
  p.environment = n.environment;
  p.app = n.app;
  p.app_tree = n.app + "/tree/" + n.ref;
  p.description = n.description;
  p.state = n.state;
  return sentence(p);
}

std::string compare_url(const std::string& repo, const std::string& base,
                        const std::string& sha) {
  return repo + "/compare/" + base + "..." + sha;
}

std::string with_suffix(std::string text, std::string_view suffix) {
  if (suffix.empty())
    return text;
  while (!text.empty() && text.back() == ' ')
    text.pop_back();
  text += ' ';
  text += suffix;
  return text;
}

std::string more_commits(int64_t more) {
  return "And " + std::to_string(more)
         + (more == 1 ? " more commit..." : " more commits...");
}

std::string changes_summary(const commit_changes& c, std::string_view between) {
  return "Total Commits: " + std::to_string(c.total_commits)
         + std::string{between} + std::to_string(c.additions) + " Additions, "
         + std::to_string(c.deletions) + " Deletions, "
         + std::to_string(c.changes) + " Changes";
}

std::string changes_text(const commit_changes& c) {
  auto text = changes_summary(c, "\n");
  for (const auto& commit : c.commits)
    text += "\n" + short_sha(commit.sha, 8) + " by " + commit.author + ": "
            + commit.message;
  if (c.more > 0)
    text += "\n" + with_suffix(more_commits(c.more), c.url);
  return text;
}

std::string chat_user(const deployment_notice& n) {
  return n.chat_user.empty() ? "unknown" : n.chat_user;
}

std::string repo_url(const deployment_notice& n,
                     const std::string& web_endpoint) {
  auto url = n.repo_url.empty() ? join_url(web_endpoint, n.repo) : n.repo_url;
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  return url;
}

std::string html_escape(std::string_view s) {
  return replace_chars(s, {{'&', "&amp;"},
                           {'<', "&lt;"},
                           {'>', "&gt;"},
                           {'"', "&quot;"},
                           {'\'', "&#39;"}});
}

std::string to_text(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

http_request json_post(std::string url, std::string body) {
  http_request req;
  req.method = "POST";
  req.url = std::move(url);
  req.headers = {{"Content-Type", "application/json"},
                 {"User-Agent", "heaven"}};
  req.body = std::move(body);
  return req;
}

std::string describe(const deployment_notice& n) {
  return n.state + " of " + n.repo + " deployment "
         + std::to_string(n.deployment_id) + " to " + n.environment;
}

} // namespace heaven::notifiers
