// The generic outgoing WEBHOOK (HEAVEN_NOTIFY_WEBHOOK_URL), for chat systems
// heaven doesn't know. Announces every state, queued and inactive included,
// as one JSON document per notice (the commit list inside it).
//
// POST <url> with headers Content-Type: application/json,
// X-Heaven-Event: deployment_status, X-Heaven-Delivery: a random UUID (the
// same on every attempt of one message), and, when
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
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/notifiers/notifier.hpp"
#include "actors/webhook.hpp"

namespace heaven::notifiers {

namespace {

using nlohmann::json;

struct webhook_setup {
  std::string url;
  std::string secret;
  delivery_options opts;
  /// Only ever used inside the notifier actor.
  std::shared_ptr<std::mt19937_64> rng;
};

/// A random (version 4) UUID.
std::string delivery_id(std::mt19937_64& rng) {
  uint64_t hi = rng();
  uint64_t lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return text;
}

json changes_json(const commit_changes& c) {
  if (!c.present)
    return nullptr;
  json commits = json::array();
  for (const auto& commit : c.commits)
    commits.push_back({{"sha", commit.sha},
                       {"author", commit.author},
                       {"message", commit.message},
                       {"url", commit.url}});
  return {{"total_commits", c.total_commits},
          {"additions", c.additions},
          {"deletions", c.deletions},
          {"changes", c.changes},
          {"url", c.url},
          {"more", c.more},
          {"commits", std::move(commits)}};
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
            {"changes", changes_json(n.changes)}};
  return to_text(b);
}

std::vector<outgoing> format(const webhook_setup& s,
                             const deployment_notice& n) {
  auto req = json_post(s.url, body(n), s.opts);
  req.headers.emplace_back("X-Heaven-Event", "deployment_status");
  req.headers.emplace_back("X-Heaven-Delivery", delivery_id(*s.rng));
  if (!s.secret.empty())
    req.headers.emplace_back("X-Heaven-Signature-256",
                             "sha256=" + hmac_sha256_hex(s.secret, req.body));
  std::vector<outgoing> out;
  out.push_back({std::move(req), describe(n)});
  return out;
}

} // namespace

notifier_actor spawn_webhook(caf::actor_system& sys, const settings& cfg,
                             http_client_actor http, delivery_options opts) {
  std::random_device seed;
  auto rng = std::make_shared<std::mt19937_64>(
    (uint64_t{seed()} << 32) ^ uint64_t{seed()});
  auto s = std::make_shared<const webhook_setup>(webhook_setup{
    cfg.notify_webhook_url, cfg.notify_webhook_secret, opts, std::move(rng)});
  return spawn_notifier(sys, "webhook", std::move(http), opts,
                        [s](const deployment_notice& n) {
                          return format(*s, n);
                        });
}

} // namespace heaven::notifiers
