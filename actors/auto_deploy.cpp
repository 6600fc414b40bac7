#include "actors/auto_deploy.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/auto_deployments.hpp"
#include "base/github.hpp"
#include "base/github_app.hpp"
#include "base/log_format.hpp"
#include "base/retry.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

using nlohmann::json;

/// How long the store may take to answer `latest` or `claim`.
constexpr auto store_timeout = std::chrono::seconds(60);

// -- small helpers -----------------------------------------------------------

/// True for "owner/name" made of the characters GitHub allows in both, so
/// that it can go into a URL path as it is.
bool valid_repo(std::string_view repo) {
  auto slash = repo.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == repo.size())
    return false;
  auto ok = [](std::string_view part) {
    if (part == "." || part == "..")
      return false;
    return std::all_of(part.begin(), part.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
             || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    });
  };
  return ok(repo.substr(0, slash)) && ok(repo.substr(slash + 1));
}

/// Where the GitHub requests of `cfg` go.
github_api github_of(const auto_deploy_config& cfg) {
  return {cfg.api_endpoint, cfg.token};
}

/// The JSON body creating the auto deployment of `sha` to `env`: the last
/// deployment's payload with `actor` and `sha` updated (a payload that is
/// not an object starts over from {}).
std::string deployment_body(const commit_status_event& ev,
                            const deployed_environment& env) {
  auto payload = json::parse(env.payload_json, nullptr, false);
  if (!payload.is_object())
    payload = json::object();
  if (!ev.author.empty())
    payload["actor"] = ev.author;
  payload["sha"] = ev.sha;
  json body = {{"ref", ev.sha},
               {"environment", env.environment},
               {"task", "deploy"},
               {"auto_merge", false},
               {"payload", std::move(payload)},
               {"description", auto_deploy_description}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

// -- the job: one per status event that may deploy ---------------------------

/// A job's own messages: time to try GitHub call N again.
using job_actor = caf::typed_actor<caf::reacts_to<retry_atom, uint64_t>>;

/// One request to GitHub and what to do with its final answer.
struct github_call {
  http_request req;
  /// What the request is about, for the log.
  std::string what;
  /// The log context of its lines: the repository, and the environment
  /// when the call is for one.
  log_context about;
  /// The repository it is about (its token, with a GitHub App).
  std::string repo;
  /// Attempts made so far.
  int attempt = 0;
  /// A 401 renewed the installation token once.
  bool renewed = false;
  /// Runs once with the final answer (success, or the last failure) and
  /// the number of attempts made.
  std::function<void(const http_response&, int)> done;
};

/// State of an auto deploy job.
struct job_state {
  static inline const char* name = "auto_deploy_job";
  auto_deploy_config cfg;
  /// cfg's attempts and backoff.
  retry_policy retry;
  commit_status_event ev;
  /// The log context of the job's lines: its repository (no deployment
  /// yet, no environment).
  log_context about;
  /// Calls in flight or waiting for their retry, by id.
  std::map<uint64_t, github_call> calls;
  uint64_t next_call = 1;
  /// Requests (store or GitHub) whose answer is still to come, retries
  /// waiting included; the job quits when none is left.
  int open = 0;
};

using job_ptr = job_actor::stateful_pointer<job_state>;

/// "octo/app@1234abcd".
std::string subject(job_ptr self) {
  return self->state.ev.repo + "@" + short_sha(self->state.ev.sha, 8);
}

/// The log context of the job's lines about `env`: its repository and
/// that environment (no heaven deployment yet).
log_context about(job_ptr self, const deployed_environment& env) {
  return {0, self->state.ev.repo, env.environment};
}

/// One asynchronous step began.
void opened(job_ptr self) {
  ++self->state.open;
}

/// One asynchronous step ended (after its follow-ups began): the job quits
/// once nothing is left.
void closed(job_ptr self) {
  if (--self->state.open <= 0)
    self->quit();
}

/// Sends call `id` once more.
void send_call(job_ptr self, uint64_t id) {
  auto& call = self->state.calls.at(id);
  ++call.attempt;
  auto on_answer = [self, id](http_response& res) {
    auto i = self->state.calls.find(id);
    if (i == self->state.calls.end())
      return;
    auto& call = i->second;
    auto ctx = call.about;
    log_scope in{ctx};
    const auto& app = self->state.cfg.app;
    // A GitHub App's token refused: once more at once with a new one.
    if (res.status == 401 && app && !call.renewed
        && app->refused(call.repo, github_token_of(call.req))) {
      call.renewed = true;
      --call.attempt;
      send_call(self, id);
      return;
    }
    const auto& retry = self->state.retry;
    // GETs change nothing: what is transient is worth another attempt.
    if (retry_allowed(retry, res, call.attempt)) {
      auto wait = retry_wait(retry, call.attempt, res);
      spdlog::warn("{}", retry_line(call.what, github_problem(res),
                                    call.attempt, retry.attempts, wait));
      self->delayed_send(self, wait, retry_atom::value, id);
      return;
    }
    auto done = std::move(call.done);
    auto attempts = call.attempt;
    self->state.calls.erase(i);
    done(res, attempts);
    closed(self);
  };
  if (const auto& app = self->state.cfg.app) {
    // Never waits for GitHub here: without the token at hand, the app's
    // thread fetches it and then has the call sent (not counted twice).
    auto t = app->token_at_hand(call.repo, [me = job_actor{self}, id] {
      caf::anon_send(me, retry_atom::value, id);
    });
    if (!t) {
      --call.attempt;
      return;
    }
    if (!t->error.empty()) {
      // Like a request that got no answer: retried as its policy says.
      http_response res;
      res.error = t->error;
      on_answer(res);
      return;
    }
    set_github_token(call.req, t->token);
  }
  self->request(self->state.cfg.http, caf::infinite, call.req)
    .then([on_answer](http_response& res) { on_answer(res); },
          [self, on_answer](caf::error& err) {
            http_response res;
            res.error = "http client: " + self->system().render(err);
            on_answer(res);
          });
}

/// Starts `call` (retried as its policy says) after `delay`; `call.done`
/// gets the answer.
void call_github(job_ptr self, github_call call,
                 std::chrono::milliseconds delay = std::chrono::milliseconds{
                   0}) {
  opened(self);
  call.req.timeout_ms = self->state.cfg.request_timeout_ms;
  auto id = self->state.next_call++;
  self->state.calls.emplace(id, std::move(call));
  if (delay.count() > 0)
    self->delayed_send(self, delay, retry_atom::value, id);
  else
    send_call(self, id);
}

/// "Not auto-deploying octo/app@1234abcd to production: <why>".
void skip(job_ptr self, const deployed_environment& env,
          const std::string& why) {
  auto ctx = about(self, env);
  log_scope in{ctx};
  spdlog::info("Not auto-deploying {} to {}: {}", subject(self),
               env.environment, why);
}

/// Step 3 for one environment: claim the sha so it deploys once, and queue
/// the creation of its GitHub deployment with the claim (the "deploy"
/// outbox creates it, also after a restart).
void claim(job_ptr self, const deployed_environment& env) {
  const auto& ev = self->state.ev;
  opened(self);
  auto_deployment x{ev.repo, env.app, env.environment, ev.sha,
                    deployment_body(ev, env)};
  self->request(self->state.cfg.store, store_timeout, claim_atom::value, x)
    .then(
      [self, env](bool claimed) {
        auto ctx = about(self, env);
        log_scope in{ctx};
        if (claimed)
          spdlog::info("Auto-deploying {} to {} ({}): creating its GitHub "
                       "deployment",
                       subject(self), env.environment, env.app);
        else
          skip(self, env, "already auto-deployed");
        closed(self);
      },
      [self, env](caf::error& err) {
        auto ctx = about(self, env);
        log_scope in{ctx};
        spdlog::error("Not auto-deploying {} to {}: the store could not "
                      "claim it: {}",
                      subject(self), env.environment,
                      self->system().render(err));
        closed(self);
      });
}

/// Steps 1 and 2 for one environment: not locked, and the sha is ahead of
/// the one deployed there.
void consider(job_ptr self, const deployed_environment& env) {
  const auto& ev = self->state.ev;
  if (env.locked) {
    skip(self, env,
         ev.repo + " is locked on " + env.environment + " by "
           + env.lock.actor);
    return;
  }
  if (!valid_sha(env.sha)) {
    skip(self, env, "the last deployment there has no full sha");
    return;
  }
  github_call call;
  call.req = compare_request(github_of(self->state.cfg), ev.repo, env.sha,
                             ev.sha);
  call.repo = ev.repo;
  call.what = "comparing " + short_sha(env.sha, 8) + "..."
              + short_sha(ev.sha, 8) + " of " + ev.repo;
  call.about = about(self, env);
  call.done = [self, env](const http_response& res, int) {
    if (res.status != 200) {
      spdlog::error("Not auto-deploying {} to {}: could not compare it with "
                    "{}, deployed there last: {}",
                    subject(self), env.environment, short_sha(env.sha, 8),
                    github_problem(res));
      return;
    }
    auto status = top_level_string(res.body, "status");
    if (status != "ahead") {
      skip(self, env,
           "compared with " + short_sha(env.sha, 8)
             + ", deployed there last, it is "
             + (status.empty() ? "unknown" : status) + ", not ahead");
      return;
    }
    claim(self, env);
  };
  call_github(self, std::move(call));
}

/// The store's answer to `latest`: check the combined status once, then
/// every environment on its own.
void on_latest(job_ptr self, std::vector<deployed_environment> envs) {
  const auto& ev = self->state.ev;
  if (envs.empty()) {
    spdlog::info("Not auto-deploying {}: heaven has not deployed {} "
                 "successfully yet",
                 subject(self), ev.repo);
    return;
  }
  github_call call;
  call.req = combined_status_request(github_of(self->state.cfg), ev.repo,
                                     ev.sha);
  call.repo = ev.repo;
  call.what = "reading the combined status of " + subject(self);
  call.about = self->state.about;
  call.done = [self, envs = std::move(envs)](const http_response& res, int) {
    if (res.status != 200) {
      spdlog::error("Not auto-deploying {}: could not read its combined "
                    "status: {}",
                    subject(self), github_problem(res));
      return;
    }
    auto state = top_level_string(res.body, "state");
    if (state != "success") {
      spdlog::info("Not auto-deploying {}: its combined status is {}, not "
                   "success",
                   subject(self), state.empty() ? "unknown" : state);
      return;
    }
    for (auto& env : envs)
      consider(self, env);
  };
  call_github(self, std::move(call));
}

/// An auto deploy job for `ev`: asks the store, then GitHub, then deploys;
/// quits when every environment is done, or when `parent` exits.
job_actor::behavior_type auto_deploy_job(job_ptr self, auto_deploy_config cfg,
                                         commit_status_event ev,
                                         auto_deploy_actor parent) {
  auto& retry = self->state.retry;
  retry.attempts = cfg.attempts;
  retry.first_backoff = std::chrono::milliseconds{cfg.first_backoff_ms};
  // The wait doubles 16 times at most, as it always did.
  retry.max_backoff = retry.first_backoff * (int64_t{1} << 16);
  retry.jitter = cfg.jitter;
  self->state.cfg = std::move(cfg);
  self->state.ev = std::move(ev);
  self->state.about = {0, self->state.ev.repo, {}};
  log_scope in{self->state.about};
  self->monitor(parent);
  self->set_down_handler([self](caf::down_msg&) {
    log_scope in{self->state.about};
    spdlog::warn("Stopping the auto deploy of {}: heaven's auto_deploy "
                 "actor is gone",
                 subject(self));
    self->quit();
  });
  opened(self);
  self
    ->request(self->state.cfg.store, store_timeout, latest_atom::value,
              self->state.ev.repo)
    .then(
      [self](std::vector<deployed_environment>& envs) {
        log_scope in{self->state.about};
        on_latest(self, std::move(envs));
        closed(self);
      },
      [self](caf::error& err) {
        log_scope in{self->state.about};
        spdlog::error("Not auto-deploying {}: the store could not say what "
                      "heaven deployed last: {}",
                      subject(self), self->system().render(err));
        closed(self);
      });
  return {
    [self](retry_atom, uint64_t id) {
      log_scope in{self->state.about};
      if (self->state.calls.count(id) != 0)
        send_call(self, id);
    },
  };
}

/// True when `ev` may lead to a deployment; logs why not otherwise.
bool worth_a_look(const commit_status_event& ev) {
  if (ev.state != "success") {
    spdlog::debug("Ignoring commit status ({}) for {}@{}: not success",
                  ev.state, ev.repo, short_sha(ev.sha, 8));
    return false;
  }
  if (std::find(ev.branches.begin(), ev.branches.end(), ev.default_branch)
        == ev.branches.end()
      || ev.default_branch.empty()) {
    spdlog::info("Ignoring commit status ({}) for {}+{}@{}: not on the "
                 "default branch {}",
                 ev.state, ev.repo,
                 ev.branches.empty() ? std::string{"none"}
                                     : ev.branches.front(),
                 short_sha(ev.sha, 8), ev.default_branch);
    return false;
  }
  if (!valid_repo(ev.repo) || !valid_sha(ev.sha)) {
    spdlog::warn("Ignoring commit status ({}) for {}@{}: not a repository "
                 "name and a full sha",
                 ev.state, ev.repo, short_sha(ev.sha, 8));
    return false;
  }
  return true;
}

} // namespace

auto_deploy_actor::behavior_type auto_deploy(auto_deploy_actor::pointer self,
                                             auto_deploy_config cfg) {
  cfg.attempts = std::max(cfg.attempts, 1);
  cfg.first_backoff_ms = std::max<int64_t>(cfg.first_backoff_ms, 0);
  return {
    [self, cfg](status_atom, commit_status_event& ev) {
      // The repository the status names, when it names one.
      log_context ctx{0, valid_repo(ev.repo) ? ev.repo : std::string{}, {}};
      log_scope in{ctx};
      if (!worth_a_look(ev))
        return;
      if (cfg.token.empty() && !cfg.app) {
        spdlog::warn("Not auto-deploying {}@{}: GITHUB_TOKEN is not set "
                     "(GitHub's API needs it)",
                     ev.repo, short_sha(ev.sha, 8));
        return;
      }
      self->spawn(auto_deploy_job, cfg, std::move(ev), auto_deploy_actor{self});
    },
  };
}

} // namespace heaven
