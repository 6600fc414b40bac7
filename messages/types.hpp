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

/// A `status` event: a commit status changed (drives auto-deployment).
struct commit_status_event {
  /// `repository.full_name`.
  std::string repo;
  /// `sha` (the full 40-character sha).
  std::string sha;
  /// `state`: pending, success, failure or error.
  std::string state;
  /// `repository.default_branch`.
  std::string default_branch;
  /// `branches[].name`: the branches whose head is this sha.
  std::vector<std::string> branches;
  /// `commit.author.login`, else `sender.login` ("" when neither).
  std::string author;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_status_event& x) {
  return f(caf::meta::type_name("commit_status_event"), x.repo, x.sha,
           x.state, x.default_branch, x.branches, x.author);
}

/// One commit of a comparison, as chat messages list it.
struct commit_summary {
  /// The full sha.
  std::string sha;
  /// `author.login`, else `commit.author.name`.
  std::string author;
  /// `author.html_url` ("" when GitHub knows no account).
  std::string author_url;
  /// The first line of the commit message.
  std::string message;
  /// `html_url` of the commit.
  std::string url;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_summary& x) {
  return f(caf::meta::type_name("commit_summary"), x.sha, x.author,
           x.author_url, x.message, x.url);
}

/// The commits a successful deploy brought (GitHub's compare API between the
/// last revision heaven recorded and the deployed sha).
struct commit_changes {
  /// Whether there is a comparison at all (no earlier revision: none).
  bool present = false;
  /// The comparison's web page (`html_url`).
  std::string url;
  int64_t total_commits = 0;
  int64_t additions = 0;
  int64_t deletions = 0;
  int64_t changes = 0;
  /// Newest first, already cut to HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT.
  std::vector<commit_summary> commits;
  /// How many commits the limit left out ("and N more").
  int64_t more = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_changes& x) {
  return f(caf::meta::type_name("commit_changes"), x.present, x.url,
           x.total_commits, x.additions, x.deletions, x.changes, x.commits,
           x.more);
}

/// A `deployment_status` event: what the chat rooms are told.
struct deployment_notice {
  /// `repository.full_name`, e.g. "octo/app".
  std::string repo;
  /// `payload.name`, else `repository.name`.
  std::string app;
  /// `repository.html_url`.
  std::string repo_url;
  /// `deployment.id`.
  int64_t deployment_id = 0;
  /// `deployment_status.id`.
  int64_t status_id = 0;
  /// `deployment_status.state`: queued, in_progress, pending, success,
  /// failure, error, inactive.
  std::string state;
  /// `deployment_status.description`.
  std::string description;
  /// `deployment_status.log_url`, else `target_url` ("" when neither).
  std::string log_url;
  /// `deployment_status.environment_url`.
  std::string environment_url;
  /// `deployment.environment`.
  std::string environment;
  /// `deployment.task`.
  std::string task;
  /// `deployment.ref`.
  std::string ref;
  /// `deployment.sha` (full).
  std::string sha;
  /// `deployment.description`.
  std::string deployment_description;
  /// `deployment.creator.login` (else `sender.login`).
  std::string creator;
  /// `payload.notify.user_name`, else `payload.notify.user`, else the
  /// creator, else "unknown".
  std::string chat_user;
  /// `payload.notify.room` ("" when missing).
  std::string room;
  /// Filled by the notice courier for a successful `deploy` when
  /// HEAVEN_NOTIFIER_DISPLAY_COMMITS is on.
  commit_changes changes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_notice& x) {
  return f(caf::meta::type_name("deployment_notice"), x.repo, x.app,
           x.repo_url, x.deployment_id, x.status_id, x.state, x.description,
           x.log_url, x.environment_url, x.environment, x.task, x.ref, x.sha,
           x.deployment_description, x.creator, x.chat_user, x.room,
           x.changes);
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
  /// `repository.full_name` for every event that names one ("" otherwise,
  /// e.g. an organization's ping).
  std::string repo;
  /// Set for `deployment` events.
  deployment_request deployment;
  /// Set for `status` events.
  commit_status_event status;
  /// Set for `deployment_status` events.
  deployment_notice notice;
  /// Set by the receiver before storing: "lock" or "unlock" when the
  /// deployment's task is `<prefix>:lock` / `<prefix>:unlock`, else "".
  /// The store applies it in the same transaction that records the event.
  std::string lock_action;
  /// Set by the receiver before storing: why this deployment may not run
  /// (an unknown provider, an invalid ref, ...), or "". The store records
  /// it as the deployment's `error` unless a lock rule decides first.
  std::string refusal;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_event& x) {
  return f(caf::meta::type_name("inbound_event"), x.delivery, x.type, x.body,
           x.repo, x.deployment, x.status, x.notice, x.lock_action,
           x.refusal);
}

