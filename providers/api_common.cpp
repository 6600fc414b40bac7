#include "providers/api_common.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/github_app.hpp"

namespace heaven {

create_answer classify_create(const http_response& res) {
  if (res.permanent)
    return create_answer::failed;
  if (res.status >= 200 && res.status < 300)
    return create_answer::created;
  if (res.status == 429
      || (res.status == 503 && !header_value(res, "retry-after").empty()))
    return create_answer::refused;
  if (res.status == 0 || res.status >= 500)
    return create_answer::unknown;
  return create_answer::failed;
}

std::string nested_string(const nlohmann::json& doc, const char* outer,
                          const char* inner) {
  if (!doc.is_object())
    return {};
  auto o = doc.find(outer);
  if (o == doc.end() || !o->is_object())
    return {};
  auto i = o->find(inner);
  if (i == o->end() || !i->is_string())
    return {};
  return i->get<std::string>();
}

retry_policy retry_policy_of(const api_config& cfg) {
  retry_policy p;
  p.attempts = std::max(cfg.attempts, 1);
  p.first_backoff = std::chrono::milliseconds(cfg.first_backoff_ms);
  p.max_backoff = p.first_backoff * (int64_t{1} << 16);
  p.jitter = cfg.jitter;
  return p;
}

std::optional<github_api> github_of(const api_config& cfg,
                                    const std::string& repo,
                                    std::function<void()> ready) {
  github_api api{cfg.github_api, cfg.github_token};
  if (!cfg.github_app)
    return api;
  auto t = cfg.github_app->token_at_hand(repo, std::move(ready));
  if (!t)
    return std::nullopt;
  if (!t->error.empty()) {
    spdlog::warn("{}: asking with GITHUB_TOKEN instead", t->error);
    return api;
  }
  api.token = std::move(t->token);
  return api;
}

bool renew_after_401(const api_config& cfg, const std::string& repo,
                     const http_response& res, bool& renewed) {
  if (res.status != 401 || renewed || !cfg.github_app
      || !cfg.github_app->refused(repo, {}))
    return false;
  renewed = true;
  return true;
}

std::optional<retry_plan> next_retry(const http_response& res, int& attempt,
                                     const api_config& cfg,
                                     const std::string& what) {
  auto policy = retry_policy_of(cfg);
  if (!retry_allowed(policy, res, attempt))
    return std::nullopt;
  auto delay = retry_wait(policy, attempt, res);
  auto line = retry_line(what, describe(res), attempt, policy.attempts, delay);
  ++attempt;
  return retry_plan{delay, std::move(line)};
}

} // namespace heaven
