/// The message structs that flow between heaven's actors.
///
/// This header is the floor of the project: it includes nothing of heaven's
/// own, only the standard library and CAF's atom/inspect support.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace heaven {

/// A list of (name, value) pairs: HTTP headers, environment variables.
using string_pairs = std::vector<std::pair<std::string, std::string>>;

/// A `deployment` webhook event, parsed and validated for shape (not for
/// rules: ref, task and provider are checked by the deployment actor).
struct deployment_request {
  /// GitHub's deployment id (`deployment.id`).
  int64_t github_id = 0;
  /// `repository.full_name`, e.g. "octo/app".
  std::string repo;
  /// `repository.clone_url` (https://, file://, ...).
  std::string clone_url;
  /// `deployment.sha` (the full 40-character sha).
  std::string sha;
  /// `deployment.ref` (branch, tag or sha the user asked for).
  std::string ref;
  /// `deployment.environment`.
  std::string environment;
  /// `deployment.task` (e.g. "deploy", "deploy:migrations").
  std::string task;
  /// `deployment.description`.
  std::string description;
  /// `deployment.creator.login` (falls back to `sender.login`).
  std::string actor;
  /// `payload.name`, falling back to the repository's name.
  std::string app;
  /// `payload.config.provider` ("" when missing).
  std::string provider;
  /// `payload.config.<environment>_url` ("" when missing).
  std::string environment_url;
  /// The deployment payload as a JSON object text ("{}" when absent).
  std::string payload_json;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_request& x) {
  return f(caf::meta::type_name("deployment_request"), x.github_id, x.repo,
           x.clone_url, x.sha, x.ref, x.environment, x.task, x.description,
           x.actor, x.app, x.provider, x.environment_url, x.payload_json);
}

/// A webhook delivery as the ingress hands it to the receiver: verified,
/// parsed, not yet stored.
struct inbound_event {
  /// `X-GitHub-Delivery`.
  std::string delivery;
  /// `X-GitHub-Event`: deployment, deployment_status, status or ping.
  std::string type;
  /// The raw body, stored as received.
  std::string body;
  /// Set for `deployment` events.
  deployment_request deployment;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_event& x) {
  return f(caf::meta::type_name("inbound_event"), x.delivery, x.type, x.body,
           x.deployment);
}

/// What the store says about a delivery it was asked to record.
struct accept_result {
  /// True when this delivery id was seen before (a redelivery).
  bool duplicate = false;
  /// The local deployment id heaven assigned (0 for non-deployment events
  /// and duplicates).
  int64_t deployment_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, accept_result& x) {
  return f(caf::meta::type_name("accept_result"), x.duplicate,
           x.deployment_id);
}

/// The HTTP answer the ingress sends back to the webhook's caller.
struct ingress_reply {
  int status = 500;
  /// JSON body.
  std::string body;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ingress_reply& x) {
  return f(caf::meta::type_name("ingress_reply"), x.status, x.body);
}

/// A change of a deployment's record in the store.
struct deployment_update {
  int64_t id = 0;
  /// received, queued, running, success, failure, error.
  std::string state;
  std::string description;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_update& x) {
  return f(caf::meta::type_name("deployment_update"), x.id, x.state,
           x.description);
}

/// A deployment heaven accepted but never finished (found at start-up).
struct unfinished_deployment {
  int64_t id = 0;
  /// The state it was left in: received, queued or running.
  std::string state;
  deployment_request request;
};

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, unfinished_deployment& x) {
  return f(caf::meta::type_name("unfinished_deployment"), x.id, x.state,
           x.request);
}

/// One outbound HTTP request (made by the http_client actor).
struct http_request {
  std::string method = "GET";
  std::string url;
  string_pairs headers;
  std::string body;
  /// Whole-request timeout in milliseconds.
  int64_t timeout_ms = 30000;
  /// Follow redirects? (Off for GitHub's archive links: the 302 is the answer.)
  bool follow_redirects = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_request& x) {
  return f(caf::meta::type_name("http_request"), x.method, x.url, x.headers,
           x.body, x.timeout_ms, x.follow_redirects);
}

/// The answer to an `http_request`. `status` is 0 when no HTTP answer came
/// (DNS, connection, TLS or timeout failure); `error` then says why.
struct http_response {
  int status = 0;
  /// Header names are lower-cased.
  string_pairs headers;
  std::string body;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_response& x) {
  return f(caf::meta::type_name("http_response"), x.status, x.headers, x.body,
           x.error);
}

/// A GitHub deployment status to post.
struct github_status {
  /// "owner/name".
  std::string repo;
  /// GitHub's deployment id.
  int64_t github_id = 0;
  /// queued, in_progress, success, failure, error.
  std::string state;
  /// At most 140 characters (truncated by the poster).
  std::string description;
  std::string log_url;
  std::string environment_url;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, github_status& x) {
  return f(caf::meta::type_name("github_status"), x.repo, x.github_id,
           x.state, x.description, x.log_url, x.environment_url);
}

/// Which stream a log line came from.
enum class stream : uint8_t {
  /// heaven's own narration ("Running deploy/run.sh").
  heaven,
  out,
  err,
};

/// "heaven", "out" or "err".
inline std::string to_string(stream x) {
  switch (x) {
    case stream::out:
      return "out";
    case stream::err:
      return "err";
    default:
      return "heaven";
  }
}

/// One line of a deployment's output, without its newline.
struct log_line {
  stream source = stream::heaven;
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_line& x) {
  return f(caf::meta::type_name("log_line"), x.source, x.text);
}

/// A child process to run (argv[0] is a path or a name found on PATH).
struct process_spec {
  std::vector<std::string> argv;
  /// The complete environment of the child.
  string_pairs env;
  std::string cwd;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_spec& x) {
  return f(caf::meta::type_name("process_spec"), x.argv, x.env, x.cwd);
}

/// How a child process ended.
struct exit_info {
  /// The exit status, when it exited.
  int code = -1;
  /// The signal that ended it, or 0.
  int signal = 0;
  /// Set when it could not be started at all (exec failed, ...).
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, exit_info& x) {
  return f(caf::meta::type_name("exit_info"), x.code, x.signal, x.error);
}

/// Everything a provider needs to run one deployment.
struct provider_job {
  /// heaven's local deployment id.
  int64_t id = 0;
  deployment_request request;
  /// The private checkout at `request.sha`.
  std::string workspace;
  /// The environment the provider's processes start from (heaven's own,
  /// minus withheld secrets).
  string_pairs env;
  /// Milliseconds between SIGTERM and SIGKILL when cancelling.
  int64_t kill_grace_ms = 5000;
  /// Whether a cancel kills the provider's processes.
  bool terminate_children = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_job& x) {
  return f(caf::meta::type_name("provider_job"), x.id, x.request, x.workspace,
           x.env, x.kill_grace_ms, x.terminate_children);
}

/// How a provider ended: success, failure or error, and why.
struct provider_outcome {
  std::string state;
  std::string description;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_outcome& x) {
  return f(caf::meta::type_name("provider_outcome"), x.state, x.description);
}

} // namespace heaven
