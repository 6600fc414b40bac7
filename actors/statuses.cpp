#include "actors/statuses.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/rows.hpp"

namespace heaven {

status_row read_status_row(const outbox_row& row) {
  auto j = row_object(row, "status");
  status_row out;
  auto& s = out.status;
  try {
    s.repo = j.at("repo").get<std::string>();
    s.github_id = j.at("github_id").get<int64_t>();
    auto state = j.at("state").get<std::string>();
    if (auto known = parse<status_state>(state))
      s.state = *known;
    else
      throw std::runtime_error("status row " + std::to_string(row.id)
                               + ": unknown state '" + state + "'");
    s.description = j.value("description", "");
    s.environment_url = j.value("environment_url", "");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("status row " + std::to_string(row.id) + ": "
                             + e.what());
  }
  auto id = j.find("deployment_id");
  if (id != j.end() && id->is_number_integer())
    out.deployment = id->get<int64_t>();
  auto env = j.find("environment");
  if (env != j.end() && env->is_string())
    out.environment = env->get<std::string>();
  return out;
}

github_status status_of(const outbox_row& row) {
  return read_status_row(row).status;
}

github_api courier_api(const std::shared_ptr<github_app>& app, github_api api,
                       const std::string& repo) {
  if (!app)
    return api;
  auto t = app->token_at_hand(repo);
  if (!t)
    throw not_yet("the GitHub App's token for " + repo + " is being fetched");
  if (!t->error.empty())
    throw not_now(t->error);
  api.token = std::move(t->token);
  return api;
}

bool renew_token(const std::shared_ptr<github_app>& app,
                 const std::string& repo, const http_request& sent) {
  auto token = github_token_of(sent);
  return app && !token.empty() && app->refused(repo, token);
}

courier status_courier(github_api api,
                       std::function<std::string(int64_t)> log_url,
                       std::shared_ptr<github_app> app) {
  courier c;
  c.kind = "status";
  c.describe = [](const outbox_row& row) {
    auto s = status_of(row);
    return "status " + to_string(s.state) + " of " + s.repo + " deployment "
           + std::to_string(s.github_id);
  };
  // A status row names the deployment, its repository and (rows queued
  // since the pages) its environment.
  c.about = [](const outbox_row& row) {
    auto x = read_status_row(row);
    return log_context{x.deployment, std::move(x.status.repo),
                       std::move(x.environment)};
  };
  c.request = [api, log_url,
               app](const outbox_row& row) -> std::optional<http_request> {
    auto x = read_status_row(row);
    auto& s = x.status;
    auto repo_api = courier_api(app, api, s.repo);
    if (repo_api.token.empty()) {
      spdlog::info("status {} of {} deployment {} ({}) not posted: "
                   "GITHUB_TOKEN is not set{}",
                   to_string(s.state), s.repo, s.github_id, s.description,
                   app ? " and the GitHub App is not installed on it" : "");
      return std::nullopt;
    }
    if (x.deployment > 0 && log_url)
      s.log_url = log_url(x.deployment);
    return create_status_request(repo_api, s);
  };
  c.lookup = [api, app](const outbox_row& row) -> std::optional<http_request> {
    auto s = status_of(row);
    return list_statuses_request(courier_api(app, api, s.repo), s);
  };
  if (app)
    c.renew = [app](const outbox_row& row, const http_request& sent) {
      return renew_token(app, status_of(row).repo, sent);
    };
  c.found = [](const outbox_row& row, const http_response& res) {
    return status_listed(res.body, status_of(row));
  };
  c.credentials_check = [api]() -> std::optional<http_request> {
    return rate_limit_request(api);
  };
  return c;
}

} // namespace heaven
