// The HEROKU provider, as one conversation with two APIs:
//
//   1. GitHub: `GET repos/<repo>/tarball/<sha>` → 302; the Location is the
//      build's source (private repositories: a short-lived signed link).
//   2. Heroku: `POST apps/<app>/builds` with that link and the full sha as
//      the version → the build's id and its output stream.
//   3. The output stream goes into the deployment's log as it arrives, while
//      `GET apps/<app>/builds/<id>` is polled on a timer until the build
//      `succeeded` (success) or `failed` (failure).
//
// Transient answers (no answer, 429, 5xx) are retried with backoff (429
// waits for Retry-After); the others end the deployment with `error` and a
// description saying what Heroku or GitHub objected to. A cancel (timeout,
// shutdown) stops the polling and the stream at once. Nothing here blocks:
// every request goes through the http_client actor.

#include "providers/heroku.hpp"

#include <cctype>
#include <chrono>
#include <string>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "providers/api_common.hpp"

namespace heaven {

namespace {

using json = nlohmann::json;

/// Where the conversation is.
enum class step {
  /// Asking GitHub for the tarball link.
  tarball,
  /// Asking Heroku to build it.
  create,
  /// The build runs: polling it and streaming its output.
  following,
  /// Ended (result sent).
  done,
};

struct heroku_state {
  static inline const char* name = "heroku";
  heroku_config cfg;
  provider_job job;
  caf::actor deployment;
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

std::string short_id(const std::string& id) {
  return id.substr(0, 8);
}

void say(self_ptr self, stream source, std::string text) {
  self->send(caf::actor_cast<deployment_actor>(self->state.deployment),
             log_atom::value, log_line{source, std::move(text)});
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
void end(self_ptr self, std::string state, std::string description) {
  auto& st = self->state;
  if (st.at == step::done)
    return;
  st.at = step::done;
  flush_lines(self, true);
  if (st.streaming)
    self->send(st.cfg.http, cancel_atom::value,
               caf::actor_cast<caf::actor>(self));
  self->send(caf::actor_cast<deployment_actor>(st.deployment),
             result_atom::value,
             provider_outcome{std::move(state), std::move(description)});
  self->quit();
}

/// A request to Heroku's Platform API (v3) with the API key.
http_request heroku_request(const heroku_config& cfg, std::string method,
                            const std::string& path) {
  http_request req;
  req.method = std::move(method);
  req.url = join_url(cfg.endpoint, path);
  req.headers = {{"Accept", "application/vnd.heroku+json; version=3"},
                 {"Authorization", "Bearer " + cfg.api_key},
                 {"User-Agent", "heaven"}};
  return req;
}

/// Heroku's own words for an error answer ({"id":..., "message":...}).
std::string heroku_message(const http_response& res) {
  auto body = json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("message")
      && body["message"].is_string())
    return body["message"].get<std::string>();
  return {};
}

/// The status description for a Heroku answer that ends the deployment.
std::string heroku_problem(const heroku_state& st, const std::string& what,
                           const http_response& res) {
  auto msg = heroku_message(res);
  auto said = msg.empty() ? "" : ": " + msg;
  switch (res.status) {
    case 401:
      return "Heroku refused HEROKU_API_KEY (401)" + said;
    case 403:
      return "HEROKU_API_KEY may not " + what + " (403)" + said;
    case 404:
      return "Heroku has no app '" + st.app
             + "' that HEROKU_API_KEY can see (404)" + said;
    case 422:
      return "Heroku refused to " + what + " (422)" + said;
    default:
      return "Heroku could not " + what + " (" + describe(res) + ")" + said;
  }
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
void poll(self_ptr self);
void open_stream(self_ptr self);

void fetch_tarball_link(self_ptr self) {
  auto& st = self->state;
  auto req = github_archive_request(st.cfg.github_api, st.cfg.github_token,
                                    st.job.request.repo, "tarball",
                                    st.job.request.sha);
  self->request(st.cfg.http, caf::infinite, std::move(req))
    .then([=](http_response& res) {
      auto& st = self->state;
      if (st.at != step::tarball)
        return;
      std::string location;
      auto problem = github_archive_problem(res, "tarball", st.job.request.repo,
                                            st.job.request.sha, location);
      if (problem.empty()) {
        st.source_url = std::move(location);
        st.at = step::create;
        st.attempt = 1;
        create_build(self);
        return;
      }
      if (!retry_later(self, res, "GitHub's tarball link"))
        end(self, "error", problem);
    });
}

void create_build(self_ptr self) {
  auto& st = self->state;
  auto req = heroku_request(st.cfg, "POST", "apps/" + st.app + "/builds");
  req.headers.emplace_back("Content-Type", "application/json");
  json body;
  body["source_blob"]["url"] = st.source_url;
  body["source_blob"]["version"] = st.job.request.sha;
  req.body = body.dump();
  self->request(st.cfg.http, caf::infinite, std::move(req))
    .then([=](http_response& res) {
      auto& st = self->state;
      if (st.at != step::create)
        return;
      if (res.status == 201 || res.status == 200) {
        auto build = json::parse(res.body, nullptr, false);
        if (!build.is_object() || !build.contains("id")
            || !build["id"].is_string()) {
          end(self, "error", "Heroku accepted the build but its answer has "
                             "no build id");
          return;
        }
        st.build_id = build["id"].get<std::string>();
        if (build.contains("output_stream_url")
            && build["output_stream_url"].is_string())
          st.stream_url = build["output_stream_url"].get<std::string>();
        st.at = step::following;
        st.attempt = 1;
        spdlog::info("deployment {}: Heroku build {} of {} started",
                     st.job.id, st.build_id, st.app);
        say(self, stream::heaven,
            "Heroku build " + st.build_id + " started on " + st.app);
        open_stream(self);
        self->delayed_send(self,
                           std::chrono::milliseconds(st.cfg.poll_interval_ms),
                           tick_atom::value);
        return;
      }
      // A build request that failed with 429 or 503 was not accepted, and
      // one that got no answer most likely neither: those are retried.
      bool safe = res.status == 0 || res.status == 429 || res.status == 503;
      if (!safe || !retry_later(self, res, "Heroku's build API"))
        end(self, "error", heroku_problem(st, "build " + st.app, res));
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
  self->request(st.cfg.http, caf::infinite, stream_atom::value, std::move(req),
                caf::actor_cast<caf::actor>(self))
    .then([=](http_response& res) {
      auto& st = self->state;
      st.streaming = false;
      if (st.at == step::done)
        return;
      flush_lines(self, true);
      if (res.status >= 200 && res.status < 300) {
        st.stream_ended = true;
      } else if (st.streamed_bytes > 0 || st.stream_attempts >= 5) {
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
  if (st.final_status == "succeeded")
    end(self, "success", "Heroku build " + short_id(st.build_id)
                           + " succeeded on " + st.app);
  else
    end(self, "failure", "Heroku build " + short_id(st.build_id)
                           + " failed on " + st.app + " (see the log)");
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
  auto req = heroku_request(st.cfg, "GET",
                            "apps/" + st.app + "/builds/" + st.build_id);
  self->request(st.cfg.http, caf::infinite, std::move(req))
    .then([=](http_response& res) {
      auto& st = self->state;
      if (st.at != step::following)
        return;
      auto next = [=] {
        self->delayed_send(
          self, std::chrono::milliseconds(self->state.cfg.poll_interval_ms),
          tick_atom::value);
      };
      if (res.status != 200) {
        if (!transient(res) || st.attempt >= st.cfg.attempts) {
          end(self, "error",
              heroku_problem(st, "report build " + short_id(st.build_id),
                             res));
          return;
        }
        ++st.attempt;
        say(self, stream::heaven,
            "Polling the build: " + describe(res) + "; trying again");
        next();
        return;
      }
      st.attempt = 1;
      auto build = json::parse(res.body, nullptr, false);
      std::string status;
      if (build.is_object() && build.contains("status")
          && build["status"].is_string())
        status = build["status"].get<std::string>();
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
        end(self, "error", "Heroku reports build " + short_id(st.build_id)
                             + " as '" + status + "', which heaven doesn't "
                                                  "know");
        return;
      }
      open_stream(self); // When it was not ready at first.
      next();
    });
}

/// The Heroku app for this environment, from the payload's config.
std::string heroku_app(const deployment_request& req) {
  auto payload = json::parse(req.payload_json, nullptr, false);
  if (!payload.is_object() || !payload.contains("config")
      || !payload["config"].is_object())
    return {};
  auto& config = payload["config"];
  for (auto key : {"heroku_" + req.environment + "_name",
                   std::string{"heroku_name"}})
    if (config.contains(key) && config[key].is_string())
      return config[key].get<std::string>();
  return {};
}

/// Heroku app names (and ids) use letters, digits and dashes only; anything
/// else must not reach a URL path.
bool valid_app(const std::string& app) {
  if (app.empty() || app.size() > 64)
    return false;
  for (unsigned char c : app)
    if (!std::isalnum(c) && c != '-')
      return false;
  return true;
}

api_provider_actor::behavior_type
heroku(self_ptr self, heroku_config cfg, provider_job job,
       caf::actor deployment) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.job = std::move(job);
  st.deployment = std::move(deployment);
  st.app = heroku_app(st.job.request);
  auto& req = st.job.request;
  if (st.app.empty()) {
    end(self, "error", "payload.config.heroku_" + req.environment
                         + "_name or heroku_name is missing: heaven doesn't "
                           "know which Heroku app to deploy");
  } else if (!valid_app(st.app)) {
    end(self, "error", "invalid Heroku app name '" + st.app + "'");
  } else if (st.cfg.api_key.empty()) {
    end(self, "error", "HEROKU_API_KEY is not set: heaven can't deploy to "
                       "Heroku");
  } else {
    say(self, stream::heaven,
        "Building " + req.repo + " at " + req.sha + " on Heroku app "
          + st.app);
    fetch_tarball_link(self);
  }
  if (st.at == step::done)
    return api_provider_actor::behavior_type::make_empty_behavior();
  return {
    [=](tick_atom) {
      switch (self->state.at) {
        case step::tarball:
          fetch_tarball_link(self);
          break;
        case step::create:
          create_build(self);
          break;
        case step::following:
          poll(self);
          break;
        case step::done:
          break;
      }
    },
    [=](chunk_atom, std::string& data) {
      auto& st = self->state;
      if (st.at == step::done)
        return;
      st.streamed_bytes += data.size();
      st.partial += data;
      flush_lines(self, false);
    },
    [=](cancel_atom) {
      auto& st = self->state;
      if (st.at == step::done)
        return;
      if (st.at == step::following)
        say(self, stream::heaven,
            "Stopped following Heroku build " + st.build_id
              + ": Heroku may still finish it");
      end(self, "failure", "cancelled");
    },
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

} // namespace

provider_factory heroku_provider(heroku_config cfg) {
  return [cfg = std::move(cfg)](caf::actor_system& sys, provider_job job,
                                caf::actor deployment) -> provider_actor {
    return sys.spawn(heroku, cfg, std::move(job), std::move(deployment));
  };
}

} // namespace heaven
