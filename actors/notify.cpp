#include "actors/notify.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <optional>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/notifiers/notifier.hpp"
#include "actors/sigv4.hpp"

namespace heaven {

// -- the notifiers ------------------------------------------------------------

delivery_options delivery_options_from(const settings& cfg) {
  delivery_options opts;
  opts.attempts = static_cast<int>(std::clamp<int64_t>(cfg.notify_retries, 1,
                                                       1000));
  return opts;
}

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

std::vector<notifier_actor> spawn_notifiers(caf::actor_system& sys,
                                            const settings& cfg,
                                            http_client_actor http,
                                            delivery_options opts) {
  using spawner = notifier_actor (*)(caf::actor_system&, const settings&,
                                     http_client_actor, delivery_options);
  static const std::map<std::string, spawner> spawners = {
    {"slack", &notifiers::spawn_slack},
    {"hipchat", &notifiers::spawn_hipchat},
    {"campfire", &notifiers::spawn_campfire},
    {"flowdock", &notifiers::spawn_flowdock},
    {"webhook", &notifiers::spawn_webhook},
  };
  std::vector<notifier_actor> result;
  for (const auto& name : configured_notifiers(cfg)) {
    auto actor = spawners.at(name)(sys, cfg, http, opts);
    if (actor) {
      spdlog::info("notify: {} is notified of deployment statuses", name);
      result.push_back(std::move(actor));
    }
  }
  return result;
}

// -- the dispatcher -----------------------------------------------------------

notify_config notify_config_from(const settings& cfg, http_client_actor http,
                                 store_actor store,
                                 std::vector<notifier_actor> notifiers) {
  notify_config c;
  c.http = std::move(http);
  c.store = std::move(store);
  c.api_endpoint = cfg.api_endpoint;
  c.github_token = cfg.github_token;
  c.display_commits = cfg.display_commits;
  c.display_commits_limit = cfg.display_commits_limit;
  c.web_endpoint = cfg.web_endpoint;
  c.notifiers = std::move(notifiers);
  return c;
}

namespace {

using nlohmann::json;
using config_ptr = std::shared_ptr<const notify_config>;

/// State of the NOTIFY actor.
struct notify_state {
  static inline const char* name = "notify";
  /// Per repository+environment with a successful deploy being looked up
  /// (revision, compare): the notices that arrived after it, in order.
  std::map<std::string, std::deque<deployment_notice>> waiting;
};

using self_ptr = notify_actor::stateful_pointer<notify_state>;

std::string key_of(const deployment_notice& n) {
  return n.repo + "\n" + n.environment;
}

/// A successful `deploy` records its revision (and may list commits).
bool records_revision(const deployment_notice& n) {
  return n.state == "success" && n.task == "deploy" && !n.sha.empty();
}

std::string text_of(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : "";
}

int64_t number_of(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_number_integer() ? i->get<int64_t>() : 0;
}

const json& object_of(const json& j, const char* key) {
  static const json none = json::object();
  auto i = j.find(key);
  return i != j.end() && i->is_object() ? *i : none;
}

commit_summary summary_of(const json& c) {
  commit_summary s;
  s.sha = text_of(c, "sha");
  s.url = text_of(c, "html_url");
  const auto& author = object_of(c, "author");
  const auto& commit = object_of(c, "commit");
  s.author = text_of(author, "login");
  s.author_url = text_of(author, "html_url");
  if (s.author.empty())
    s.author = text_of(object_of(commit, "author"), "name");
  if (s.author.empty())
    s.author = "unknown";
  auto message = text_of(commit, "message");
  message = message.substr(0, message.find('\n'));
  if (!message.empty() && message.back() == '\r')
    message.pop_back();
  s.message = std::move(message);
  return s;
}

/// GitHub's compare answer as the commit list, newest first, cut to
/// `limit` (0: no cut); nullopt when `body` is not such an answer.
std::optional<commit_changes> parse_compare(const std::string& body,
                                            int64_t limit) {
  auto doc = json::parse(body, nullptr, false);
  if (!doc.is_object())
    return std::nullopt;
  commit_changes c;
  c.url = text_of(doc, "html_url");
  c.total_commits = number_of(doc, "total_commits");
  if (auto files = doc.find("files");
      files != doc.end() && files->is_array())
    for (const auto& f : *files) {
      if (!f.is_object())
        continue;
      c.additions += number_of(f, "additions");
      c.deletions += number_of(f, "deletions");
      c.changes += number_of(f, "changes");
    }
  std::vector<commit_summary> listed;
  if (auto commits = doc.find("commits");
      commits != doc.end() && commits->is_array())
    for (const auto& commit : *commits)
      if (commit.is_object())
        listed.push_back(summary_of(commit));
  std::reverse(listed.begin(), listed.end()); // GitHub: oldest first.
  auto count = static_cast<int64_t>(listed.size());
  auto keep = limit > 0 ? std::min(limit, count) : count;
  listed.resize(static_cast<std::size_t>(keep));
  c.commits = std::move(listed);
  c.more = std::max(c.total_commits, count) - keep;
  c.present = c.total_commits > 0 || count > 0;
  return c;
}

void fan_out(self_ptr self, const config_ptr& cfg,
             const deployment_notice& n) {
  spdlog::debug("notify: {} goes to {} notifier(s)", notifiers::describe(n),
                cfg->notifiers.size());
  for (const auto& notifier : cfg->notifiers)
    self->send(notifier, notify_atom::value, n);
}

void enrich(self_ptr self, const config_ptr& cfg, deployment_notice n);

/// Hands on what waited behind `key`'s lookup, up to the next lookup.
void resume(self_ptr self, const config_ptr& cfg, const std::string& key) {
  auto& waiting = self->state.waiting;
  auto i = waiting.find(key);
  if (i == waiting.end())
    return;
  while (!i->second.empty()) {
    auto next = std::move(i->second.front());
    i->second.pop_front();
    if (records_revision(next)) {
      enrich(self, cfg, std::move(next));
      return;
    }
    fan_out(self, cfg, next);
  }
  waiting.erase(i);
}

/// The lookup of `n` is over: record its revision, hand it on, go on.
void finish(self_ptr self, const config_ptr& cfg, const deployment_notice& n) {
  if (cfg->store)
    self->send(cfg->store, revision_atom::value, n.repo, n.environment, n.sha);
  fan_out(self, cfg, n);
  resume(self, cfg, key_of(n));
}

void compare(self_ptr self, const config_ptr& cfg, deployment_notice n,
             const std::string& base) {
  http_request req;
  req.method = "GET";
  req.url = notifiers::join_url(cfg->api_endpoint,
                                "repos/" + n.repo + "/compare/"
                                  + sigv4::uri_encode(base, false) + "..."
                                  + sigv4::uri_encode(n.sha, false));
  req.headers = {{"Accept", "application/vnd.github+json"},
                 {"User-Agent", "heaven"}};
  if (!cfg->github_token.empty())
    req.headers.emplace_back("Authorization", "token " + cfg->github_token);
  req.timeout_ms = cfg->compare_timeout_ms;
  auto what = n.repo + " " + notifiers::short_sha(base) + "..."
              + notifiers::short_sha(n.sha);
  auto done = [self, cfg, n, what](const http_response& res) mutable {
    std::optional<commit_changes> changes;
    if (res.status == 200)
      changes = parse_compare(res.body, cfg->display_commits_limit);
    if (changes) {
      n.changes = std::move(*changes);
    } else {
      auto why = res.status == 0 ? res.error
                 : res.status == 200
                   ? std::string{"not a comparison"}
                   : "HTTP " + std::to_string(res.status);
      spdlog::warn("notify: comparing {} failed ({}); the message goes out "
                   "without the commit list",
                   what, why);
    }
    finish(self, cfg, n);
  };
  self->request(cfg->http, caf::infinite, std::move(req))
    .then([done](http_response& res) mutable { done(res); },
          [done, self](caf::error& err) mutable {
            http_response res;
            res.error = "http client: " + self->system().render(err);
            done(res);
          });
}

/// Looks up the commits since the last revision when asked to, then
/// finishes `n`. Its key is in `waiting` already.
void enrich(self_ptr self, const config_ptr& cfg, deployment_notice n) {
  if (!cfg->display_commits || !cfg->store) {
    finish(self, cfg, n);
    return;
  }
  auto timeout = std::chrono::milliseconds{cfg->compare_timeout_ms};
  self->request(cfg->store, timeout, revision_atom::value, n.repo,
                n.environment)
    .then(
      [self, cfg, n](std::string& base) {
        if (base.empty() || base == n.sha) {
          spdlog::debug("notify: no earlier revision of {} on {}; no commit "
                        "list",
                        n.repo, n.environment);
          finish(self, cfg, n);
          return;
        }
        compare(self, cfg, n, base);
      },
      [self, cfg, n](caf::error& err) {
        spdlog::warn("notify: the last revision of {} on {} is unknown ({}); "
                     "the message goes out without the commit list",
                     n.repo, n.environment, self->system().render(err));
        finish(self, cfg, n);
      });
}

notify_actor::behavior_type notify(self_ptr self, config_ptr cfg) {
  return {
    [=](notify_atom, deployment_notice& n) {
      if (n.repo_url.empty())
        n.repo_url = notifiers::repo_url(n, cfg->web_endpoint);
      auto key = key_of(n);
      auto& waiting = self->state.waiting;
      if (auto i = waiting.find(key); i != waiting.end()) {
        i->second.push_back(std::move(n));
        return;
      }
      if (!records_revision(n)) {
        fan_out(self, cfg, n);
        return;
      }
      waiting.emplace(key, std::deque<deployment_notice>{});
      enrich(self, cfg, std::move(n));
    },
  };
}

} // namespace

notify_actor spawn_notify(caf::actor_system& sys, notify_config cfg) {
  return sys.spawn(notify,
                   std::make_shared<const notify_config>(std::move(cfg)));
}

} // namespace heaven
