// The generic outgoing WEBHOOK (HEAVEN_NOTIFY_WEBHOOK_URL), for chat systems
// heaven doesn't know. Announces every state, queued and inactive included,
// as one JSON document per notice (the commit list inside it).
//
// POST <url> with headers Content-Type: application/json,
// X-Heaven-Event: deployment_status, X-Heaven-Delivery: the message's
// delivery id (a random UUID the notice courier gave the message when it
// queued it, so the same on every attempt and after a restart), and, when
// HEAVEN_NOTIFY_WEBHOOK_SECRET is set, X-Heaven-Signature-256:
// sha256=<hex HMAC-SHA256(secret, exact body)>. Body:
// {"event": "deployment_status", "state", "repository", "app", "environment",
//  "ref", "sha", "task", "description", "log_url", "environment_url",
//  "deployment_id", "status_id", "user", "room",
//  "message": the plain sentence of notifier.hpp,
//  "changes": null, or {"total_commits", "additions", "deletions",
//     "changes", "url", "more", "commits": [{"sha", "author", "message",
//     "url"}] (newest first)}}.
// The URL may carry a credential: it is never logged.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "actors/notifiers/notifier.hpp"
#include "base/notices.hpp"
#include "base/webhook.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

struct webhook_setup {
  std::string url;
  std::string secret;
};

/// The commit list as the webhook sends it: the stored form without
/// `present` and the authors' URLs; null when there is none.
json webhook_changes(const commit_changes& c) {
  if (!c.present)
    return nullptr;
  auto j = changes_json(c);
  j.erase("present");
  for (auto& commit : j["commits"])
    commit.erase("author_url");
  return j;
}

std::string body(const deployment_notice& n) {
  json b = {{"event", "deployment_status"},
            {"state", n.state},
            {"repository", n.repo},
            {"app", n.app},
            {"environment", n.environment},
            {"ref", n.ref},
            {"sha", n.sha},
            {"task", n.task},
            {"description", n.description},
            {"log_url", n.log_url},
            {"environment_url", n.environment_url},
            {"deployment_id", n.deployment_id},
            {"status_id", n.status_id},
            {"user", chat_user(n)},
            {"room", n.room},
            {"message", plain_message(n)},
            {"changes", webhook_changes(n.changes)}};
  return to_text(b);
}

std::vector<outgoing> format(const webhook_setup& s, const deployment_notice& n,
                             const std::string& delivery) {
  auto req = json_post(s.url, body(n));
  req.headers.emplace_back("X-Heaven-Event", "deployment_status");
  req.headers.emplace_back("X-Heaven-Delivery", delivery);
  if (!s.secret.empty())
    req.headers.emplace_back("X-Heaven-Signature-256",
                             "sha256=" + hmac_sha256_hex(s.secret, req.body));
  std::vector<outgoing> out;
  out.push_back({std::move(req), describe(n)});
  return out;
}

} // namespace

formatter webhook(const settings& cfg) {
  auto s = std::make_shared<const webhook_setup>(
    webhook_setup{cfg.notify_webhook_url, cfg.notify_webhook_secret});
  return [s](const deployment_notice& n, const std::string& delivery,
             const std::string&) { return format(*s, n, delivery); };
}

} // namespace heaven::notifiers
