#include "actors/statuses.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/validate.hpp"

namespace heaven {

namespace {

/// `endpoint` and `path` joined with exactly one slash.
std::string join_url(std::string endpoint, std::string_view path) {
  while (!endpoint.empty() && endpoint.back() == '/')
    endpoint.pop_back();
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return endpoint + "/" + std::string{path};
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
                 {"Authorization", "token " + api.token},
                 {"User-Agent", "heaven"}};
  if (req.method == "POST")
    req.headers.emplace_back("Content-Type", "application/json");
  return req;
}

std::string status_body(const github_status& s) {
  nlohmann::json body;
  body["state"] = s.state;
  body["description"] = truncate_description(s.description, 140);
  if (!s.log_url.empty()) {
    body["log_url"] = s.log_url;
    // Older GitHub Enterprise knows only target_url.
    body["target_url"] = s.log_url;
  }
  if (!s.environment_url.empty())
    body["environment_url"] = s.environment_url;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

github_status status_of(const outbox_row& row) {
  auto j = nlohmann::json::parse(row.body, nullptr, false);
  if (!j.is_object())
    throw std::runtime_error("status row " + std::to_string(row.id)
                             + " is not a JSON object");
  github_status s;
  try {
    s.repo = j.at("repo").get<std::string>();
    s.github_id = j.at("github_id").get<int64_t>();
    s.state = j.at("state").get<std::string>();
    s.description = j.value("description", "");
    s.environment_url = j.value("environment_url", "");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("status row " + std::to_string(row.id) + ": "
                             + e.what());
  }
  return s;
}

int64_t status_deployment(const outbox_row& row) {
  auto j = nlohmann::json::parse(row.body, nullptr, false);
  if (!j.is_object())
    return 0;
  auto i = j.find("deployment_id");
  return i != j.end() && i->is_number_integer() ? i->get<int64_t>() : 0;
}

courier status_courier(github_api api,
                       std::function<std::string(int64_t)> log_url) {
  courier c;
  c.kind = "status";
  c.describe = [](const outbox_row& row) {
    auto s = status_of(row);
    return "status " + s.state + " of " + s.repo + " deployment "
           + std::to_string(s.github_id);
  };
  c.request = [api, log_url](const outbox_row& row)
    -> std::optional<http_request> {
    auto s = status_of(row);
    if (api.token.empty()) {
      spdlog::info("status {} of {} deployment {} ({}) not posted: "
                   "GITHUB_TOKEN is not set",
                   s.state, s.repo, s.github_id, s.description);
      return std::nullopt;
    }
    if (auto id = status_deployment(row); id > 0 && log_url)
      s.log_url = log_url(id);
    auto req = github_request(api, "POST", statuses_path(s));
    req.body = status_body(s);
    return req;
  };
  c.lookup = [api](const outbox_row& row) -> std::optional<http_request> {
    auto s = status_of(row);
    // Newest first: one page holds any status heaven posted lately.
    return github_request(api, "GET", statuses_path(s) + "?per_page=100");
  };
  c.found = [](const outbox_row& row, const http_response& res) {
    auto s = status_of(row);
    auto wanted = truncate_description(s.description, 140);
    auto list = nlohmann::json::parse(res.body, nullptr, false);
    if (!list.is_array())
      return false;
    for (auto& x : list) {
      if (!x.is_object())
        continue;
      auto state = x.find("state");
      auto description = x.find("description");
      if (state != x.end() && state->is_string() && *state == s.state
          && description != x.end() && description->is_string()
          && *description == wanted)
        return true;
    }
    return false;
  };
  c.credentials_check = [api]() -> std::optional<http_request> {
    return github_request(api, "GET", "rate_limit");
  };
  return c;
}

} // namespace heaven
