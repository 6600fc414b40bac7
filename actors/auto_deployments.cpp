#include "actors/auto_deployments.hpp"

#include <charconv>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/retry.hpp"
#include "base/rows.hpp"
#include "base/text.hpp"

namespace heaven {

namespace {

using nlohmann::json;

/// Deployments per page of the lookup (GitHub's maximum).
constexpr int lookup_page_size = 100;

/// Pages read at most in one lookup (filtered by sha, environment and task,
/// the list is rarely longer than one).
constexpr int max_lookup_pages = 10;

/// What a "deploy" row holds.
struct deploy_row {
  std::string repo;
  std::string app;
  std::string environment;
  std::string sha;
  json request;
};

deploy_row read_row(const outbox_row& row) {
  auto j = row_object(row, "deploy");
  deploy_row x;
  try {
    x.repo = j.at("repo").get<std::string>();
    x.app = j.at("app").get<std::string>();
    x.environment = j.at("environment").get<std::string>();
    x.sha = j.at("sha").get<std::string>();
    x.request = j.at("request");
  } catch (const json::exception& e) {
    throw std::runtime_error("deploy row " + std::to_string(row.id) + ": "
                             + e.what());
  }
  if (!x.request.is_object())
    throw std::runtime_error("deploy row " + std::to_string(row.id)
                             + " holds no request");
  return x;
}

/// "the auto deployment of octo/app@1234abcd to production (app)".
std::string describe(const deploy_row& x) {
  return "the auto deployment of " + x.repo + "@" + short_sha(x.sha, 8) + " to "
         + x.environment + " (" + x.app + ")";
}

std::string string_field(const json& doc, const char* key) {
  if (!doc.is_object())
    return {};
  auto i = doc.find(key);
  if (i == doc.end() || !i->is_string())
    return {};
  return i->get<std::string>();
}

/// The app heaven would deploy for GitHub deployment `d`: its payload's
/// `name`, else the repository's name (as the webhook reads it).
std::string app_of(const json& d, const std::string& repo) {
  json payload = d.is_object() && d.contains("payload") ? d["payload"] : json{};
  if (payload.is_string()) // Older deployments keep the payload as text.
    payload = json::parse(payload.get<std::string>(), nullptr, false);
  auto name = string_field(payload, "name");
  if (!name.empty())
    return name;
  return repo.substr(repo.find('/') + 1);
}

/// The task `x` creates: its request's ("deploy" when it names none).
std::string task_of(const deploy_row& x) {
  auto task = string_field(x.request, "task");
  return task.empty() ? "deploy" : task;
}

/// Whether `d`, from GitHub's list, is the deployment `x` creates.
bool created_for(const json& d, const deploy_row& x) {
  return d.is_object() && string_field(d, "sha") == x.sha
         && string_field(d, "environment") == x.environment
         && string_field(d, "task") == task_of(x)
         && string_field(d, "description")
              == string_field(x.request, "description")
         && app_of(d, x.repo) == x.app;
}

/// The auto deployment of `x` in the list `res`, or a discarded value.
json find_in(const http_response& res, const deploy_row& x) {
  auto list = json::parse(res.body, nullptr, false);
  if (list.is_array())
    for (auto& d : list)
      if (created_for(d, x))
        return d;
  return json(json::value_t::discarded);
}

/// The number after "&page=" in `url` (1 when there is none).
int page_of(const std::string& url) {
  auto at = url.rfind("&page=");
  if (at == std::string::npos)
    return 1;
  int page = 1;
  auto text = url.substr(at + 6);
  std::from_chars(text.data(), text.data() + text.size(), page);
  return page;
}

std::string id_text(const json& d) {
  return d.is_object() && d.contains("id") ? d["id"].dump() : "(no id)";
}

} // namespace

courier deployment_courier(github_api api, std::shared_ptr<github_app> app) {
  courier c;
  c.kind = deploy_kind;
  c.describe = [](const outbox_row& row) { return describe(read_row(row)); };
  // No heaven deployment yet: the repository and the environment.
  c.about = [](const outbox_row& row) {
    auto x = read_row(row);
    return log_context{0, x.repo, x.environment};
  };
  c.request = [api, app](const outbox_row& row) -> std::optional<http_request> {
    auto x = read_row(row);
    auto repo_api = courier_api(app, api, x.repo);
    if (repo_api.token.empty()) {
      spdlog::warn("{} is not created: GITHUB_TOKEN is not set{} (GitHub's "
                   "API needs it)",
                   describe(x),
                   app ? " and the GitHub App is not installed on it" : "");
      return std::nullopt;
    }
    return create_deployment_request(
      repo_api, x.repo,
      x.request.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  c.lookup = [api, app](const outbox_row& row) -> std::optional<http_request> {
    auto x = read_row(row);
    return list_deployments_request(courier_api(app, api, x.repo), x.repo,
                                    x.sha, x.environment, task_of(x),
                                    lookup_page_size);
  };
  c.found = [](const outbox_row& row, const http_response& res) {
    return !find_in(res, read_row(row)).is_discarded();
  };
  c.next_page = [](const outbox_row&, const http_request& looked,
                   const http_response& res) -> std::optional<http_request> {
    auto list = json::parse(res.body, nullptr, false);
    auto page = page_of(looked.url);
    if (!list.is_array() || list.empty() || page >= max_lookup_pages
        || header_value(res, "link").find("rel=\"next\"") == std::string::npos)
      return std::nullopt;
    auto next = looked;
    if (page > 1)
      next.url.erase(next.url.rfind("&page="));
    next.url += "&page=" + std::to_string(page + 1);
    return next;
  };
  // A second deployment would deploy twice: when GitHub's list cannot be
  // read, the creation is given up rather than risked.
  c.send_unseen = false;
  c.credentials_check = [api]() -> std::optional<http_request> {
    return rate_limit_request(api);
  };
  if (app)
    c.renew = [app](const outbox_row& row, const http_request& sent) {
      return renew_token(app, read_row(row).repo, sent);
    };
  c.follow_ups = [](const outbox_row& row, const settlement& how) {
    if (how.delivered && how.answer != nullptr) {
      auto x = read_row(row);
      if (how.found)
        spdlog::info("Auto-deploying {}@{} to {} ({}): found GitHub "
                     "deployment {}, created by an earlier request",
                     x.repo, short_sha(x.sha, 8), x.environment, x.app,
                     id_text(find_in(*how.answer, x)));
      else
        spdlog::info("Auto-deploying {}@{} to {} ({}): created GitHub "
                     "deployment {}",
                     x.repo, short_sha(x.sha, 8), x.environment, x.app,
                     id_text(json::parse(how.answer->body, nullptr, false)));
    }
    return std::vector<outbox_row>{};
  };
  return c;
}

} // namespace heaven
