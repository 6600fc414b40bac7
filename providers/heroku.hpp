/// The HEROKU provider: a build through Heroku's Platform API, from GitHub's
/// tarball of the exact sha. No process, no checkout: an HTTP conversation.
#pragma once

#include <string>

#include "messages/registry.hpp"
#include "providers/api_common.hpp"

namespace heaven {

/// What the heroku provider needs besides the job.
struct heroku_config : api_config {
  /// Heroku Platform API base ("https://api.heroku.com/").
  std::string endpoint;
  /// HEROKU_API_KEY ("" → the deployment ends in `error` saying so).
  std::string api_key;
};

/// The factory that spawns one HEROKU provider actor per deployment (how it
/// works: providers/heroku.cpp). Register it as not needing a checkout.
provider_factory heroku_provider(heroku_config cfg);

} // namespace heaven
