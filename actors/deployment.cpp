#include "actors/deployment.hpp"

#include <csignal>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/log_book.hpp"
#include "actors/status_poster.hpp"
#include "actors/timer.hpp"
#include "actors/validate.hpp"
#include "actors/workspace.hpp"
#include "providers/registry.hpp"

namespace heaven {

namespace {

using self_ptr = deployment_actor::stateful_pointer<deployment_state>;

std::string short_sha(const std::string& sha) {
  return sha.substr(0, 7);
}

void say(self_ptr self, const std::string& text) {
  self->state.ctx->logs->append(self->state.id, stream::heaven, text);
}

void post(self_ptr self, const std::string& state,
          const std::string& description) {
  auto& st = self->state;
  github_status s;
  s.repo = st.req.repo;
  s.github_id = st.req.github_id;
  s.state = state;
  s.description = description; // The poster truncates to GitHub's 140.
  s.log_url = log_url(*st.ctx, st.id);
  s.environment_url = st.req.environment_url;
  self->send(st.poster, status_atom::value, std::move(s));
}

void record(self_ptr self, const std::string& state,
            const std::string& description) {
  auto& st = self->state;
  self->send(st.ctx->store, update_atom::value,
             deployment_update{st.id, state, description});
}

/// Ends the deployment: one terminal status, one record, the log closed, the
/// checkout removed, the receiver told. Runs at most once.
void finish(self_ptr self, std::string state, std::string description) {
  auto& st = self->state;
  if (st.at == phase::finished)
    return;
  // A checkout still being made must be removed once it is there: stay
  // until `prepared` arrives (the kill above makes that soon).
  bool awaiting_checkout = st.at == phase::preparing && st.checkout_requested;
  st.at = phase::finished;
  if (st.timed_out) {
    state = "failure";
    description = "Deployment timed out after "
                  + std::to_string(st.ctx->cfg.deployment_timeout)
                  + " seconds";
  } else if (!st.shutdown_reason.empty()) {
    state = "error";
    description = st.shutdown_reason;
  }
  spdlog::info("deployment {} of {} to {} ended: {}: {}", st.id, st.req.repo,
               st.req.environment, state, description);
  if (st.timed_out) {
    say(self, "DEPLOYMENT TIMED OUT AFTER "
                + std::to_string(st.ctx->cfg.deployment_timeout)
                + " SECONDS");
  } else {
    say(self, state + ": " + description);
  }
  st.ctx->logs->close(st.id);
  record(self, state, description);
  post(self, state, description);
  if (st.children_left) {
    spdlog::warn("deployment {} leaves its processes running in {} "
                 "(TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0)",
                 st.id, st.workspace);
  } else if (!st.workspace.empty() && st.ctx->remove_workspace) {
    st.ctx->remove_workspace(self->system(), st.workspace);
  }
  if (!st.key.empty())
    self->send(st.receiver, done_atom::value, st.key);
  if (st.timer)
    self->send_exit(st.timer, caf::exit_reason::user_shutdown);
  if (!awaiting_checkout)
    self->quit();
}

/// The first rule that `req` breaks, or "" when it may run.
std::string check(const context& ctx, const deployment_request& req) {
  if (req.provider.empty())
    return "payload.config.provider is missing: heaven doesn't know how to "
           "deploy " + req.repo;
  if (!ctx.providers || !ctx.providers->find(req.provider)) {
    std::string known;
    if (ctx.providers)
      for (auto& n : ctx.providers->names())
        known += (known.empty() ? "" : ", ") + n;
    return "unknown provider '" + req.provider + "' (heaven knows: " + known
           + ")";
  }
  if (!valid_ref(req.ref))
    return "invalid ref '" + req.ref + "'";
  if (!valid_task(req.task))
    return "invalid task '" + req.task + "': use deploy or deploy:<name>";
  if (!valid_sha(req.sha))
    return "invalid sha '" + req.sha + "': expected 40 hex digits";
  if (!valid_clone_url(req.clone_url))
    return "invalid repository.clone_url '"
           + url_without_credentials(req.clone_url) + "'";
  return {};
}

/// Stops whatever runs: the checkout's git, or the provider.
void stop_work(self_ptr self) {
  auto& st = self->state;
  auto& cfg = st.ctx->cfg;
  // TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0 spares a timed-out deployment's
  // processes; a shutdown spares none (they would outlive heaven).
  bool terminate = cfg.terminate_children || !st.shutdown_reason.empty();
  if (st.at == phase::preparing) {
    // End now; the actor stays until the checkout reports, to remove it.
    // The git running now gets SIGTERM, and any started later SIGKILL.
    if (st.prep_pgid > 0)
      kill(-st.prep_pgid, SIGTERM);
    finish(self, "failure", "");
  } else if (st.at == phase::running) {
    if (terminate && !cfg.terminate_children) {
      // The provider was told to spare its processes: end them here.
      self->send(st.provider, kill_atom::value);
    }
    self->send(st.provider, cancel_atom::value);
    if (!terminate) {
      st.children_left = true;
      finish(self, "failure", "");
    }
  }
}

void start_provider(self_ptr self, std::string workspace) {
  auto& st = self->state;
  st.workspace = std::move(workspace);
  st.prep_pgid = 0;
  if (st.timed_out || !st.shutdown_reason.empty()) {
    finish(self, "failure", "");
    return;
  }
  st.at = phase::running;
  auto factory = st.ctx->providers->find(st.req.provider);
  provider_job job;
  job.id = st.id;
  job.request = st.req;
  job.workspace = st.workspace;
  job.env = st.ctx->child_env;
  job.kill_grace_ms = st.ctx->cfg.kill_grace * 1000;
  job.terminate_children = st.ctx->cfg.terminate_children;
  auto description = "Deploying " + st.req.ref + " ("
                     + short_sha(st.req.sha) + ") to " + st.req.environment
                     + " with " + st.req.provider;
  say(self, description);
  record(self, "running", description);
  post(self, "in_progress", description);
  st.provider = (*factory)(self->system(), std::move(job),
                           caf::actor_cast<caf::actor>(self));
  self->monitor(st.provider);
}

/// Asks for a private checkout of the sha; `prepared` follows.
void prepare_checkout(self_ptr self) {
  auto& st = self->state;
  auto& ctx = st.ctx;
  workspace_plan plan;
  plan.data_dir = ctx->cfg.data_dir;
  plan.id = st.id;
  plan.clone_url = st.req.clone_url;
  plan.sha = st.req.sha;
  plan.token = ctx->cfg.github_token;
  // The token only goes to GitHub itself (github.com or the Enterprise
  // host), never to another host a payload names.
  plan.token_host = url_host(ctx->cfg.web_endpoint);
  plan.env = ctx->child_env;
  st.checkout_requested = true;
  ctx->make_workspace(self->system(), std::move(plan),
                      caf::actor_cast<caf::actor>(self));
}

} // namespace

std::string deployment_key(const deployment_request& req) {
  auto app = req.app.empty() ? req.repo : req.app;
  return app + "@" + req.environment;
}

deployment_actor::behavior_type
deployment(deployment_actor::stateful_pointer<deployment_state> self,
           context_ptr ctx, int64_t id, deployment_request req,
           receiver_actor receiver, std::string key,
           provider_outcome verdict) {
  auto& st = self->state;
  st.ctx = ctx;
  st.id = id;
  st.req = std::move(req);
  st.key = std::move(key);
  st.receiver = std::move(receiver);
  github_api api;
  api.endpoint = ctx->cfg.api_endpoint;
  api.token = ctx->cfg.github_token;
  api.attempts = ctx->status_attempts;
  api.first_backoff = std::chrono::milliseconds(ctx->status_backoff_ms);
  st.poster = self->spawn(status_poster, ctx->http, api);
  ctx->logs->open(id);
  // A bug that throws must still end the deployment with a status.
  self->set_exception_handler([=](std::exception_ptr& ptr) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("deployment {} failed inside heaven: {}", self->state.id,
                  what);
    finish(self, "error", "heaven failed during the deployment: " + what);
    return caf::make_error(caf::sec::runtime_error, what);
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source != st.provider.address())
      return;
    // The provider left without a result: it crashed.
    finish(self, "error",
           "provider " + st.req.provider + " crashed: "
             + self->system().render(msg.reason));
  });
  if (verdict.state.empty()) {
    if (auto problem = check(*ctx, st.req); !problem.empty())
      verdict = provider_outcome{"error", std::move(problem)};
  }
  if (!verdict.state.empty()) {
    if (verdict.state == "error")
      spdlog::info("deployment {} of {} to {} refused: {}", id, st.req.repo,
                   st.req.environment, verdict.description);
    finish(self, std::move(verdict.state), std::move(verdict.description));
    return {
      [](log_atom, log_line&) {},         [](started_atom, int32_t) {},
      [](prepared_atom, bool, std::string&) {}, [](result_atom, provider_outcome&) {},
      [](timeout_atom) {},
      [](cancel_atom, std::string&) {},
    };
  }
  auto queued = "Queued " + st.req.ref + " (" + short_sha(st.req.sha)
                + ") for " + st.req.environment + " by "
                + (st.req.actor.empty() ? "someone" : st.req.actor);
  say(self, queued);
  record(self, "queued", queued);
  post(self, "queued", queued);
  st.timer = self->spawn(timer, deployment_actor{self},
                         std::chrono::seconds(ctx->cfg.deployment_timeout));
  if (!ctx->providers->needs_checkout(st.req.provider)) {
    // An API provider (heroku, ...): GitHub's archive is its source.
    start_provider(self, "");
  } else {
    prepare_checkout(self);
  }
  return {
    [=](log_atom, log_line& line) {
      auto& st = self->state;
      // After the deadline the script's output is dropped; the provider's
      // own account of stopping ("Stopped following Heroku build ...")
      // still goes in, before the timeout line.
      if (st.at == phase::finished
          || (st.timed_out && line.source != stream::heaven))
        return;
      st.ctx->logs->append(st.id, line.source, line.text);
    },
    [=](started_atom, int32_t pid) {
      auto& st = self->state;
      if (st.at == phase::preparing)
        st.prep_pgid = pid;
      else if (st.at == phase::finished && st.checkout_requested)
        kill(-pid, SIGKILL); // The checkout goes on for nobody: stop it.
    },
    [=](prepared_atom, bool ok, std::string& what) {
      auto& st = self->state;
      st.checkout_requested = false;
      if (st.at == phase::finished) {
        // It ended while the checkout was being made: remove it, then go.
        if (ok && st.ctx->remove_workspace)
          st.ctx->remove_workspace(self->system(), what);
        self->quit();
        return;
      }
      if (st.at != phase::preparing)
        return;
      if (!ok) {
        finish(self, "error", "could not check out " + short_sha(st.req.sha)
                                + ": " + what);
        return;
      }
      start_provider(self, std::move(what));
    },
    [=](result_atom, provider_outcome& outcome) {
      finish(self, std::move(outcome.state), std::move(outcome.description));
    },
    [=](timeout_atom) {
      auto& st = self->state;
      if (st.at == phase::finished)
        return;
      spdlog::warn("deployment {} of {} to {} timed out after {} seconds",
                   st.id, st.req.repo, st.req.environment,
                   st.ctx->cfg.deployment_timeout);
      st.timed_out = true;
      st.timer = nullptr;
      stop_work(self);
    },
    [=](cancel_atom, std::string& reason) {
      auto& st = self->state;
      if (st.at == phase::finished)
        return;
      st.shutdown_reason = std::move(reason);
      stop_work(self);
    },
  };
}

} // namespace heaven
