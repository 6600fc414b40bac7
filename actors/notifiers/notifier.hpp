/// What the chat services share: the texts every service starts from, and
/// each service's formatter. Internal to heaven_notify (the public API is
/// actors/notify.hpp).
///
/// The texts follow the Rails Heaven's wording so users' rooms read the same
/// (`<user>` is payload.notify.user_name, else .user, else the deployment's
/// creator, else "unknown"; `<id>` is GitHub's deployment id):
///
///   start (pending, in_progress):
///     "<user> is deploying <app>/tree/<ref> to <env>"
///   success: "<user>'s <env> deployment of <app> is done! "
///   failure: "<user>'s <env> deployment of <app> failed. "
///   error:   "<user>'s <env> deployment of <app> has errors. <description>"
///   queued / inactive / anything else (the generic webhook only):
///     "<user>'s <env> deployment of <app> is <state>"
///
/// Each service links the user and the application its own way (see its
/// file) and may add a suffix (HipChat: Heaven's ascii face, Campfire: the log
/// link); a suffix is joined with exactly one space (trailing spaces of the
/// sentence are dropped first).
///
/// The commit list of a successful deploy (plain; Slack links it) is a second
/// message:
///
///   "Total Commits: <N>\n<A> Additions, <D> Deletions, <C> Changes\n"
///   then one line per commit, newest first: "<sha:8> by <author>: <subject>"
///   then, when some were left out: "And <M> more commits... <compare url>"
///   ("commit" for one), lines joined by "\n", no trailing newline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "actors/notify.hpp"
#include "base/config.hpp"
#include "base/text.hpp"
#include "messages/types.hpp"

namespace heaven::notifiers {

// -- shared texts ------------------------------------------------------------

/// True for the states the chat services announce: pending, in_progress
/// (both as the start message), success, failure, error.
bool announced(std::string_view state);

/// True for pending and in_progress.
bool start_state(std::string_view state);

/// Heaven's ascii face for a state: pending/in_progress "•̀.̫•́✧",
/// success "(◕‿◕)", failure "ಠﭛಠ", error "¯\_(ツ)_/¯", else "٩◔̯◔۶".
std::string face(std::string_view state);

/// The pieces of Heaven's sentence, each already in the service's markup.
struct sentence_parts {
  std::string user;
  std::string environment;
  /// The application, as it appears in terminal messages.
  std::string app;
  /// The application at its ref, as it appears in the start message.
  std::string app_tree;
  /// Put before the description of an error message (Slack: the face).
  std::string before_description;
  std::string description;
  std::string state;
};

/// Heaven's sentence for `p.state` (see the top of this file).
std::string sentence(const sentence_parts& p);

/// The sentence in plain text: user and app by name, `<app>/tree/<ref>`.
std::string plain_message(const deployment_notice& n);

/// GitHub's comparison page of `base...sha` of the repository at `repo` (its
/// page, so GitHub Enterprise links stay on its host).
std::string compare_url(const std::string& repo, const std::string& base,
                        const std::string& sha);

/// `text` with trailing spaces dropped, one space and `suffix` (or `text`
/// unchanged when `suffix` is empty).
std::string with_suffix(std::string text, std::string_view suffix);

/// The plain commit list (see the top of this file).
std::string changes_text(const commit_changes& c);

/// "Total Commits: N", `between`, "A Additions, D Deletions, C Changes".
std::string changes_summary(const commit_changes& c, std::string_view between);

/// "And <M> more commits..." ("commit" for one).
std::string more_commits(int64_t more);

/// payload.notify's user as the notice carries it, else "unknown".
std::string chat_user(const deployment_notice& n);

/// The repository's page: the notice's `repo_url`, else
/// `<web_endpoint>/<repo>`; no trailing slash.
std::string repo_url(const deployment_notice& n,
                     const std::string& web_endpoint);

/// `s` with &, <, >, " and ' as HTML entities.
std::string html_escape(std::string_view s);

/// `body` as compact JSON text; invalid UTF-8 (a commit message, a
/// description) becomes U+FFFD instead of failing.
std::string to_text(const nlohmann::json& body);

/// A POST of `body` as application/json to `url`.
http_request json_post(std::string url, std::string body);

/// "<state> of <repo> deployment <id> to <env>" for logs.
std::string describe(const deployment_notice& n);

// -- the services (one file each) -------------------------------------------
// Each formats a notice into its messages, in order (none: not announced),
// with the service's secrets in them: formatting is done at delivery, so no
// secret is ever stored. The same notice and delivery id always give the
// same messages.

/// actors/notifiers/slack.cpp (SLACK_WEBHOOK_URL).
formatter slack(const settings& cfg);

/// actors/notifiers/hipchat.cpp (HIPCHAT_TOKEN).
formatter hipchat(const settings& cfg);

/// actors/notifiers/campfire.cpp (CAMPFIRE_TOKEN); empty when its settings
/// cannot work (logged).
formatter campfire(const settings& cfg);

/// actors/notifiers/flowdock.cpp (FLOWDOCK_FLOW_TOKENS); empty when its
/// settings cannot work (logged).
formatter flowdock(const settings& cfg);

/// actors/notifiers/generic_webhook.cpp (HEAVEN_NOTIFY_WEBHOOK_URL); the
/// delivery id is its X-Heaven-Delivery.
formatter webhook(const settings& cfg);

} // namespace heaven::notifiers
