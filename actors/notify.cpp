#include "actors/notify.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/notifiers/notifier.hpp"
#include "actors/statuses.hpp"
#include "base/github.hpp"
#include "base/notices.hpp"
#include "base/rows.hpp"

namespace heaven {

using nlohmann::json;

// -- the chat services --------------------------------------------------------

std::vector<std::string> configured_notifiers(const settings& cfg) {
  std::vector<std::string> names;
  if (!cfg.slack_webhook_url.empty())
    names.emplace_back("slack");
  if (!cfg.hipchat_token.empty())
    names.emplace_back("hipchat");
  if (!cfg.campfire_token.empty())
    names.emplace_back("campfire");
  if (!cfg.flowdock_flow_tokens.empty())
    names.emplace_back("flowdock");
  if (!cfg.notify_webhook_url.empty())
    names.emplace_back("webhook");
  return names;
}

std::vector<chat_service> chat_services(const settings& cfg) {
  using maker = formatter (*)(const settings&);
  static const std::map<std::string, maker> makers = {
    {"slack", &notifiers::slack},       {"hipchat", &notifiers::hipchat},
    {"campfire", &notifiers::campfire}, {"flowdock", &notifiers::flowdock},
    {"webhook", &notifiers::webhook},
  };
  std::vector<chat_service> result;
  for (const auto& name : configured_notifiers(cfg))
    if (auto format = makers.at(name)(cfg))
      result.push_back({name, std::move(format)});
  return result;
}

std::string chat_kind(const std::string& name) {
  return "chat." + name;
}

namespace {

/// What a chat row holds: the notice, which of its messages, and the
/// message's delivery id.
struct chat_row {
  deployment_notice notice;
  std::size_t message = 0;
  std::string delivery;
  std::string base;
};

chat_row read_chat_row(const outbox_row& row) {
  auto j = row_object(row, "chat");
  chat_row x;
  x.notice = notice_of(j["notice"]);
  auto k = j.value("message", int64_t{0});
  if (k < 0)
    throw std::runtime_error("chat row " + std::to_string(row.id)
                             + " names no message");
  x.message = static_cast<std::size_t>(k);
  x.delivery = j.value("delivery", "");
  x.base = j.value("base", "");
  return x;
}

std::string chat_row_body(const deployment_notice& n, std::size_t message,
                          const std::string& delivery,
                          const std::string& base) {
  json body = {{"notice", notice_json(n)},
               {"message", message},
               {"delivery", delivery},
               {"base", base}};
  return notifiers::to_text(body);
}

/// The deployment a notice is about, the log context of its lines: its
/// repository and environment. The notice names GitHub's deployment, not
/// heaven's, so the id stays unknown.
log_context about(const deployment_notice& n) {
  return {0, n.repo, n.environment};
}

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

} // namespace

courier chat_courier(chat_service s) {
  courier c;
  c.kind = chat_kind(s.name);
  auto format = std::move(s.format);
  // The row's message as the service makes it now: its secrets are added
  // here, at delivery, and never stored.
  auto message = [format](const outbox_row& row) {
    auto x = read_chat_row(row);
    auto msgs = format(x.notice, x.delivery, x.base);
    if (x.message >= msgs.size())
      throw std::runtime_error("no message " + std::to_string(x.message)
                               + " of " + notifiers::describe(x.notice)
                               + " (the settings changed?)");
    return std::move(msgs[x.message]);
  };
  c.request = [message](const outbox_row& row) -> std::optional<http_request> {
    return message(row).request;
  };
  c.describe = [name = s.name, message](const outbox_row& row) {
    return name + ": " + message(row).label;
  };
  c.about = [](const outbox_row& row) {
    return about(read_chat_row(row).notice);
  };
  c.hopeless = [](const http_response& res) {
    return res.status >= 400 && res.status < 500 && res.status != 408
           && res.status != 429;
  };
  return c;
}

// -- the notices --------------------------------------------------------------

notice_config notice_config_from(const settings& cfg,
                                 std::vector<chat_service> services,
                                 std::shared_ptr<github_app> app) {
  notice_config c;
  c.app = std::move(app);
  c.api_endpoint = cfg.api_endpoint;
  c.github_token = cfg.github_token;
  c.display_commits = cfg.display_commits;
  c.display_commits_limit = cfg.display_commits_limit;
  c.web_endpoint = cfg.web_endpoint;
  c.services = std::move(services);
  return c;
}

namespace {

/// What a notice row holds: the notice and the revision before it.
struct notice_row {
  deployment_notice notice;
  std::string base;
};

notice_row read_notice_row(const outbox_row& row) {
  auto j = row_object(row, "notice");
  return {notice_of(j["notice"]), j.value("base", "")};
}

/// Whether the notice of `x` gets a commit list under `cfg`.
bool wants_changes(const notice_config& cfg, const notice_row& x) {
  return cfg.display_commits && !cfg.services.empty()
         && records_revision(x.notice) && !x.base.empty()
         && x.base != x.notice.sha;
}

/// "octo/app ba5e0000...c0ffee00", for logs.
std::string comparison(const notice_row& x) {
  return x.notice.repo + " " + short_sha(x.base, 8) + "..."
         + short_sha(x.notice.sha, 8);
}

} // namespace

courier notice_courier(notice_config config) {
  auto cfg = std::make_shared<const notice_config>(std::move(config));
  // Used only inside the notice outbox actor, one call at a time.
  std::random_device seed;
  auto rng = std::make_shared<std::mt19937_64>((uint64_t{seed()} << 32)
                                               ^ uint64_t{seed()});
  courier c;
  c.kind = notice_kind;
  c.request = [cfg](const outbox_row& row) -> std::optional<http_request> {
    auto x = read_notice_row(row);
    if (!wants_changes(*cfg, x))
      return std::nullopt;
    auto api = courier_api(cfg->app,
                           github_api{cfg->api_endpoint, cfg->github_token},
                           x.notice.repo);
    return compare_request(api, x.notice.repo, x.base, x.notice.sha);
  };
  if (cfg->app)
    c.renew = [cfg](const outbox_row& row, const http_request& sent) {
      return renew_token(cfg->app, read_notice_row(row).notice.repo, sent);
    };
  c.describe = [](const outbox_row& row) {
    return "the commit list of "
           + notifiers::describe(read_notice_row(row).notice);
  };
  c.about = [](const outbox_row& row) {
    return about(read_notice_row(row).notice);
  };
  c.follow_ups = [cfg, rng](const outbox_row& row, const settlement& how) {
    auto x = read_notice_row(row);
    auto& n = x.notice;
    if (n.repo_url.empty())
      n.repo_url = notifiers::repo_url(n, cfg->web_endpoint);
    if (wants_changes(*cfg, x)) {
      std::optional<commit_changes> changes;
      if (how.delivered && how.answer != nullptr)
        changes = parse_compare(how.answer->body, cfg->display_commits_limit);
      if (changes)
        n.changes = std::move(*changes);
      else
        spdlog::warn("notify: comparing {} failed ({}); the messages go out "
                     "without the commit list",
                     comparison(x),
                     how.delivered ? "not a comparison" : "dropped");
    }
    std::vector<outbox_row> rows;
    for (const auto& s : cfg->services) {
      std::vector<outgoing> msgs;
      try {
        msgs = s.format(n, "", x.base);
      } catch (const std::exception& e) {
        spdlog::error("{}: could not format {}: {}", s.name,
                      notifiers::describe(n), e.what());
        continue;
      }
      if (msgs.empty())
        spdlog::debug("{}: {} is not announced", s.name,
                      notifiers::describe(n));
      for (std::size_t k = 0; k < msgs.size(); ++k)
        rows.push_back(
          outbox_row{0, chat_kind(s.name), s.name,
                     chat_row_body(n, k, delivery_id(*rng), x.base), 0});
    }
    spdlog::debug("notify: {} makes {} chat message(s)", notifiers::describe(n),
                  rows.size());
    return rows;
  };
  return c;
}

namespace {

/// A setting's number of attempts as the outbox takes it.
int attempts(int64_t n) {
  return static_cast<int>(std::min<int64_t>(n, 1'000'000));
}

} // namespace

std::vector<outbox_actor>
spawn_chat_outboxes(caf::actor_system& sys, store_actor store,
                    http_client_actor http, const settings& cfg,
                    outbox_options opts, std::shared_ptr<github_app> app) {
  std::vector<outbox_actor> result;
  auto services = chat_services(cfg);
  std::string names;
  for (const auto& s : services) {
    auto o = opts;
    o.max_attempts = attempts(cfg.notify_retries);
    result.push_back(sys.spawn(outbox, store, http, chat_courier(s), o));
    names += (names.empty() ? "" : ", ") + s.name;
  }
  if (!names.empty())
    spdlog::info("heaven tells {} about deployment statuses", names);
  auto o = opts;
  o.max_attempts = attempts(cfg.status_retries);
  result.push_back(sys.spawn(outbox, std::move(store), std::move(http),
                             notice_courier(notice_config_from(
                               cfg, std::move(services), std::move(app))),
                             o));
  return result;
}

} // namespace heaven
