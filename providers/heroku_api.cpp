#include "providers/heroku_api.hpp"

#include <cctype>

#include <nlohmann/json.hpp>

#include "base/retry.hpp"
#include "base/text.hpp"

namespace heaven::heroku_api {

namespace {

using json = nlohmann::json;

/// The string `key` of the object `build`, or "".
std::string string_of(const json& build, const char* key) {
  if (build.is_object() && build.contains(key) && build[key].is_string())
    return build[key].get<std::string>();
  return {};
}

} // namespace

std::string short_id(const std::string& id) {
  return id.substr(0, 8);
}

std::string build_mark(const provider_job& job) {
  return "heaven deployment " + std::to_string(job.id) + " of "
         + job.request.repo;
}

// -- requests ----------------------------------------------------------------

http_request heroku_request(const heroku_config& cfg, std::string method,
                            const std::string& path) {
  http_request req;
  req.method = std::move(method);
  req.url = join_url(cfg.endpoint, path);
  req.headers = {{"Accept", "application/vnd.heroku+json; version=3"},
                 {"Authorization", "Bearer " + cfg.api_key},
                 {"User-Agent", "heaven"}};
  req.timeout_ms = cfg.request_timeout_ms;
  return req;
}

http_request
create_build_request(const heroku_config& cfg, const std::string& app,
                     const std::string& source_url, const provider_job& job) {
  auto req = heroku_request(cfg, "POST", "apps/" + app + "/builds");
  req.headers.emplace_back("Content-Type", "application/json");
  json body;
  body["source_blob"]["url"] = source_url;
  body["source_blob"]["version"] = job.request.sha;
  body["source_blob"]["version_description"] = build_mark(job);
  req.body = body.dump();
  return req;
}

http_request list_builds_request(const heroku_config& cfg,
                                 const std::string& app,
                                 const std::string& next_range) {
  auto req = heroku_request(cfg, "GET", "apps/" + app + "/builds");
  req.headers.emplace_back("Range", next_range.empty()
                                      ? "created_at ..; order=desc,max="
                                          + std::to_string(list_page_size) + ";"
                                      : next_range);
  return req;
}

http_request build_request(const heroku_config& cfg, const std::string& app,
                           const std::string& id) {
  return heroku_request(cfg, "GET", "apps/" + app + "/builds/" + id);
}

// -- answers -----------------------------------------------------------------

std::string heroku_message(const http_response& res) {
  return string_of(json::parse(res.body, nullptr, false), "message");
}

std::string heroku_problem(const std::string& app, const std::string& what,
                           const http_response& res) {
  auto msg = heroku_message(res);
  auto said = msg.empty() ? "" : ": " + msg;
  switch (res.status) {
    case 401:
      return "Heroku refused HEROKU_API_KEY (401)" + said;
    case 403:
      return "HEROKU_API_KEY may not " + what + " (403)" + said;
    case 404:
      return "Heroku has no app '" + app + "' that HEROKU_API_KEY can see (404)"
             + said;
    case 422:
      return "Heroku refused to " + what + " (422)" + said;
    default:
      return "Heroku could not " + what + " (" + describe(res) + ")" + said;
  }
}

bool has_id(const json& build) {
  return build.is_object() && build.contains("id") && build["id"].is_string();
}

std::string build_status(const json& build) {
  return string_of(build, "status");
}

std::string stream_url(const json& build) {
  return string_of(build, "output_stream_url");
}

std::optional<std::chrono::system_clock::time_point>
created_at(const json& build) {
  if (!build.is_object() || !build.contains("created_at")
      || !build["created_at"].is_string())
    return std::nullopt;
  return parse_time(build["created_at"].get<std::string>());
}

bool ours(const json& build, const provider_job& job,
          std::chrono::system_clock::time_point cutoff) {
  if (!has_id(build)
      || nested_string(build, "source_blob", "version") != job.request.sha)
    return false;
  auto described = nested_string(build, "source_blob", "version_description");
  if (!described.empty() && described != build_mark(job))
    return false;
  auto created = created_at(build);
  return created && *created >= cutoff;
}

// -- settings ----------------------------------------------------------------

bool valid_app(const std::string& app) {
  if (app.empty() || app.size() > 64)
    return false;
  for (unsigned char c : app)
    if (!std::isalnum(c) && c != '-')
      return false;
  return true;
}

} // namespace heaven::heroku_api
