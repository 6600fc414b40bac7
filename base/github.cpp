#include "base/github.hpp"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/retry.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

using nlohmann::json;

std::string text_of(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : "";
}

int64_t number_of(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_number_integer() ? i->get<int64_t>() : 0;
}

const json& object_of(const json& j, const char* key) {
  static const json none = json::object();
  auto i = j.find(key);
  return i != j.end() && i->is_object() ? *i : none;
}

/// One commit of a comparison: the author's login (else the commit's
/// author name, else "unknown") and the first line of the message.
commit_summary summary_of(const json& c) {
  commit_summary s;
  s.sha = text_of(c, "sha");
  s.url = text_of(c, "html_url");
  const auto& author = object_of(c, "author");
  const auto& commit = object_of(c, "commit");
  s.author = text_of(author, "login");
  s.author_url = text_of(author, "html_url");
  if (s.author.empty())
    s.author = text_of(object_of(commit, "author"), "name");
  if (s.author.empty())
    s.author = "unknown";
  auto message = text_of(commit, "message");
  message = message.substr(0, message.find('\n'));
  if (!message.empty() && message.back() == '\r')
    message.pop_back();
  s.message = std::move(message);
  return s;
}

std::string statuses_path(const github_status& s) {
  return "repos/" + s.repo + "/deployments/" + std::to_string(s.github_id)
         + "/statuses";
}

} // namespace

http_request github_request(const github_api& api, std::string method,
                            std::string_view path) {
  http_request req;
  req.method = std::move(method);
  req.url = join_url(api.endpoint, path);
  req.headers = {{"Accept", "application/vnd.github+json"},
                 {"User-Agent", "heaven"}};
  if (!api.token.empty())
    req.headers.emplace_back("Authorization", "token " + api.token);
  if (req.method == "POST")
    req.headers.emplace_back("Content-Type", "application/json");
  return req;
}

http_request rate_limit_request(const github_api& api) {
  return github_request(api, "GET", "rate_limit");
}

std::string github_problem(const http_response& res) {
  auto text = describe(res);
  if (res.status == 0)
    return text;
  auto message = top_level_string(res.body, "message");
  if (!message.empty())
    text += ": " + message;
  return text;
}

// -- deployment statuses -----------------------------------------------------

std::string status_body(const github_status& s) {
  json body;
  body["state"] = to_string(s.state);
  body["description"] = truncate_description(s.description, 140);
  if (!s.log_url.empty()) {
    body["log_url"] = s.log_url;
    // Older GitHub Enterprise knows only target_url.
    body["target_url"] = s.log_url;
  }
  if (!s.environment_url.empty())
    body["environment_url"] = s.environment_url;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

http_request create_status_request(const github_api& api,
                                   const github_status& s) {
  auto req = github_request(api, "POST", statuses_path(s));
  req.body = status_body(s);
  return req;
}

http_request list_statuses_request(const github_api& api,
                                   const github_status& s) {
  return github_request(api, "GET", statuses_path(s) + "?per_page=100");
}

bool status_listed(const std::string& body, const github_status& s) {
  auto wanted = truncate_description(s.description, 140);
  auto wanted_state = to_string(s.state);
  auto list = json::parse(body, nullptr, false);
  if (!list.is_array())
    return false;
  for (auto& x : list) {
    if (!x.is_object())
      continue;
    auto state = x.find("state");
    auto description = x.find("description");
    if (state != x.end() && state->is_string() && *state == wanted_state
        && description != x.end() && description->is_string()
        && *description == wanted)
      return true;
  }
  return false;
}

// -- deployments -------------------------------------------------------------

http_request create_deployment_request(const github_api& api,
                                       const std::string& repo,
                                       std::string body) {
  auto req = github_request(api, "POST", "repos/" + repo + "/deployments");
  req.body = std::move(body);
  return req;
}

http_request
list_deployments_request(const github_api& api, const std::string& repo,
                         const std::string& sha, std::string_view environment,
                         std::string_view task, int per_page) {
  return github_request(api, "GET",
                        "repos/" + repo + "/deployments?sha=" + sha
                          + "&environment=" + percent_encode(environment)
                          + "&task=" + percent_encode(task)
                          + "&per_page=" + std::to_string(per_page));
}

// -- commits -----------------------------------------------------------------

http_request combined_status_request(const github_api& api,
                                     const std::string& repo,
                                     const std::string& sha) {
  return github_request(api, "GET",
                        "repos/" + repo + "/commits/" + sha + "/status");
}

http_request compare_request(const github_api& api, const std::string& repo,
                             std::string_view base, std::string_view head) {
  return github_request(api, "GET",
                        "repos/" + repo + "/compare/" + percent_encode(base)
                          + "..." + percent_encode(head));
}

std::string top_level_string(const std::string& body, const char* key) {
  auto doc = json::parse(body, nullptr, false);
  return doc.is_object() ? text_of(doc, key) : std::string{};
}

std::optional<commit_changes> parse_compare(const std::string& body,
                                            int64_t limit) {
  auto doc = json::parse(body, nullptr, false);
  if (!doc.is_object())
    return std::nullopt;
  commit_changes c;
  c.url = text_of(doc, "html_url");
  c.total_commits = number_of(doc, "total_commits");
  if (auto files = doc.find("files"); files != doc.end() && files->is_array())
    for (const auto& f : *files) {
      if (!f.is_object())
        continue;
      c.additions += number_of(f, "additions");
      c.deletions += number_of(f, "deletions");
      c.changes += number_of(f, "changes");
    }
  std::vector<commit_summary> listed;
  if (auto commits = doc.find("commits");
      commits != doc.end() && commits->is_array())
    for (const auto& commit : *commits)
      if (commit.is_object())
        listed.push_back(summary_of(commit));
  std::reverse(listed.begin(), listed.end()); // GitHub: oldest first.
  auto count = static_cast<int64_t>(listed.size());
  auto keep = limit > 0 ? std::min(limit, count) : count;
  listed.resize(static_cast<std::size_t>(keep));
  c.commits = std::move(listed);
  c.more = std::max(c.total_commits, count) - keep;
  c.present = c.total_commits > 0 || count > 0;
  return c;
}

// -- archives ----------------------------------------------------------------

http_request
github_archive_request(const github_api& api, const std::string& repo,
                       std::string_view kind, const std::string& sha) {
  auto req = github_request(
    api, "GET", "repos/" + repo + "/" + std::string{kind} + "/" + sha);
  // The 302 is the answer: its Location is the archive.
  req.follow_redirects = false;
  return req;
}

caf::expected<std::string>
github_archive_link(const http_response& res, std::string_view kind,
                    const std::string& repo, const std::string& sha) {
  auto what = "GitHub's " + std::string{kind} + " of " + repo + " at "
              + short_sha(sha);
  auto failed = [](std::string why) {
    return make_error(ec::request_failed, std::move(why));
  };
  if (res.status >= 300 && res.status < 400) {
    auto location = header_value(res, "location");
    if (!location.empty())
      return location;
    return failed(what + ": a redirect without a Location");
  }
  if (res.status == 401 || res.status == 403 || res.status == 404)
    return failed("could not get " + what + " (" + describe(res)
                  + "): can GITHUB_TOKEN read the repository?");
  return failed("could not get " + what + " (" + describe(res) + ")");
}

} // namespace heaven