/// An environment lock: who holds `repo`'s `environment`, since when, why.
struct env_lock {
  std::string repo;
  std::string environment;
  /// Who locked it (the lock deployment's creator).
  std::string actor;
  /// Why: the lock deployment's description.
  std::string reason;
  /// ISO-8601 UTC.
  std::string locked_at;
  /// heaven's local id of the lock deployment (0 when unknown).
  int64_t deployment_id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, env_lock& x) {
  return f(caf::meta::type_name("env_lock"), x.repo, x.environment, x.actor,
           x.reason, x.locked_at, x.deployment_id);
}

/// What the store says about a delivery it was asked to record.
struct accept_result {
  /// True when this delivery id was seen before (a redelivery).
  bool duplicate = false;
  /// The local deployment id heaven assigned (0 for non-deployment events,
  /// duplicates and ignored events).
  int64_t deployment_id = 0;
  /// True when the event's repository is disabled (`heaven repos disable`):
  /// the delivery is recorded, nothing else, and no deployment is created.
  bool ignored = false;
  /// For a deployment event: what its lock action did — "locked",
  /// "already_locked" (someone else holds it: unchanged), "unlocked",
  /// "not_locked" — or, with no lock action, "locked" when the environment
  /// is locked and "" when it is free.
  std::string lock_state;
  /// The lock concerned (the holder), when `lock_state` names one.
  env_lock lock;
  /// For a deployment event: the state the store recorded it in, decided in
  /// the same transaction — "queued" (it may run: its `queued` status is in
  /// the outbox) or a terminal state ("success" for a lock task, "error" for
  /// a refusal; that status is in the outbox).
  std::string state;
  /// The description of that state (the status GitHub gets).
  std::string description;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, accept_result& x) {
  return f(caf::meta::type_name("accept_result"), x.duplicate,
           x.deployment_id, x.ignored, x.lock_state, x.lock, x.state,
           x.description);
}

/// An app+environment heaven deployed for a repository: the base of an
/// auto-deployment.
struct deployed_environment {
  std::string app;
  std::string environment;
  /// The sha of the newest successful `deploy` there.
  std::string sha;
  /// That deployment's payload (a JSON object text).
  std::string payload_json;
  /// That deployment's GitHub id and local id.
  int64_t github_id = 0;
  int64_t deployment_id = 0;
  /// Set when the environment is locked: its holder.
  bool locked = false;
  env_lock lock;
};

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, deployed_environment& x) {
  return f(caf::meta::type_name("deployed_environment"), x.app,
           x.environment, x.sha, x.payload_json, x.github_id,
           x.deployment_id, x.locked, x.lock);
}

/// An auto-deployment to claim: (repo, app, environment, sha) deploys once,
/// and its creation is queued with the claim.
struct auto_deployment {
  std::string repo;
  std::string app;
  std::string environment;
  /// The full sha.
  std::string sha;
  /// The JSON body of GitHub's `POST /repos/{repo}/deployments` (no token).
  std::string body;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, auto_deployment& x) {
  return f(caf::meta::type_name("auto_deployment"), x.repo, x.app,
           x.environment, x.sha, x.body);
}

/// One command for the SSH actor to run on its host.
struct ssh_command {
  /// The command line, run by the remote user's shell. Values in it must be
  /// quoted by whoever builds it (see shell_quote in base/validate.hpp).
  std::string command;
  /// Milliseconds the command may run (0: no limit of its own; the
  /// deployment's timeout still cancels it).
  int64_t timeout_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ssh_command& x) {
  return f(caf::meta::type_name("ssh_command"), x.command, x.timeout_ms);
}

