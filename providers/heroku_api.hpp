/// Heroku's Platform API (v3) as plain code: the requests the HEROKU
/// provider sends, and what it reads from Heroku's answers. The
/// conversation itself is the actor in providers/heroku.cpp.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "providers/heroku.hpp"

namespace heaven::heroku_api {

/// How far Heroku's clock may lag heaven's: a build stamped up to this long
/// before heaven's first build request may still be the one it started.
/// Generous for NTP-synchronised clocks (well under a second apart), small
/// next to the minutes between two deployments of one sha to one app.
inline constexpr auto clock_skew = std::chrono::seconds(60);

/// Builds per page of the list. Heroku answers newest first, so the build
/// heaven looks for is on the first page unless more than this many builds
/// were created on the app since heaven's request.
inline constexpr int list_page_size = 20;

/// Pages read at most in one lookup (a safety stop; see list_page_size).
inline constexpr int max_list_pages = 10;

/// The first 8 characters of a build id, as descriptions show it.
std::string short_id(const std::string& id);

/// The mark heaven puts on its builds (`source_blob.version_description`)
/// so that a lookup tells its own build from one started for the same sha by
/// someone else: "heaven deployment 42 of octo/app".
std::string build_mark(const provider_job& job);

// -- requests ----------------------------------------------------------------

/// A request to Heroku's Platform API (v3) at `path` with the API key.
http_request heroku_request(const heroku_config& cfg, std::string method,
                            const std::string& path);

/// `POST apps/<app>/builds` of the archive at `source_url`, with the full
/// sha as the version and heaven's mark as the version description.
http_request
create_build_request(const heroku_config& cfg, const std::string& app,
                     const std::string& source_url, const provider_job& job);

/// `GET apps/<app>/builds`, newest first: `created_at ..;
/// order=desc,max=N;` as the Range header, or `next_range` (Heroku's
/// `Next-Range`) when not empty.
http_request list_builds_request(const heroku_config& cfg,
                                 const std::string& app,
                                 const std::string& next_range);

/// `GET apps/<app>/builds/<id>`.
http_request build_request(const heroku_config& cfg, const std::string& app,
                           const std::string& id);

// -- answers -----------------------------------------------------------------

/// Heroku's own words for an error answer ({"id":..., "message":...}).
std::string heroku_message(const http_response& res);

/// The status description for a Heroku answer about `app` that ends the
/// deployment; `what` is what heaven asked ("build octo-app").
std::string heroku_problem(const std::string& app, const std::string& what,
                           const http_response& res);

/// True when `build` has a string id.
bool has_id(const nlohmann::json& build);

/// The build's `status` ("pending", "succeeded", "failed"), or "".
std::string build_status(const nlohmann::json& build);

/// The build's `output_stream_url`, or "".
std::string stream_url(const nlohmann::json& build);

/// When Heroku created `build`, if it says so readably.
std::optional<std::chrono::system_clock::time_point>
created_at(const nlohmann::json& build);

/// Whether `build`, from the app's list, is the one heaven's unanswered
/// request for `job` started: the job's full sha as its version, created no
/// earlier than `cutoff` (heaven's first request less the clock skew), and,
/// when Heroku kept a version description, heaven's mark for the job.
bool ours(const nlohmann::json& build, const provider_job& job,
          std::chrono::system_clock::time_point cutoff);

// -- settings ----------------------------------------------------------------

/// Heroku app names (and ids) use letters, digits and dashes only; anything
/// else must not reach a URL path.
bool valid_app(const std::string& app);

} // namespace heaven::heroku_api
