/// The HEROKU provider: a build through Heroku's Platform API, from GitHub's
/// tarball of the exact sha. No process, no checkout: an HTTP conversation.
#pragma once

#include <cstdint>
#include <string>

#include "messages/interfaces.hpp"
#include "providers/registry.hpp"

namespace heaven {

/// What the heroku provider needs besides the job.
struct heroku_config {
  http_client_actor http;
  /// Heroku Platform API base ("https://api.heroku.com/").
  std::string endpoint;
  /// HEROKU_API_KEY ("" → the deployment ends in `error` saying so).
  std::string api_key;
  /// GitHub API base and token (for the tarball link).
  std::string github_api;
  std::string github_token;
  /// Milliseconds between two polls of the build.
  int64_t poll_interval_ms = 3000;
  /// Attempts per request for transient failures (5xx, 429, network).
  int attempts = 5;
  /// First wait before a retry; doubles each time (429 uses Retry-After).
  int64_t first_backoff_ms = 1000;
};

/// The factory that spawns one HEROKU provider actor per deployment (how it
/// works: providers/heroku.cpp). Register it as not needing a checkout.
provider_factory heroku_provider(heroku_config cfg);

} // namespace heaven
