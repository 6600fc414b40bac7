/// Chat notifications: the NOTIFY dispatcher that hears every
/// `deployment_status` event, and one NOTIFIER actor per configured chat
/// service (Slack, HipChat, Campfire, Flowdock, a generic webhook).
///
/// The receiver sends `(notify_atom, deployment_notice)` to the dispatcher.
/// For a successful `deploy` the dispatcher adds the commits since the last
/// recorded revision (when HEAVEN_NOTIFIER_DISPLAY_COMMITS is on) and records
/// the new revision; then it hands the notice to every notifier. Each notifier
/// formats the notice its own way (actors/notifiers/<service>.cpp) and
/// delivers its messages strictly in order through the http_client actor,
/// retrying 5xx, 429 and network failures with doubling backoff. A chat
/// service that is down only delays its own queue: nothing else waits on it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/config.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// How every notifier delivers its messages.
struct delivery_options {
  /// Attempts per message for 5xx, 429 and network failures (at least 1);
  /// other 4xx answers are never retried.
  int attempts = 5;
  /// Wait before the first retry; doubles with each further attempt.
  std::chrono::milliseconds first_backoff{1000};
  /// Whole-request timeout of one attempt, in milliseconds.
  int64_t timeout_ms = 10000;
  /// At most this many messages wait in one service's queue; when a new one
  /// would exceed it, the oldest waiting one (never the one in flight) is
  /// dropped with an error log.
  std::size_t queue_limit = 1000;
};

/// The defaults, with `attempts` from HEAVEN_NOTIFY_RETRIES.
delivery_options delivery_options_from(const settings& cfg);

/// The chat services `cfg` configures, in the order spawn_notifiers spawns
/// them: "slack" (SLACK_WEBHOOK_URL set), "hipchat" (HIPCHAT_TOKEN),
/// "campfire" (CAMPFIRE_TOKEN), "flowdock" (FLOWDOCK_FLOW_TOKENS), "webhook"
/// (HEAVEN_NOTIFY_WEBHOOK_URL).
std::vector<std::string> configured_notifiers(const settings& cfg);

/// Spawns one notifier actor per configured chat service (see
/// configured_notifiers). A service whose settings cannot work (Campfire
/// without CAMPFIRE_SUBDOMAIN while its endpoint needs one, FLOWDOCK_FLOW_TOKENS
/// that is not a JSON object of strings) is logged as an error and skipped.
/// The caller owns the actors: send them an exit at shutdown.
std::vector<notifier_actor> spawn_notifiers(caf::actor_system& sys,
                                            const settings& cfg,
                                            http_client_actor http,
                                            delivery_options opts);

/// What the NOTIFY dispatcher needs.
struct notify_config {
  /// For GitHub's compare API.
  http_client_actor http;
  /// For the last revision of (repo, environment) and recording the new one
  /// (absent: no commit list and nothing recorded).
  store_actor store;
  /// OCTOKIT_API_ENDPOINT.
  std::string api_endpoint = "https://api.github.com/";
  /// GITHUB_TOKEN (`Authorization: token ...` on the compare request; no
  /// header when empty).
  std::string github_token;
  /// HEAVEN_NOTIFIER_DISPLAY_COMMITS.
  bool display_commits = false;
  /// HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT (0: all commits GitHub lists).
  int64_t display_commits_limit = 0;
  /// OCTOKIT_WEB_ENDPOINT: the repository's page when the event names none.
  std::string web_endpoint = "https://github.com/";
  /// Every notice goes to each of these, in arrival order per
  /// repository+environment.
  std::vector<notifier_actor> notifiers;
  /// Timeout of the compare request and of the store's revision answer.
  int64_t compare_timeout_ms = 30000;
};

/// The dispatcher's configuration from heaven's settings.
notify_config notify_config_from(const settings& cfg, http_client_actor http,
                                 store_actor store,
                                 std::vector<notifier_actor> notifiers);

/// Spawns the NOTIFY dispatcher. Notices of one repository+environment are
/// handed on in the order they arrived, even while a successful deploy
/// waits for its commit list; other repositories and environments never
/// wait on it. A compare or store failure is logged and the notice goes out
/// without a commit list. The caller owns the actor: send it an exit at
/// shutdown (the notifiers are not stopped with it).
notify_actor spawn_notify(caf::actor_system& sys, notify_config cfg);

} // namespace heaven
