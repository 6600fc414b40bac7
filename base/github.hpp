/// GitHub's REST API as plain code: the requests heaven sends, all with one
/// set of headers, and what heaven reads from the answers. The actors
/// (statuses, auto deploy, notify) and the providers send these through
/// the HTTP client. The token goes in the `Authorization` header only:
/// never in a URL, never in a log line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "messages/errors.hpp"
#include "messages/types.hpp"

namespace heaven {

/// Where GitHub's API is, and heaven's token there.
struct github_api {
  /// API base, e.g. "https://api.github.com/" (trailing slash optional).
  std::string endpoint;
  /// Sent as `Authorization: token ...`; none when empty.
  std::string token;
};

/// A request to GitHub's API at `path` (relative to `api.endpoint`) with
/// heaven's headers: Accept, User-Agent, `Authorization: token ...` (with a
/// token), and Content-Type for a POST.
http_request github_request(const github_api& api, std::string method,
                            std::string_view path);

/// `GET /rate_limit`: succeeds exactly when the token is good.
http_request rate_limit_request(const github_api& api);

/// "HTTP 422: Validation Failed": the status and GitHub's `message` when
/// the answer has one; curl's error when no answer came.
std::string github_problem(const http_response& res);

// -- deployment statuses -----------------------------------------------------

/// The JSON body GitHub expects for `s` (description truncated to 140).
std::string status_body(const github_status& s);

/// `POST /repos/{repo}/deployments/{id}/statuses` with status_body(s).
http_request create_status_request(const github_api& api,
                                   const github_status& s);

/// `GET /repos/{repo}/deployments/{id}/statuses?per_page=100`: newest
/// first, so one page holds any status heaven posted lately.
http_request list_statuses_request(const github_api& api,
                                   const github_status& s);

/// Whether the list of statuses `body` holds one with the state and the
/// (truncated) description of `s`.
bool status_listed(const std::string& body, const github_status& s);

// -- deployments -------------------------------------------------------------

/// `POST /repos/{repo}/deployments` with the JSON `body`.
http_request create_deployment_request(const github_api& api,
                                       const std::string& repo,
                                       std::string body);

/// `GET /repos/{repo}/deployments?sha=..&environment=..&task=..&per_page=..`.
http_request
list_deployments_request(const github_api& api, const std::string& repo,
                         const std::string& sha, std::string_view environment,
                         std::string_view task, int per_page);

// -- commits -----------------------------------------------------------------

/// `GET /repos/{repo}/commits/{sha}/status`: the combined status.
http_request combined_status_request(const github_api& api,
                                     const std::string& repo,
                                     const std::string& sha);

/// `GET /repos/{repo}/compare/{base}...{head}`.
http_request compare_request(const github_api& api, const std::string& repo,
                             std::string_view base, std::string_view head);

/// The string `key` at the top of the JSON object `body` ("" when there is
/// none): a combined status's `state`, a comparison's `status` ("ahead").
std::string top_level_string(const std::string& body, const char* key);

/// GitHub's compare answer `body` as the commit list, newest first, cut to
/// `limit` (0: no cut); nullopt when `body` is not such an answer.
std::optional<commit_changes> parse_compare(const std::string& body,
                                            int64_t limit);

// -- archives ----------------------------------------------------------------

/// The request for GitHub's link to an archive of `repo` at `sha`:
/// `GET <api>repos/<repo>/<kind>/<sha>`, `kind` "tarball" or "zipball". GitHub
/// answers 302 with the link in `Location` (private repositories: it carries
/// a short-lived token, so never log it).
http_request
github_archive_request(const github_api& api, const std::string& repo,
                       std::string_view kind, const std::string& sha);

/// The archive link in GitHub's answer `res` (the 302's Location), or why
/// there is none (ec::request_failed, worded for a status description).
caf::expected<std::string>
github_archive_link(const http_response& res, std::string_view kind,
                    const std::string& repo, const std::string& sha);

} // namespace heaven