/// How a remote command ended.
struct ssh_result {
  /// The exit status (-1 when there is none).
  int exit_code = -1;
  /// The signal that ended it ("TERM", "KILL", ...; "" when none).
  std::string exit_signal;
  /// Set when the command could not run or finish: connection, host key,
  /// authentication, timeout, cancel. Names the host.
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ssh_result& x) {
  return f(caf::meta::type_name("ssh_result"), x.exit_code, x.exit_signal,
           x.error);
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

/// One message waiting in the store's outbox: a GitHub status, a chat
/// notice, a deployment to create. Rows of one `kind` and `stream` are
/// delivered in `id` order; a row stays until it is settled (delivered, or
/// dropped with a reason), so a restart delivers what a stop left.
struct outbox_row {
  /// Assigned by the store; orders the rows of a stream.
  int64_t id = 0;
  /// Which outbox delivers it: "status", "notice", "chat.slack", "deploy",
  /// ...
  std::string kind;
  /// Rows of one stream go out one after another ("d42": the statuses of
  /// deployment 42).
  std::string stream;
  /// What to deliver, as JSON; its meaning is the kind's.
  std::string body;
  /// When it was written (Unix milliseconds): rows older than the outbox's
  /// age limit are dropped.
  int64_t created_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outbox_row& x) {
  return f(caf::meta::type_name("outbox_row"), x.id, x.kind, x.stream, x.body,
           x.created_ms);
}

/// How an outbox row left the outbox.
struct settled_row {
  int64_t id = 0;
  /// "delivered", or "dropped: <why>".
  std::string outcome;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, settled_row& x) {
  return f(caf::meta::type_name("settled_row"), x.id, x.outcome);
}

/// Rows an outbox settles, and the rows their delivery leads to, written in
/// one transaction.
struct outbox_change {
  std::vector<settled_row> settled;
  /// New rows (their `id` and `created_ms` are assigned by the store).
  std::vector<outbox_row> added;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outbox_change& x) {
  return f(caf::meta::type_name("outbox_change"), x.settled, x.added);
}

/// A deployment heaven accepted but never finished (found at start-up).
struct unfinished_deployment {
  int64_t id = 0;
  /// The state it was left in: queued (its provider never started) or
  /// running.
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
  /// Set when the request failed on heaven's side before any answer could
  /// come (a malformed URL, a header or body curl refuses, out of memory):
  /// sending it again cannot succeed, so nobody retries it.
  bool permanent = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_response& x) {
  return f(caf::meta::type_name("http_response"), x.status, x.headers, x.body,
           x.error, x.permanent);
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

/// Everything heaven starts for one deployment: how its processes are
/// marked when they start and found again when the deployment ends (see
/// actors/scope.hpp). A default-constructed scope is none: processes then
/// start unmarked, as in tests of a single provider.
struct process_scope {
  /// heaven's local deployment id (0: no scope).
  int64_t id = 0;
  /// "<instance>:<id>", the value of HEAVEN_SCOPE in the environment of
  /// every process of the scope (inherited by what they start).
  std::string cookie;
  /// The scope's cgroup v2 directory, which every process joins before it
  /// runs anything; "" where heaven has no cgroups (the fallback).
  std::string cgroup;
  /// The scope's record (<data>/scopes/<id>): the process groups started in
  /// it, for a later heaven. Nothing starts in the scope once it is gone.
  std::string record;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_scope& x) {
  return f(caf::meta::type_name("process_scope"), x.id, x.cookie, x.cgroup,
           x.record);
}

/// A child process to run (argv[0] is a path or a name found on PATH).
struct process_spec {
  std::vector<std::string> argv;
  /// The complete environment of the child.
  string_pairs env;
  std::string cwd;
  /// The deployment it belongs to (none: unscoped).
  process_scope scope;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_spec& x) {
  return f(caf::meta::type_name("process_spec"), x.argv, x.env, x.cwd,
           x.scope);
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
