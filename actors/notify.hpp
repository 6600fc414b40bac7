/// Chat notifications through the store's outbox, so that a restart loses
/// none.
///
/// The store writes one "notice" row for every `deployment_status` event it
/// accepts (see base/notices.hpp), in the transaction that records the
/// event; for a successful `deploy` the row also names the revision deployed
/// before it, decided in that transaction. The notice courier (one OUTBOX
/// actor of kind "notice", a stream per GitHub deployment) asks GitHub's
/// compare API for the commits since that revision when
/// HEAVEN_NOTIFIER_DISPLAY_COMMITS is on, then turns the notice into one row
/// per configured chat service and per message that service makes of it
/// (Slack's commit list is a second message), added in the transaction that
/// settles the notice. Each chat service has an OUTBOX actor of its own (kind
/// "chat.<service>", one stream): its courier formats the row with the
/// service's formatter at delivery (actors/notifiers/<service>.cpp), secrets
/// included, and the outbox delivers the messages strictly in order,
/// retrying across restarts. A chat service that is down only delays its own
/// messages.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/outbox.hpp"
#include "base/config.hpp"
#include "messages/types.hpp"

namespace heaven {

class github_app;

/// One chat message ready to go.
struct outgoing {
  http_request request;
  /// What it is, for logs: never a URL or a body (they may hold a token).
  std::string label;
};

/// How a chat service turns a notice into its messages, in order (none: the
/// service does not announce this notice). `delivery` names the message
/// (the generic webhook's X-Heaven-Delivery); `base` is its notice row's base
/// (notice_row_body: the sha a successful deploy replaced, the sha deployed
/// when a start was reported; "" when none or not known).
/// Deterministic: the same notice, delivery and base give the same messages
/// on every attempt.
using formatter = std::function<std::vector<outgoing>(
  const deployment_notice& n, const std::string& delivery,
  const std::string& base)>;

/// A configured chat service.
struct chat_service {
  /// "slack", "hipchat", "campfire", "flowdock" or "webhook".
  std::string name;
  formatter format;
};

/// The chat services `cfg` configures, in this order: "slack"
/// (SLACK_WEBHOOK_URL set), "hipchat" (HIPCHAT_TOKEN), "campfire"
/// (CAMPFIRE_TOKEN), "flowdock" (FLOWDOCK_FLOW_TOKENS), "webhook"
/// (HEAVEN_NOTIFY_WEBHOOK_URL).
std::vector<std::string> configured_notifiers(const settings& cfg);

/// The configured chat services with their formatters. A service whose
/// settings cannot work (Campfire without CAMPFIRE_SUBDOMAIN while its
/// endpoint needs one, FLOWDOCK_FLOW_TOKENS that is not a JSON object of
/// strings) is logged as an error and left out.
std::vector<chat_service> chat_services(const settings& cfg);

/// The kind of chat service `name`'s rows: "chat.<name>".
std::string chat_kind(const std::string& name);

/// The courier of chat service `s`'s rows (kind chat_kind(s.name)): the
/// row's message as `s.format` makes it now, with the row's delivery id.
/// Any 4xx but 401, 408 and 429 drops the message (a chat service that
/// refuses it will refuse it again); a 401 drops it too (no lookup, no
/// credentials check: chat services have neither).
courier chat_courier(chat_service s);

/// What the notice courier needs.
struct notice_config {
  /// OCTOKIT_API_ENDPOINT, for GitHub's compare API.
  std::string api_endpoint = "https://api.github.com/";
  /// GITHUB_TOKEN (`Authorization: token ...` on the compare request; no
  /// header when empty).
  std::string github_token;
  /// The GitHub App (null: none): the compare request carries the
  /// repository's installation token.
  std::shared_ptr<github_app> app;
  /// HEAVEN_NOTIFIER_DISPLAY_COMMITS.
  bool display_commits = false;
  /// HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT (0: all commits GitHub lists).
  int64_t display_commits_limit = 0;
  /// OCTOKIT_WEB_ENDPOINT: the repository's page when the event names none.
  std::string web_endpoint = "https://github.com/";
  /// Every notice goes to each of these.
  std::vector<chat_service> services;
};

/// The notice courier's configuration from heaven's settings.
notice_config notice_config_from(const settings& cfg,
                                 std::vector<chat_service> services,
                                 std::shared_ptr<github_app> app = nullptr);

/// The courier of "notice" rows. Its request is the comparison of the
/// row's earlier revision with its sha (`GET repos/<repo>/compare/A...B`)
/// for a successful `deploy` when `display_commits` is on, there is an
/// earlier revision, and some chat service is configured; otherwise there
/// is nothing to send. When the row leaves the outbox, its follow-ups are
/// one row per chat service and message: the notice with the commit list
/// (when the comparison answered), the message's index, and a delivery id
/// of its own (a random UUID, the same on every attempt). A comparison that
/// cannot be had (dropped after its attempts, a 404) leaves the list out;
/// the messages go all the same.
courier notice_courier(notice_config cfg);

/// Spawns the outboxes of chat notifications: one per chat service
/// (chat_services(cfg)), dropping a message after HEAVEN_NOTIFY_RETRIES
/// attempts (0: none), and the notice outbox, which tries a comparison
/// HEAVEN_STATUS_RETRIES times; both with `opts` otherwise. Always spawns
/// the notice outbox, so that notices settle also without a chat service.
/// The caller owns the actors: send them an exit at shutdown.
std::vector<outbox_actor>
spawn_chat_outboxes(caf::actor_system& sys, store_actor store,
                    http_client_actor http, const settings& cfg,
                    outbox_options opts,
                    std::shared_ptr<github_app> app = nullptr);

} // namespace heaven
