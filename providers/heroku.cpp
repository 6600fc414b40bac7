// The HEROKU provider, as one conversation with two APIs:
//
//   1. GitHub: `GET repos/<repo>/tarball/<sha>` → 302; the Location is the
//      build's source (private repositories: a short-lived signed link).
//   2. Heroku: `POST apps/<app>/builds` with that link, the full sha as the
//      version and heaven's mark as the version description → the build's
//      id and its output stream.
//   3. The output stream goes into the deployment's log as it arrives, while
//      `GET apps/<app>/builds/<id>` is polled on a timer until the build
//      `succeeded` (success) or `failed` (failure).
//
// Create once: a build request that got no answer, or a 5xx that may have
// come after Heroku acted, is not simply sent again. heaven first lists the
// app's newest builds (`GET apps/<app>/builds`, newest first) and follows
// the build it finds of this sha, created since just before heaven's first
// request and carrying heaven's mark; only when there is none does it ask
// again. 429 and 503 with Retry-After (refused before anything was done)
// are asked again after the wait; other answers end the deployment with
// `error` and a description saying what Heroku or GitHub objected to. A
// cancel (timeout, shutdown) stops the polling and the stream at once.
// Nothing here blocks: every request goes through the http_client actor.

#include "providers/heroku.hpp"

#include <chrono>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"
#include "base/text.hpp"
#include "providers/api_common.hpp"
#include "providers/heroku_api.hpp"

