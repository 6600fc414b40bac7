// The ELASTIC_BEANSTALK provider, one actor per deployment. The steps, each
// one HTTP call (retried on throttling, 429, 5xx and network failures):
//
//   1. GitHub: the zipball link of the exact sha (a 302), then the zip itself
//      from that link (which may carry a token: never logged).
//   2. S3: HeadBucket, CreateBucket when missing, PutObject of the zip.
//   3. Elastic Beanstalk: CreateApplicationVersion, UpdateEnvironment.
//   4. Every poll interval: DescribeEnvironments and DescribeEvents (each new
//      event becomes a log line) until the environment is Ready again; it
//      succeeded only when it is Ready on our version and not Red.
//
// One thing happens at a time, so one `tick` slot serves both the poll
// timer and retry backoffs: `on_tick` says what the next tick does.
#include "providers/elastic_beanstalk.hpp"
#include "providers/outcome.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"
#include "base/sigv4.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "providers/api_common.hpp"
#include "providers/aws_requests.hpp"
#include "providers/aws_xml.hpp"

namespace heaven {

namespace {

// ---- the actor -------------------------------------------------------------

/// One HTTP call and its retries.
struct call {
  /// Named in errors: "CreateApplicationVersion failed: ...".
  std::string step;
  /// "s3", "elasticbeanstalk", or "" for an unsigned (GitHub) request.
  std::string service;
  /// The request before signing (each attempt is signed afresh).
  http_request req;
  int attempt = 0;
  /// Handles the final answer (success or not).
  std::function<void(const call&, http_response&)> on_answer;
};

using call_ptr = std::shared_ptr<call>;

/// The state: where the deployment goes (eb_target), and how far it got.
struct eb_state : eb_target {
  static inline const char* name = "elastic_beanstalk";
  beanstalk_config cfg;
  provider_job job;
  deployment_actor deployment;
  /// The deployment heaven's log lines are about (see log_scope).
  log_context log;
  /// The zipball, until the upload takes it.
  std::string zip;
  /// From UpdateEnvironment's answer: tells same-named environments apart.
  std::string environment_id;
  /// DescribeEvents' StartTime: the newest event seen (or the update time).
  std::string events_since;
  std::set<std::string> seen_events;
  eb_environment current;
  bool update_sent = false;
  bool cname_shown = false;
  bool cancelled = false;
  bool finished = false;
  /// A 401 to the zipball link renewed the GitHub App's token once.
  bool github_renewed = false;
  /// What the next `tick` does: the next poll, or a retry.
  std::function<void()> on_tick;
};

using self_ptr = api_provider_actor::stateful_pointer<eb_state>;

void tell(self_ptr self, std::string text, stream source = stream::heaven) {
  auto& st = self->state;
  if (st.deployment)
    self->send(st.deployment, log_atom::value,
               log_line{source, std::move(text)});
}

void finish(self_ptr self, deploy_state state, std::string description) {
  auto& st = self->state;
  if (st.finished)
    return;
  st.finished = true;
  st.on_tick = nullptr;
  report_end(st.deployment, st.job.id, state, std::move(description));
  self->quit();
}

/// "<step> failed[ after N attempts]: <why>".
std::string failure_text(const call& c, const http_response& res) {
  auto text = c.step + " failed";
  if (c.attempt > 1)
    text += " after " + std::to_string(c.attempt) + " attempts";
  text += ": ";
  if (res.status == 403 && !c.service.empty())
    text += "AWS refused the credentials: ";
  return text + aws_failure_reason(res);
}

/// Ends the deployment with `error` because of `res`.
void fail(self_ptr self, const call& c, const http_response& res) {
  finish(self, deploy_state::error, failure_text(c, res));
}

void perform(self_ptr self, call_ptr c);

/// Runs `what` after `ms` milliseconds (one pending thing at a time).
void after(self_ptr self, int64_t ms, std::function<void()> what) {
  self->state.on_tick = std::move(what);
  self->delayed_send(self, std::chrono::milliseconds(ms), tick_atom::value);
}

void answered(self_ptr self, call_ptr c, http_response& res) {
  auto& st = self->state;
  if (st.cancelled || st.finished)
    return;
  if (worth_retrying(res) && c->attempt < st.cfg.attempts) {
    auto retry = retry_policy_of(st.cfg);
    retry.first_backoff = std::max(retry.first_backoff,
                                   std::chrono::milliseconds(1));
    retry.max_backoff = retry.first_backoff * (int64_t{1} << 16);
    auto backoff = retry_wait(retry, c->attempt, res);
    auto line = retry_line(c->step, aws_failure_reason(res), c->attempt,
                           st.cfg.attempts, backoff);
    spdlog::warn("deployment {}: {}", st.job.id, line);
    tell(self, std::move(line));
    after(self, backoff.count(), [self, c] { perform(self, c); });
    return;
  }
  c->on_answer(*c, res);
}

/// Sends one attempt of `c`, signed when it goes to AWS.
void perform(self_ptr self, call_ptr c) {
  auto& st = self->state;
  ++c->attempt;
  auto req = c->req;
  if (!c->service.empty()) {
    try {
      sigv4::sign(req, st.creds, st.region, c->service,
                  std::chrono::system_clock::now());
    } catch (const std::exception& e) {
      // A malformed endpoint setting: nothing to retry.
      finish(self, deploy_state::error,
             c->step + " failed: can't sign the request: " + e.what());
      return;
    }
  }
  self->request(st.cfg.http, caf::infinite, std::move(req))
    .then(
      [self, c](http_response& res) {
        log_scope in{self->state.log};
        answered(self, c, res);
      },
      [self, c](caf::error& err) {
        log_scope in{self->state.log};
        http_response res;
        res.error = "http client: " + self->system().render(err);
        answered(self, c, res);
      });
}

/// Starts call `step` of `req`, signed for `service` ("" = unsigned).
void start(self_ptr self, std::string step, std::string service,
           http_request req,
           std::function<void(const call&, http_response&)> on_answer) {
  auto c = std::make_shared<call>();
  c->step = std::move(step);
  c->service = std::move(service);
  c->req = std::move(req);
  c->on_answer = std::move(on_answer);
  perform(self, std::move(c));
}

/// Makes the query API call `action` with `params` (after Action and
/// Version); `ok` gets the 200 answer, anything else ends the deployment.
void eb_call(self_ptr self, const std::string& action, string_pairs params,
             std::function<void(http_response&)> ok) {
  params.insert(params.begin(),
                {{"Action", action}, {"Version", "2010-12-01"}});
  auto req = eb_request(self->state.eb_url, params);
  start(self, action, "elasticbeanstalk", std::move(req),
        [self, ok](const call& c, http_response& res) {
          if (res.status == 200)
            ok(res);
          else
            fail(self, c, res);
        });
}

void poll(self_ptr self);

/// Logs where to watch the environment, once it is known.
void show_cname(self_ptr self, const std::string& cname) {
  auto& st = self->state;
  if (cname.empty() || st.cname_shown)
    return;
  st.cname_shown = true;
  tell(self, "The environment answers at http://" + cname);
}

/// The environment is Ready, gone, or still busy: decide.
void conclude(self_ptr self) {
  auto& st = self->state;
  auto& env = st.current;
  auto name = "Elastic Beanstalk environment " + st.environment;
  if (!env.found) {
    finish(self, deploy_state::error,
           "DescribeEnvironments failed: " + name + " of application " + st.app
             + " is not there any more");
    return;
  }
  show_cname(self, env.cname);
  if (env.status == "Terminated" || env.status == "Terminating") {
    finish(self, deploy_state::failure, name + " is " + env.status);
    return;
  }
  if (env.status != "Ready") {
    after(self, st.cfg.poll_interval_ms, [self] { poll(self); });
    return;
  }
  if (env.version_label != st.label)
    finish(self, deploy_state::failure,
           name + " is Ready on " + env.version_label + ", not on " + st.label
             + " (the update did not stick)");
  else if (env.health == "Red")
    finish(self, deploy_state::failure,
           name + " is Ready on " + st.label + " but its health is Red");
  else
    finish(self, deploy_state::success, name + " is Ready on " + st.label);
}

/// Logs the events not seen yet, oldest first, then decides.
void describe_events(self_ptr self) {
  auto& st = self->state;
  eb_call(self, "DescribeEvents",
          {{"ApplicationName", st.app},
           {"EnvironmentName", st.environment},
           {"StartTime", st.events_since}},
          [self](http_response& res) {
            auto& st = self->state;
            for (auto& e : parse_events(res.body)) {
              auto key = e.date + '\n' + e.severity + '\n' + e.message;
              if (!st.seen_events.insert(key).second)
                continue;
              if (e.date > st.events_since)
                st.events_since = e.date;
              tell(self, e.date + " " + e.severity + " " + e.message,
                   stream::out);
            }
            conclude(self);
          });
}

/// One poll: the environment's state, then its new events.
void poll(self_ptr self) {
  auto& st = self->state;
  eb_call(self, "DescribeEnvironments",
          {{"ApplicationName", st.app},
           {"EnvironmentNames.member.1", st.environment}},
          [self](http_response& res) {
            auto& st = self->state;
            st.current = parse_environments(res.body, st.environment_id);
            describe_events(self);
          });
}

void update_environment(self_ptr self) {
  auto& st = self->state;
  tell(self, "Updating Elastic Beanstalk environment " + st.environment + " to "
               + st.label);
  auto now = std::chrono::system_clock::now();
  st.events_since = utc(now, "%Y-%m-%dT%H:%M:%SZ");
  st.update_sent = true;
  eb_call(self, "UpdateEnvironment",
          {{"ApplicationName", st.app},
           {"EnvironmentName", st.environment},
           {"VersionLabel", st.label}},
          [self](http_response& res) {
            auto& st = self->state;
            auto env = parse_updated_environment(res.body);
            st.environment_id = env.id;
            tell(self, "Follow it in the AWS console: https://" + st.region
                         + ".console.aws.amazon.com/elasticbeanstalk/home"
                           "?region="
                         + st.region + "#/environments");
            show_cname(self, env.cname);
            tell(self, "Waiting for " + st.environment + " to be Ready on "
                         + st.label);
            after(self, st.cfg.poll_interval_ms, [self] { poll(self); });
          });
}

void create_version(self_ptr self) {
  auto& st = self->state;
  auto& r = st.job.request;
  tell(self, "Creating application version " + st.label + " of " + st.app);
  eb_call(self, "CreateApplicationVersion",
          {{"ApplicationName", st.app},
           {"VersionLabel", st.label},
           {"Description", truncate_description(version_description(r), 200)},
           {"SourceBundle.S3Bucket", st.bucket},
           {"SourceBundle.S3Key", st.key},
           {"AutoCreateApplication", "false"}},
          [self](http_response&) { update_environment(self); });
}

void upload(self_ptr self) {
  auto& st = self->state;
  tell(self, "Uploading " + st.key + " to S3 bucket " + st.bucket);
  auto req = put_object_request(st, std::move(st.zip));
  start(self, "PutObject", "s3", std::move(req),
        [self](const call& c, http_response& res) {
          auto& st = self->state;
          if (res.status != 200) {
            fail(self, c, res);
            return;
          }
          tell(self, "Uploaded s3://" + st.bucket + "/" + st.key);
          create_version(self);
        });
}

void create_bucket(self_ptr self) {
  auto& st = self->state;
  tell(self, "Creating S3 bucket " + st.bucket + " in " + st.region);
  start(self, "CreateBucket", "s3", create_bucket_request(st),
        [self](const call& c, http_response& res) {
          auto owned = res.status == 409
                       && parse_aws_error(res.body).code
                            == "BucketAlreadyOwnedByYou";
          if (res.status == 200 || owned) {
            upload(self);
            return;
          }
          fail(self, c, res);
        });
}

void ensure_bucket(self_ptr self) {
  auto& st = self->state;
  start(self, "HeadBucket", "s3", head_bucket_request(st),
        [self](const call& c, http_response& res) {
          auto& st = self->state;
          auto prefix = "HeadBucket failed: S3 bucket " + st.bucket;
          switch (res.status) {
            case 200:
              upload(self);
              break;
            case 404:
              create_bucket(self);
              break;
            case 403:
              finish(self, deploy_state::error,
                     prefix
                       + " refused these credentials (403): the access key "
                         "may be wrong, or the bucket belongs to another "
                         "account");
              break;
            case 301: {
              auto where = header_value(res, "x-amz-bucket-region");
              finish(self, deploy_state::error,
                     prefix + " is in another region"
                       + (where.empty() ? "" : " (" + where + ")") + ", not "
                       + st.region);
              break;
            }
            default:
              fail(self, c, res);
          }
        });
}

/// GitHub's zipball link answered: fetch the zip (the link is a secret).
void fetch_zip(self_ptr self, const std::string& location) {
  http_request req;
  req.url = location;
  req.headers = {{"User-Agent", "heaven"}};
  req.follow_redirects = true;
  req.timeout_ms = 600000;
  start(self, "Zipball download", "", std::move(req),
        [self](const call& c, http_response& res) {
          auto& st = self->state;
          if (res.status != 200) {
            fail(self, c, res);
            return;
          }
          st.zip = std::move(res.body);
          tell(self, "Downloaded " + std::to_string(st.zip.size()) + " bytes");
          ensure_bucket(self);
        });
}

void download(self_ptr self) {
  auto& st = self->state;
  auto& r = st.job.request;
  auto github = github_of(st.cfg, r.repo, [me = api_provider_actor{self}] {
    caf::anon_send(me, tick_atom::value);
  });
  if (!github) {
    // A tick comes once the token is fetched.
    st.on_tick = [self] { download(self); };
    return;
  }
  tell(self,
       "Downloading the zipball of " + r.repo + " at " + short_sha(r.sha));
  auto req = github_archive_request(*github, r.repo, "zipball", r.sha);
  start(self, "GitHub zipball request", "", std::move(req),
        [self](const call& c, http_response& res) {
          auto& st = self->state;
          auto& r = st.job.request;
          auto location = header_value(res, "location");
          if (renew_after_401(st.cfg, r.repo, res, st.github_renewed)) {
            download(self);
            return;
          }
          if (res.status >= 300 && res.status < 400 && !location.empty()) {
            fetch_zip(self, location);
          } else if (res.status == 200) {
            // Some servers hand out the archive directly.
            st.zip = std::move(res.body);
            tell(self,
                 "Downloaded " + std::to_string(st.zip.size()) + " bytes");
            ensure_bucket(self);
          } else if (res.status == 404) {
            finish(self, deploy_state::error,
                   "GitHub has no zipball of " + r.repo + " at " + r.sha
                     + " (can GITHUB_TOKEN read it?)");
          } else {
            fail(self, c, res);
          }
        });
}

api_provider_actor::behavior_type
elastic_beanstalk(self_ptr self, beanstalk_config cfg, provider_job job,
                  deployment_actor deployment) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.cfg.attempts = std::max(st.cfg.attempts, 1);
  st.job = std::move(job);
  st.deployment = std::move(deployment);
  st.log = log_context{st.job.id, st.job.request.repo,
                       st.job.request.environment};
  log_scope in{st.log};
  if (auto problem = prepare_target(st, st.cfg, st.job)) {
    finish(self, deploy_state::error, std::move(*problem));
    return api_provider_actor::behavior_type::make_empty_behavior();
  }
  spdlog::info("deployment {} deploys {} to Elastic Beanstalk environment "
               "{} of {} in {} as {}",
               st.job.id, st.job.request.repo, st.environment, st.app,
               st.region, st.label);
  download(self);
  return {
    [self](cancel_atom) {
      auto& st = self->state;
      log_scope in{st.log};
      if (st.cancelled || st.finished)
        return;
      st.cancelled = true;
      st.on_tick = nullptr;
      if (st.update_sent)
        tell(self, "Stopped following Elastic Beanstalk environment "
                     + st.environment + "; AWS may still finish the update");
      else
        tell(self, "Cancelled before Elastic Beanstalk environment "
                     + st.environment + " was updated");
      finish(self, deploy_state::failure, "cancelled");
    },
    [self](tick_atom) {
      auto& st = self->state;
      log_scope in{st.log};
      if (st.cancelled || st.finished || !st.on_tick)
        return;
      auto what = std::move(st.on_tick);
      st.on_tick = nullptr;
      what();
    },
    [](chunk_atom, const std::string&) {
      // Nothing is streamed.
    },
  };
}

} // namespace

provider_factory elastic_beanstalk_provider(beanstalk_config cfg) {
  return [cfg](caf::actor_system& sys, provider_job job,
               deployment_actor deployment) -> provider_actor {
    return sys.spawn(elastic_beanstalk, cfg, std::move(job),
                     std::move(deployment));
  };
}

} // namespace heaven
