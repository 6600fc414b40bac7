#include "actors/deployment.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/timer.hpp"
#include "actors/workspace.hpp"
#include "base/github_app.hpp"
#include "base/lifecycle.hpp"
#include "base/log_book.hpp"
#include "base/metrics.hpp"
#include "base/payload_config.hpp"
#include "base/retry.hpp"
#include "base/validate.hpp"
#include "messages/registry.hpp"

namespace heaven {

namespace {

using self_ptr = deployment_actor::stateful_pointer<deployment_state>;

void say(self_ptr self, const std::string& text) {
  self->state.ctx->logs->append(self->state.id, stream::heaven, text);
}

/// How a transition the store refused is written again: doubling from
/// `store_retry_ms`, at most 30 s, so a full disk costs a message a while,
/// never a busy loop; no limit.
retry_policy store_retry(const deployment_context& ctx) {
  retry_policy p;
  p.attempts = 0;
  p.first_backoff = std::chrono::milliseconds(ctx.store_retry_ms);
  p.max_backoff = std::chrono::seconds(30);
  return p;
}

/// Waits before writing a failed transition again (see store_retry).
void retry_later(self_ptr self, const caf::error& err, const char* what) {
  auto& st = self->state;
  ++st.write_failures;
  auto delay = backoff(store_retry(*st.ctx), st.write_failures);
  // Say it for the 1st, 2nd, 4th, 8th... failure, not every one.
  if ((st.write_failures & (st.write_failures - 1)) == 0)
    spdlog::error("{}",
                  retry_line("recording the " + std::string{what}
                               + " of deployment " + std::to_string(st.id),
                             self->system().render(err), st.write_failures, 0,
                             delay));
  self->delayed_send(self, delay, retry_atom::value);
}

/// Leaves for good: removes the checkout (unless processes a timeout spared
/// still use it) and quits, or stays until a checkout being made arrives.
void leave(self_ptr self) {
  auto& st = self->state;
  st.at = phase::finished;
  if (st.children_left) {
    spdlog::warn("deployment {} leaves its processes running in {} "
                 "(TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0)",
                 st.id, st.workspace);
  } else if (!st.workspace.empty() && st.ctx->remove_workspace) {
    st.ctx->remove_workspace(self->system(), st.workspace);
    st.workspace.clear();
  }
  if (st.timer) {
    self->send_exit(st.timer, caf::exit_reason::user_shutdown);
    st.timer = nullptr;
  }
  // A checkout still being made must be removed once it is there: stay
  // until `prepared` arrives (the cancel in stop_work makes that soon).
  if (!st.checkout_requested)
    self->quit();
}

/// Writes the end to the store; on success the deployment leaves, on
/// failure it tries again later (the outcome stays in memory meanwhile).
void record_end(self_ptr self) {
  auto& st = self->state;
  self
    ->request(st.ctx->store, caf::infinite, finish_atom::value, st.id,
              *st.outcome)
    .then(
      [=](bool ended) {
        log_scope in{self->state.log};
        auto& st = self->state;
        if (ended) {
          auto& p = st.req.provider;
          metrics::deployments_ended().add({p, to_string(st.outcome->state)});
          if (st.began)
            metrics::deployment_duration().observe(
              {p}, std::chrono::duration<double>(
                     std::chrono::steady_clock::now() - *st.began)
                     .count());
        }
        if (st.write_failures > 0)
          spdlog::info("deployment {} recorded its end after {} failed "
                       "attempt(s)",
                       st.id, st.write_failures);
        st.write_failures = 0;
        leave(self);
      },
      [=](caf::error& err) {
        log_scope in{self->state.log};
        retry_later(self, err, "end");
      });
}

/// Writes the last lines of the log (how many processes had to be ended,
/// how it ended), closes it and records the end.
void conclude(self_ptr self, int32_t ended) {
  auto& st = self->state;
  if (ended > 0)
    say(self, "heaven ended " + std::to_string(ended)
                + " process(es) the deployment left running");
  if (st.timed_out)
    say(self, "DEPLOYMENT TIMED OUT AFTER "
                + std::to_string(st.ctx->cfg.deployment_timeout) + " SECONDS");
  else
    say(self, to_string(st.outcome->state) + ": " + st.outcome->description);
  st.ctx->logs->close(st.id);
  record_end(self);
}

/// Decides how the deployment ends (once); then every process it started
/// is ended, and then the end is recorded.
void end(self_ptr self, deploy_state state, std::string description) {
  auto& st = self->state;
  if (st.at == phase::ending || st.at == phase::finished)
    return;
  st.at = phase::ending;
  if (st.timed_out) {
    state = deploy_state::failure;
    description = "Deployment timed out after "
                  + std::to_string(st.ctx->cfg.deployment_timeout) + " seconds";
  } else if (!st.shutdown_reason.empty()) {
    state = deploy_state::error;
    description = st.shutdown_reason;
  }
  spdlog::info("deployment {} of {} to {} ended: {}: {}", st.id, st.req.repo,
               st.req.environment, to_string(state), description);
  st.outcome = provider_outcome{state, std::move(description)};
  if (st.timer) {
    self->send_exit(st.timer, caf::exit_reason::user_shutdown);
    st.timer = nullptr;
  }
  // A timeout that spares the processes leaves them; everything else ends
  // them before the end is recorded: a `success` means nothing runs on.
  if (st.children_left || !st.ctx->sweep)
    conclude(self, 0);
  else
    st.ctx->sweep(self->system(), st.scope, sweep_client{self});
}

/// Tells the checkout being made, if any, that nobody needs it: its git
/// stops, and `prepared` comes soon.
void cancel_checkout(self_ptr self) {
  auto& st = self->state;
  if (st.checkout)
    self->send(st.checkout, cancel_atom::value);
}

/// Stops whatever runs: the checkout, or the provider.
void stop_work(self_ptr self) {
  auto& st = self->state;
  auto& cfg = st.ctx->cfg;
  // TERMINATE_CHILD_PROCESS_ON_TIMEOUT=0 spares a timed-out deployment's
  // processes; a stop of heaven spares none (they would outlive it).
  bool terminate = cfg.terminate_children || !st.shutdown_reason.empty();
  if (st.at == phase::preparing || st.at == phase::starting) {
    // The provider never started: the checkout, if one is being made,
    // stops its git.
    cancel_checkout(self);
    end(self, deploy_state::failure, "");
  } else if (st.at == phase::running) {
    if (terminate && !cfg.terminate_children) {
      // The provider was told to spare its processes: end them here.
      if (st.processes)
        self->send(st.processes, kill_atom::value);
    }
    self->send(st.provider, cancel_atom::value);
    if (!terminate) {
      st.children_left = true;
      end(self, deploy_state::failure, "");
    }
  }
}

/// "host" or "host:port" of a URL such as OCTOKIT_WEB_ENDPOINT (no
/// userinfo): where clone URLs on GitHub point.
std::string web_authority(const std::string& url) {
  auto host = url_host(url);
  auto scheme = url.find("://");
  if (host.empty() || scheme == std::string::npos)
    return host;
  auto start = scheme + 3;
  auto end = url.find_first_of("/?#", start);
  auto authority = url.substr(start,
                              end == std::string::npos ? end : end - start);
  if (auto at = authority.rfind('@'); at != std::string::npos)
    authority = authority.substr(at + 1);
  auto colon = authority.rfind(':');
  // "host:port" (not the colons of a bracketed IPv6 address).
  if (colon != std::string::npos
      && authority.find(']', colon) == std::string::npos
      && colon + 1 < authority.size())
    return host + authority.substr(colon);
  return host;
}

/// The GitHub token of the deployment's repository: its GitHub App
/// installation's when heaven is one (GITHUB_TOKEN for a repository the app
/// is not installed on), else GITHUB_TOKEN; nullopt (said in the log) when
/// the app has none at hand (await_token asked for it first) or cannot get
/// one just now. Never waits for GitHub.
std::optional<std::string> repository_token(self_ptr self) {
  auto& st = self->state;
  if (!st.ctx->github_app)
    return st.ctx->cfg.github_token;
  auto t = st.ctx->github_app->token_at_hand(st.req.repo);
  if (!t) {
    spdlog::warn("deployment {}: the GitHub App's token for {} is not at "
                 "hand",
                 st.id, st.req.repo);
    return std::nullopt;
  }
  if (!t->error.empty()) {
    spdlog::warn("deployment {}: {}", st.id, t->error);
    return std::nullopt;
  }
  return t->token;
}

void start_provider(self_ptr self) {
  auto& st = self->state;
  st.at = phase::running;
  auto factory = st.ctx->providers->find(st.req.provider);
  provider_job job;
  job.id = st.id;
  job.request = st.req;
  job.workspace = st.workspace;
  job.env = st.ctx->child_env;
  // Deploy scripts get the repository's installation token, never the
  // app's key (child_environment withholds it).
  if (st.ctx->github_app)
    if (auto token = repository_token(self); token && !token->empty())
      set_env(job.env, "GITHUB_TOKEN", *token);
  job.kill_grace_ms = st.ctx->cfg.kill_grace * 1000;
  job.terminate_children = st.ctx->cfg.terminate_children;
  job.scope = st.scope;
  job.config = read_payload_config(job.request);
  say(self, running_description(st.req));
  auto provider = (*factory)(self->system(), std::move(job), self);
  st.provider = std::move(provider.actor);
  st.processes = std::move(provider.processes);
  self->monitor(st.provider);
}

/// Has the store record the deployment running (with its `in_progress`
/// status); the provider starts only once that is on disk.
void begin(self_ptr self) {
  auto& st = self->state;
  st.at = phase::starting;
  self
    ->request(st.ctx->store, caf::infinite, start_atom::value, st.id,
              running_description(st.req))
    .then(
      [=](bool started) {
        log_scope in{self->state.log};
        auto& st = self->state;
        if (st.at != phase::starting)
          return; // Timed out meanwhile: its end is being recorded.
        if (st.write_failures > 0)
          spdlog::info("deployment {} recorded its start after {} failed "
                       "attempt(s)",
                       st.id, st.write_failures);
        st.write_failures = 0;
        if (!started) {
          // Someone ended it already (it is not queued: superseded, or
          // refused by a lock taken while it waited): nothing to run.
          st.ctx->logs->close(st.id);
          leave(self);
          return;
        }
        // Recorded running: it runs, even when heaven began to stop
        // meanwhile (the drain lets it finish).
        st.began = std::chrono::steady_clock::now();
        metrics::deployments_started().add({st.req.provider});
        start_provider(self);
      },
      [=](caf::error& err) {
        log_scope in{self->state.log};
        auto& st = self->state;
        if (st.at != phase::starting)
          return;
        if (st.shelved) {
          leave(self);
          return;
        }
        retry_later(self, err, "start");
      });
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
  plan.token = repository_token(self).value_or(ctx->cfg.github_token);
  // The token only goes to GitHub itself (github.com or the Enterprise
  // host, with its port when OCTOKIT_WEB_ENDPOINT names one), never to
  // another host a payload names.
  plan.token_host = web_authority(ctx->cfg.web_endpoint);
  plan.env = ctx->child_env;
  plan.scope = st.scope;
  plan.log = st.log;
  st.checkout_requested = true;
  st.checkout = ctx->make_workspace(self->system(), std::move(plan),
                                    checkout_client{self});
}

/// The work before the provider: a checkout of the sha, or (an API
/// provider such as heroku, whose source is GitHub's archive) none.
void go_on(self_ptr self) {
  auto& st = self->state;
  if (!st.ctx->providers->needs_checkout(st.req.provider))
    begin(self);
  else
    prepare_checkout(self);
}

/// Goes on once the repository's GitHub App token is at hand (at once
/// without an app): the app's own thread fetches one that is not, and
/// `retry` then says it tried. Waiting holds no thread; the deadline and a
/// stop of heaven apply meanwhile as before a checkout.
void await_token(self_ptr self) {
  auto& st = self->state;
  const auto& app = st.ctx->github_app;
  if (app && !app->token_at_hand(st.req.repo, [me = deployment_actor{self}] {
        caf::anon_send(me, retry_atom::value);
      })) {
    st.awaiting_token = true;
    return;
  }
  go_on(self);
}

/// heaven stops before the provider started: give everything up quietly.
void shelve(self_ptr self) {
  auto& st = self->state;
  if (st.at != phase::preparing && st.at != phase::starting)
    return;
  st.shelved = true;
  if (st.at == phase::starting && st.write_failures == 0)
    return; // The start is being written: its answer decides.
  spdlog::info("deployment {} of {} to {} stays queued for the next start",
               st.id, st.req.repo, st.req.environment);
  cancel_checkout(self);
  say(self, "heaven stopped before this deployment started: it runs after "
            "the next start");
  leave(self);
}

/// The undertaker of take_over: sweeps, then records the end until the
/// store takes it.
using undertaker_actor = sweep_client::extend<caf::reacts_to<retry_atom>>;

undertaker_actor::behavior_type undertaker(undertaker_actor::pointer self,
                                           context_ptr ctx, int64_t id,
                                           std::string why) {
  auto failures = std::make_shared<int>(0);
  // Only the id is known here (the request stays in the store).
  auto context = std::make_shared<const log_context>(log_context{id, {}, {}});
  log_scope in{*context};
  auto record = [=] {
    self
      ->request(ctx->store, caf::infinite, finish_atom::value, id,
                provider_outcome{deploy_state::error, why})
      .then(
        [=](bool ended) {
          log_scope in{*context};
          if (ended) {
            ctx->logs->append(id, stream::heaven, "error: " + why);
            ctx->logs->close(id);
          }
          self->quit();
        },
        [=](caf::error& err) {
          log_scope in{*context};
          ++*failures;
          auto delay = backoff(store_retry(*ctx), *failures);
          spdlog::error(
            "{}",
            retry_line("recording the end of deployment " + std::to_string(id),
                       self->system().render(err), *failures, 0, delay));
          self->delayed_send(self, delay, retry_atom::value);
        });
  };
  if (ctx->sweep)
    ctx->sweep(self->system(),
               ctx->open_scope ? ctx->open_scope(id) : process_scope{},
               sweep_client{self});
  else
    self->send(self, swept_atom::value, int32_t{0});
  return {
    [=](swept_atom, int32_t) {
      log_scope in{*context};
      auto path = ctx->cfg.data_dir + "/workspaces/" + std::to_string(id);
      if (ctx->remove_workspace)
        ctx->remove_workspace(self->system(), path);
      record();
    },
    [=](retry_atom) {
      log_scope in{*context};
      record();
    },
  };
}

} // namespace

caf::actor_addr take_over(caf::actor_system& sys, context_ptr ctx, int64_t id,
                          std::string why) {
  return caf::actor_cast<caf::actor_addr>(
    sys.spawn(undertaker, std::move(ctx), id, std::move(why)));
}

std::optional<std::string> refusal(const deployment_context& ctx,
                                   const deployment_request& req) {
  if (req.provider.empty())
    return "payload.config.provider is missing: heaven doesn't know how to "
           "deploy "
           + req.repo;
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
  return std::nullopt;
}

deployment_actor::behavior_type
deployment(deployment_actor::stateful_pointer<deployment_state> self,
           context_ptr ctx, int64_t id, deployment_request req) {
  auto& st = self->state;
  st.ctx = ctx;
  st.id = id;
  st.req = std::move(req);
  st.log = log_context{id, st.req.repo, st.req.environment};
  log_scope in{st.log};
  if (ctx->open_scope)
    st.scope = ctx->open_scope(id);
  ctx->logs->open(id);
  // A bug that throws must still end the deployment with a status.
  self->set_exception_handler([=](std::exception_ptr& ptr) -> caf::error {
    log_scope in{self->state.log};
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ptr);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("deployment {} failed inside heaven: {}", self->state.id,
                  what);
    auto& st = self->state;
    if (st.provider)
      self->send(st.provider, cancel_atom::value);
    // CAF ends an actor that threw: the receiver, which watches every
    // deployment, sees the reason and records the end (see take_over).
    return caf::make_error(caf::sec::runtime_error,
                           "heaven failed during the deployment: " + what);
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    log_scope in{self->state.log};
    auto& st = self->state;
    if (msg.source != st.provider.address())
      return;
    // The provider left without a result: it crashed.
    end(self, deploy_state::error,
        "provider " + st.req.provider
          + " crashed: " + self->system().render(msg.reason));
  });
  say(self, queued_description(st.req));
  st.timer = self->spawn(timer, deployment_actor{self},
                         std::chrono::seconds(ctx->cfg.deployment_timeout));
  if (!ctx->providers || !ctx->providers->find(st.req.provider)) {
    // The receiver refuses these before storing them; one left from an
    // older heaven (or a registry that changed) ends here.
    end(self, deploy_state::error, refusal(*ctx, st.req).value_or(""));
  } else {
    await_token(self);
  }
  return {
    [=](log_atom, log_line& line) {
      log_scope in{self->state.log};
      auto& st = self->state;
      // After the deadline the script's output is dropped; the provider's
      // own account of stopping ("Stopped following Heroku build ...")
      // still goes in, before the timeout line.
      if (st.at == phase::ending || st.at == phase::finished
          || (st.timed_out && line.source != stream::heaven))
        return;
      st.ctx->logs->append(st.id, line.source, line.text);
    },
    [=](log_atom, std::vector<log_line>& lines) {
      log_scope in{self->state.log};
      // Returning answers the batch: the runner reads more of the script.
      // Dropped output (after the deadline, or once it ends) is answered
      // too, so a script is never stuck on a full pipe until it is killed.
      auto& st = self->state;
      if (st.at == phase::ending || st.at == phase::finished)
        return;
      for (auto& line : lines)
        if (!st.timed_out || line.source == stream::heaven)
          st.ctx->logs->append(st.id, line.source, line.text);
    },
    [=](prepared_atom, bool ok, std::string& what) {
      log_scope in{self->state.log};
      auto& st = self->state;
      st.checkout_requested = false;
      st.checkout = workspace_actor{};
      if (st.at == phase::finished) {
        // It ended while the checkout was being made: remove it, then go.
        if (ok && st.ctx->remove_workspace)
          st.ctx->remove_workspace(self->system(), what);
        self->quit();
        return;
      }
      if (st.at == phase::ending) {
        // Its end is being recorded: the checkout goes when it leaves.
        if (ok)
          st.workspace = std::move(what);
        return;
      }
      if (!ok) {
        end(self, deploy_state::error,
            "could not check out " + short_sha(st.req.sha) + ": " + what);
        return;
      }
      st.workspace = std::move(what);
      begin(self);
    },
    [=](result_atom, provider_outcome& outcome) {
      log_scope in{self->state.log};
      end(self, outcome.state, std::move(outcome.description));
    },
    [=](timeout_atom) {
      log_scope in{self->state.log};
      auto& st = self->state;
      st.timer = nullptr;
      if (st.at != phase::preparing && st.at != phase::starting
          && st.at != phase::running)
        return;
      spdlog::warn("deployment {} of {} to {} timed out after {} seconds",
                   st.id, st.req.repo, st.req.environment,
                   st.ctx->cfg.deployment_timeout);
      st.timed_out = true;
      stop_work(self);
    },
    [=](cancel_atom, std::string& reason) {
      log_scope in{self->state.log};
      auto& st = self->state;
      if (st.at == phase::preparing || st.at == phase::starting) {
        // It never started: it stays queued for the next start.
        shelve(self);
        return;
      }
      if (st.at != phase::running)
        return;
      st.shutdown_reason = std::move(reason);
      stop_work(self);
    },
    [=](shelve_atom) {
      log_scope in{self->state.log};
      shelve(self);
    },
    [=](swept_atom, int32_t ended) {
      log_scope in{self->state.log};
      if (self->state.at == phase::ending)
        conclude(self, ended);
    },
    [=](retry_atom) {
      log_scope in{self->state.log};
      auto& st = self->state;
      if (st.awaiting_token) {
        // The app's thread tried: the token is at hand, or its failure
        // (then the checkout asks with GITHUB_TOKEN, as before). Ended
        // meanwhile (the deadline), this retry is the token's, not one of
        // a write: one retry is taken for it either way.
        st.awaiting_token = false;
        if (st.at == phase::preparing)
          go_on(self);
      } else if (st.at == phase::starting) {
        if (st.shelved)
          shelve(self);
        else
          begin(self);
      } else if (st.at == phase::ending) {
        record_end(self);
      }
    },
  };
}

} // namespace heaven