namespace heaven {

namespace {

using json = nlohmann::json;
using namespace heroku_api;

/// Where the conversation is.
enum class step {
  /// Asking GitHub for the tarball link.
  tarball,
  /// Asking Heroku to build it.
  create,
  /// The build request got no clear answer: looking for the build among
  /// the app's builds before asking again.
  lookup,
  /// The build runs: polling it and streaming its output.
  following,
  /// Ended (result sent).
  done,
};

struct heroku_state {
  static inline const char* name = "heroku";
  heroku_config cfg;
  provider_job job;
  deployment_actor deployment;
  /// The deployment heaven's log lines are about (see log_scope).
  log_context log;
  /// A 401 to the tarball link renewed the GitHub App's token once.
  bool github_renewed = false;
  step at = step::tarball;
  /// The Heroku app.
  std::string app;
  /// GitHub's signed tarball link (never logged).
  std::string source_url;
  std::string build_id;
  /// Heroku's signed output link (never logged).
  std::string stream_url;
  /// Attempts made at the current request (tarball, create) or polls that
  /// failed in a row (following).
  int attempt = 1;
  /// When heaven sent its first build request (zero before): builds created
  /// earlier, minus the clock skew allowed, are not heaven's.
  std::chrono::system_clock::time_point first_create{};
  /// The lookup: the unclear answer that started it, attempts at the
  /// current list request, pages read, and the next page's Range.
  http_response unanswered;
  int list_attempt = 1;
  int pages = 0;
  std::string next_range;
  /// The stream: open now, or ended; bytes seen; an unfinished last line.
  bool streaming = false;
  bool stream_ended = false;
  size_t streamed_bytes = 0;
  int stream_attempts = 0;
  std::string partial;
  /// The build's final status once known, waiting for the stream to end.
  std::string final_status;
  /// Polls left to wait for the stream to drain after the build ended.
  int drain_polls = 0;
};

using self_ptr = api_provider_actor::stateful_pointer<heroku_state>;

void say(self_ptr self, stream source, std::string text) {
  self->send(self->state.deployment, log_atom::value,
             log_line{source, std::move(text)});
}

/// Sends every complete line of `partial` to the log; with `all`, the rest
/// too.
void flush_lines(self_ptr self, bool all) {
  auto& buf = self->state.partial;
  size_t start = 0;
  for (auto nl = buf.find('\n'); nl != buf.npos; nl = buf.find('\n', start)) {
    auto line = buf.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    say(self, stream::out, std::move(line));
    start = nl + 1;
  }
  buf.erase(0, start);
  if (all && !buf.empty()) {
    say(self, stream::out, std::move(buf));
    buf.clear();
  }
}

/// Sends the outcome once, stops the stream and ends the actor.
void end(self_ptr self, deploy_state state, std::string description) {
  auto& st = self->state;
  if (st.at == step::done)
    return;
  st.at = step::done;
  flush_lines(self, true);
  if (st.streaming)
    self->send(st.cfg.http, cancel_atom::value, chunk_sink{self});
  self->send(st.deployment, result_atom::value,
             provider_outcome{state, std::move(description)});
  self->quit();
}

/// Whether to try `res`'s request again; if so, says why and schedules a
/// tick that repeats the current step.
bool retry_later(self_ptr self, const http_response& res,
                 const std::string& what) {
  auto& st = self->state;
  auto retry = next_retry(res, st.attempt, st.cfg, what);
  if (!retry)
    return false;
  say(self, stream::heaven, std::move(retry->line));
  self->delayed_send(self, retry->delay, tick_atom::value);
  return true;
}

void create_build(self_ptr self);
void list_builds(self_ptr self);
void poll(self_ptr self);
void open_stream(self_ptr self);

/// Sends `req` to the HTTP client; `then(res)` gets the answer unless the
/// provider has left step `at` meanwhile (it ended, or was cancelled).
template <class F>
void ask(self_ptr self, step at, http_request req, F then) {
  self->request(self->state.cfg.http, caf::infinite, std::move(req))
    .then([self, at, then](http_response& res) mutable {
      log_scope in{self->state.log};
      if (self->state.at == at)
        then(res);
    });
}

void fetch_tarball_link(self_ptr self) {
  auto& st = self->state;
  auto github = github_of(st.cfg, st.job.request.repo,
                          [me = api_provider_actor{self}] {
                            caf::anon_send(me, tick_atom::value);
                          });
  if (!github)
    return; // A tick comes once the token is fetched.
  auto req = github_archive_request(*github, st.job.request.repo, "tarball",
                                    st.job.request.sha);
  ask(self, step::tarball, std::move(req), [=](http_response& res) {
    auto& st = self->state;
    auto link = github_archive_link(res, "tarball", st.job.request.repo,
                                    st.job.request.sha);
    if (renew_after_401(st.cfg, st.job.request.repo, res, st.github_renewed)) {
      fetch_tarball_link(self);
      return;
    }
    if (link) {
      st.source_url = std::move(*link);
      st.at = step::create;
      st.attempt = 1;
      create_build(self);
      return;
    }
    if (!retry_later(self, res, "GitHub's tarball link"))
      end(self, deploy_state::error, describe(link.error()));
  });
}

/// Follows `build` (Heroku's JSON for one build, with an id): its output
/// stream, and polls until it ends. `adopted`: found by a lookup rather
/// than in the answer to heaven's request.
void follow(self_ptr self, const json& build, bool adopted) {
  auto& st = self->state;
  st.build_id = build["id"].get<std::string>();
  st.stream_url = stream_url(build);
  st.at = step::following;
  st.attempt = 1;
  if (adopted) {
    spdlog::info("deployment {}: Heroku build {} of {} was started by an "
                 "unanswered request; following it",
                 st.job.id, st.build_id, st.app);
    say(self, stream::heaven,
        "Heroku build " + st.build_id + " on " + st.app
          + " was started by heaven's unanswered request: following it");
  } else {
    spdlog::info("deployment {}: Heroku build {} of {} started", st.job.id,
                 st.build_id, st.app);
    say(self, stream::heaven,
        "Heroku build " + st.build_id + " started on " + st.app);
  }
  open_stream(self);
  self->delayed_send(self, std::chrono::milliseconds(st.cfg.poll_interval_ms),
                     tick_atom::value);
}

/// The earliest `created_at` a build of this deployment can carry.
std::chrono::system_clock::time_point cutoff(const heroku_state& st) {
  return st.first_create - clock_skew;
}

/// The build request got `res`, which may mean Heroku started the build:
/// looks among the app's builds before asking again, after the wait a retry
/// would have had (so that a build still being created shows up).
void look_up(self_ptr self, const http_response& res) {
  auto& st = self->state;
  st.at = step::lookup;
  st.unanswered = res;
  st.list_attempt = 1;
  st.pages = 0;
  st.next_range.clear();
  auto delay = retry_wait(retry_policy_of(st.cfg), st.attempt, res);
  say(self, stream::heaven,
      "Heroku's build API: " + describe(res) + "; looking for the build among "
        + st.app + "'s builds in " + std::to_string(delay.count())
        + " ms before asking again");
  self->delayed_send(self, delay, tick_atom::value);
}

/// No build of heaven's was found: asks again while attempts are left.
void not_found(self_ptr self) {
  auto& st = self->state;
  if (st.attempt >= st.cfg.attempts) {
    end(self, deploy_state::error,
        heroku_problem(st.app, "build " + st.app, st.unanswered)
          + "; no build of it was found");
    return;
  }
  ++st.attempt;
  say(self, stream::heaven,
      "No build of " + short_sha(st.job.request.sha) + " on " + st.app
        + " since heaven's request: asking Heroku again (attempt "
        + std::to_string(st.attempt) + " of " + std::to_string(st.cfg.attempts)
        + ")");
  st.at = step::create;
  create_build(self);
}

void create_build(self_ptr self) {
  auto& st = self->state;
  auto req = create_build_request(st.cfg, st.app, st.source_url, st.job);
  if (st.first_create == std::chrono::system_clock::time_point{})
    st.first_create = std::chrono::system_clock::now();
  ask(self, step::create, std::move(req), [=](http_response& res) {
    auto& st = self->state;
    switch (classify_create(res)) {
      case create_answer::created: {
        auto build = json::parse(res.body, nullptr, false);
        if (!has_id(build)) {
          end(self, deploy_state::error,
              "Heroku accepted the build but its answer "
              "has no build id");
          return;
        }
        follow(self, build, false);
        return;
      }
      case create_answer::refused:
        if (!retry_later(self, res, "Heroku's build API"))
          end(self, deploy_state::error,
              heroku_problem(st.app, "build " + st.app, res));
        return;
      case create_answer::unknown:
        look_up(self, res);
        return;
      case create_answer::failed:
        end(self, deploy_state::error,
            heroku_problem(st.app, "build " + st.app, res));
        return;
    }
  });
}

/// One page of the app's builds, newest first (list_builds_request), then
/// each `Next-Range` Heroku gives while the page still reaches no build
/// older than heaven's request.
void list_builds(self_ptr self) {
  auto& st = self->state;
  auto req = list_builds_request(st.cfg, st.app, st.next_range);
  ask(self, step::lookup, std::move(req), [=](http_response& res) {
    auto& st = self->state;
    if (res.status != 200 && res.status != 206) {
      auto retry = next_retry(res, st.list_attempt, st.cfg,
                              "Listing " + st.app + "'s builds");
      if (retry) {
        say(self, stream::heaven, std::move(retry->line));
        self->delayed_send(self, retry->delay, tick_atom::value);
        return;
      }
      auto msg = heroku_message(res);
      spdlog::error("deployment {}: listing the builds of {} failed ({}){}",
                    st.job.id, st.app, describe(res),
                    msg.empty() ? "" : ": " + msg);
      end(self, deploy_state::error,
          "Heroku may have started a build on " + st.app + " ("
            + describe(st.unanswered) + "); listing its builds failed ("
            + describe(res) + ")");
      return;
    }
    auto builds = json::parse(res.body, nullptr, false);
    if (!builds.is_array()) {
      end(self, deploy_state::error,
          "Heroku may have started a build on " + st.app
            + ": its list of builds is not a JSON array");
      return;
    }
    st.list_attempt = 1;
    ++st.pages;
    bool reached_back = builds.empty();
    for (auto& build : builds) {
      if (ours(build, st.job, cutoff(st))) {
        follow(self, build, true);
        return;
      }
      auto created = created_at(build);
      if (created && *created < cutoff(st))
        reached_back = true;
    }
    auto next = header_value(res, "next-range");
    if (res.status == 206 && !next.empty() && !reached_back
        && st.pages < max_list_pages) {
      st.next_range = std::move(next);
      list_builds(self);
      return;
    }
    not_found(self);
  });
}

/// Follows the build's output. Heroku's stream URL is signed: it gets no
/// API key (it may be another host).
void open_stream(self_ptr self) {
  auto& st = self->state;
  if (st.stream_url.empty() || st.streaming || st.stream_ended)
    return;
  http_request req;
  req.url = st.stream_url;
  req.headers = {{"User-Agent", "heaven"}};
  // The stream lasts as long as the build; the deployment's own timeout
  // bounds it, and a cancel ends it.
  req.timeout_ms = 24LL * 3600 * 1000;
  req.follow_redirects = true;
  st.streaming = true;
  ++st.stream_attempts;
  self
    ->request(st.cfg.http, caf::infinite, stream_atom::value, std::move(req),
              chunk_sink{self})
    .then([=](http_response& res) {
      auto& st = self->state;
      log_scope in{st.log};
      st.streaming = false;
      if (st.at == step::done)
        return;
      flush_lines(self, true);
      if (res.status >= 200 && res.status < 300) {
        st.stream_ended = true;
      } else if (st.streamed_bytes > 0 || st.stream_attempts >= 5
                 || res.permanent) {
        // Re-opening would repeat what was shown; the build's status still
        // decides the outcome.
        st.stream_ended = true;
        say(self, stream::heaven,
            "The build's output stream ended early (" + describe(res) + ")");
      }
      // Otherwise the stream may not be ready yet: the next poll reopens it.
      if (st.stream_ended && !st.final_status.empty())
        poll(self);
    });
}

void finish_build(self_ptr self) {
  auto& st = self->state;
  // The final status does not wait longer for the output: it is GitHub's
  // promise, and Heroku keeps the output with the build.
  if (st.streaming && !st.stream_ended)
    say(self, stream::heaven,
        st.streamed_bytes == 0
          ? "The build's output had not arrived when the build ended (heaven "
            "follows a limited number of outputs at once, "
            "HEAVEN_HTTP_MAX_STREAMS): it is not in this log; Heroku keeps it "
            "with build "
              + short_id(st.build_id)
          : "The build's output had not ended when the build did: the rest "
            "of it is not in this log");
  if (st.final_status == "succeeded")
    end(self, deploy_state::success,
        "Heroku build " + short_id(st.build_id) + " succeeded on " + st.app);
  else
    end(self, deploy_state::failure,
        "Heroku build " + short_id(st.build_id) + " failed on " + st.app
          + " (see the log)");
}

/// One poll of the build; schedules the next one while it runs.
void poll(self_ptr self) {
  auto& st = self->state;
  if (!st.final_status.empty()) {
    // The build has ended: give its output a few polls to drain.
    if (st.stream_ended || st.drain_polls-- <= 0)
      finish_build(self);
    else
      self->delayed_send(self,
                         std::chrono::milliseconds(st.cfg.poll_interval_ms),
                         tick_atom::value);
    return;
  }
  auto req = build_request(st.cfg, st.app, st.build_id);
  ask(self, step::following, std::move(req), [=](http_response& res) {
    auto& st = self->state;
    auto next = [=] {
      self->delayed_send(
        self, std::chrono::milliseconds(self->state.cfg.poll_interval_ms),
        tick_atom::value);
    };
    if (res.status != 200) {
      if (!retry_allowed(retry_policy_of(st.cfg), res, st.attempt)) {
        end(self, deploy_state::error,
            heroku_problem(st.app, "report build " + short_id(st.build_id),
                           res));
        return;
      }
      say(self, stream::heaven,
          retry_line("Polling the build", describe(res), st.attempt,
                     retry_policy_of(st.cfg).attempts,
                     std::chrono::milliseconds(st.cfg.poll_interval_ms)));
      ++st.attempt;
      next();
      return;
    }
    st.attempt = 1;
    auto build = json::parse(res.body, nullptr, false);
    auto status = build_status(build);
    if (status == "succeeded" || status == "failed") {
      st.final_status = status;
      st.drain_polls = 3;
      if (st.stream_ended || st.stream_url.empty())
        finish_build(self);
      else
        next();
      return;
    }
    if (status != "pending") {
      end(self, deploy_state::error,
          "Heroku reports build " + short_id(st.build_id) + " as '" + status
            + "', which heaven doesn't "
              "know");
      return;
    }
    open_stream(self); // When it was not ready at first.
    next();
  });
}

api_provider_actor::behavior_type heroku(self_ptr self, heroku_config cfg,
                                         provider_job job,
                                         deployment_actor deployment) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.job = std::move(job);
  st.deployment = std::move(deployment);
  st.app = st.job.config.heroku_app;
  auto& req = st.job.request;
  st.log = log_context{st.job.id, req.repo, req.environment};
  log_scope in{st.log};
  if (st.app.empty()) {
    end(self, deploy_state::error,
        "payload.config.heroku_" + req.environment
          + "_name or heroku_name is missing: heaven doesn't "
            "know which Heroku app to deploy");
  } else if (!valid_app(st.app)) {
    end(self, deploy_state::error, "invalid Heroku app name '" + st.app + "'");
  } else if (st.cfg.api_key.empty()) {
    end(self, deploy_state::error,
        "HEROKU_API_KEY is not set: heaven can't deploy to "
        "Heroku");
  } else {
    say(self, stream::heaven,
        "Building " + req.repo + " at " + req.sha + " on Heroku app " + st.app);
    fetch_tarball_link(self);
  }
  if (st.at == step::done)
    return api_provider_actor::behavior_type::make_empty_behavior();
  return {
    [=](tick_atom) {
      log_scope in{self->state.log};
      // What a tick does in each step, in the order of `step`.
      static constexpr void (*act[])(self_ptr) = {
        fetch_tarball_link, create_build, list_builds, poll, nullptr};
      if (auto f = act[static_cast<int>(self->state.at)])
        f(self);
    },
    [=](chunk_atom, std::string& data) {
      auto& st = self->state;
      log_scope in{st.log};
      if (st.at == step::done)
        return;
      st.streamed_bytes += data.size();
      st.partial += data;
      flush_lines(self, false);
    },
    [=](cancel_atom) {
      auto& st = self->state;
      log_scope in{st.log};
      if (st.at == step::done)
        return;
      if (st.at == step::following)
        say(self, stream::heaven,
            "Stopped following Heroku build " + st.build_id
              + ": Heroku may still finish it");
      else if (st.at == step::lookup)
        say(self, stream::heaven,
            "Stopped looking for the build heaven's unanswered request may "
            "have started on "
              + st.app);
      end(self, deploy_state::failure, "cancelled");
    },
  };
}

} // namespace

provider_factory heroku_provider(heroku_config cfg) {
  return [cfg = std::move(cfg)](caf::actor_system& sys, provider_job job,
                                deployment_actor deployment) -> provider_actor {
    return sys.spawn(heroku, cfg, std::move(job), std::move(deployment));
  };
}

} // namespace heaven
