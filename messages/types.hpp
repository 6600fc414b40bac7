/// The message structs that flow between heaven's actors.
///
/// This header is the floor of the project: it includes nothing of heaven's
/// own, only the standard library and CAF's atom/inspect support.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace heaven {

/// A list of (name, value) pairs: HTTP headers, environment variables.
using string_pairs = std::vector<std::pair<std::string, std::string>>;

// -- the protocol's words -------------------------------------------------
// Each enum has one table of words in the enum's order, named by a
// `words_of(enum)` overload; `to_string` writes the word (the database's,
// the logs' and the wire's) and `parse<enum>` reads it back. CAF serializes
// them as their underlying integer, like any enum without an `inspect`.

namespace detail {

/// The word of `x` in `words` (the table of its enum, in order).
template <class Enum, std::size_t N>
std::string word_of(Enum x, const std::string_view (&words)[N]) {
  auto i = static_cast<std::size_t>(x);
  return std::string{words[i < N ? i : N - 1]};
}

/// The value whose word in `words` is `text`, if any.
template <class Enum, std::size_t N>
std::optional<Enum>
parse_word(std::string_view text, const std::string_view (&words)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (words[i] == text)
      return static_cast<Enum>(i);
  return std::nullopt;
}

} // namespace detail

/// The word of `x`, for every enum with a word table.
template <class Enum, class = decltype(words_of(Enum{}))>
std::string to_string(Enum x) {
  return detail::word_of(x, words_of(x));
}

/// The value of `Enum` whose word is `text`, if any.
template <class Enum>
std::optional<Enum> parse(std::string_view text) {
  return detail::parse_word<Enum>(text, words_of(Enum{}));
}

/// Writes the word of `x` (test assertions print states this way).
template <class Enum, class = decltype(words_of(Enum{}))>
std::ostream& operator<<(std::ostream& out, Enum x) {
  return out << to_string(x);
}

/// Where a deployment is in its life, as the store records it. GitHub's
/// statuses say `in_progress` for running.
enum class deploy_state : uint8_t {
  /// Recorded; its provider has not started.
  queued,
  running,
  /// The three states a deployment ends in.
  success,
  failure,
  error,
};

inline constexpr std::string_view deploy_state_words[] = {
  "queued", "running", "success", "failure", "error"};

inline constexpr const auto& words_of(deploy_state) {
  return deploy_state_words;
}

/// True for success, failure and error: the states a deployment ends in.
inline bool terminal(deploy_state x) {
  return x == deploy_state::success || x == deploy_state::failure
         || x == deploy_state::error;
}

/// The state of a GitHub deployment status heaven posts. The same life as
/// deploy_state, in GitHub's words: a running deployment's status says
/// `in_progress`, and those words are what the outbox rows hold.
enum class status_state : uint8_t {
  queued,
  in_progress,
  success,
  failure,
  error,
};

inline constexpr std::string_view status_state_words[] = {
  "queued", "in_progress", "success", "failure", "error"};

inline constexpr const auto& words_of(status_state) {
  return status_state_words;
}

/// The status that says a deployment is in state `x`.
inline status_state status_state_of(deploy_state x) {
  switch (x) {
    case deploy_state::queued:
      return status_state::queued;
    case deploy_state::running:
      return status_state::in_progress;
    case deploy_state::success:
      return status_state::success;
    case deploy_state::failure:
      return status_state::failure;
    default:
      return status_state::error;
  }
}

/// The GitHub webhook events heaven takes (`X-GitHub-Event`).
enum class event_kind : uint8_t {
  deployment,
  deployment_status,
  status,
  ping,
};

inline constexpr std::string_view event_kind_words[] = {
  "deployment", "deployment_status", "status", "ping"};

inline constexpr const auto& words_of(event_kind) {
  return event_kind_words;
}

/// What a deployment asks of its environment's lock: its task is
/// `<prefix>:lock` or `<prefix>:unlock`, or neither.
enum class lock_task : uint8_t {
  none,
  lock,
  unlock,
};

inline constexpr std::string_view lock_task_words[] = {"none", "lock",
                                                       "unlock"};

inline constexpr const auto& words_of(lock_task) {
  return lock_task_words;
}

/// What the lock rule found or did for a deployment.
enum class lock_outcome : uint8_t {
  /// No lock task, and the environment is free.
  none,
  /// The environment is locked: by this lock task, or (without one) by
  /// someone before.
  locked,
  /// A lock task met someone else's lock: unchanged.
  already_locked,
  /// An unlock task removed the lock.
  unlocked,
  /// An unlock task found no lock.
  not_locked,
};

inline constexpr std::string_view lock_outcome_words[] = {
  "none", "locked", "already_locked", "unlocked", "not_locked"};

inline constexpr const auto& words_of(lock_outcome) {
  return lock_outcome_words;
}

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
  return f(caf::meta::type_name("commit_status_event"), x.repo, x.sha, x.state,
           x.default_branch, x.branches, x.author);
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
  return f(caf::meta::type_name("deployment_notice"), x.repo, x.app, x.repo_url,
           x.deployment_id, x.status_id, x.state, x.description, x.log_url,
           x.environment_url, x.environment, x.task, x.ref, x.sha,
           x.deployment_description, x.creator, x.chat_user, x.room, x.changes);
}

/// A webhook delivery as the ingress hands it to the receiver: verified,
/// parsed, not yet stored.
struct inbound_event {
  /// `X-GitHub-Delivery`.
  std::string delivery;
  /// `X-GitHub-Event`.
  event_kind type = event_kind::ping;
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
  /// Set by the receiver before storing: the lock task of a deployment whose
  /// task is `<prefix>:lock` / `<prefix>:unlock`. The store applies it in
  /// the same transaction that records the event.
  lock_task lock_action = lock_task::none;
  /// Set by the receiver before storing: why this deployment may not run
  /// (an unknown provider, an invalid ref, ...), or "". The store records
  /// it as the deployment's `error` unless a lock rule decides first.
  std::string refusal;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inbound_event& x) {
  return f(caf::meta::type_name("inbound_event"), x.delivery, x.type, x.body,
           x.repo, x.deployment, x.status, x.notice, x.lock_action, x.refusal);
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
  /// For a deployment event: what its lock action did — locked,
  /// already_locked (someone else holds it: unchanged), unlocked,
  /// not_locked — or, with no lock action, locked when the environment is
  /// locked and none when it is free.
  lock_outcome lock_state = lock_outcome::none;
  /// The lock concerned (the holder), unless `lock_state` is none.
  env_lock lock;
  /// For a deployment event: the state the store recorded it in, decided in
  /// the same transaction — queued (it may run: its `queued` status is in
  /// the outbox) or a terminal state (success for a lock task, error for a
  /// refusal; that status is in the outbox).
  deploy_state state = deploy_state::queued;
  /// The description of that state (the status GitHub gets).
  std::string description;
  /// In a batch's answer: why this event was not recorded (empty when it
  /// was; nothing of it changed otherwise).
  std::string unstored;
  /// The waiting deployments this one superseded (ended with `error` in
  /// the same transaction), oldest first.
  std::vector<int64_t> superseded;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, accept_result& x) {
  return f(caf::meta::type_name("accept_result"), x.duplicate, x.deployment_id,
           x.ignored, x.lock_state, x.lock, x.state, x.description, x.unstored,
           x.superseded);
}

/// An app+environment heaven deployed for a repository: the base of an
/// auto-deployment.
struct deployed_environment {
  std::string app;
  std::string environment;
  /// The sha deployed there last (its revision), by heaven or another tool.
  std::string sha;
  /// The payload of the heaven deployment to repeat (a JSON object text).
  std::string payload_json;
  /// That deployment's GitHub id and local id.
  int64_t github_id = 0;
  int64_t deployment_id = 0;
  /// Set when the environment is locked: its holder.
  bool locked = false;
  env_lock lock;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployed_environment& x) {
  return f(caf::meta::type_name("deployed_environment"), x.app, x.environment,
           x.sha, x.payload_json, x.github_id, x.deployment_id, x.locked,
           x.lock);
}

/// A repository heaven has heard from (or that was switched).
struct repository_record {
  std::string repo;
  /// False after `heaven repos disable` (or the Repositories page's switch):
  /// its events are ignored.
  bool active = true;
  /// ISO-8601 UTC.
  std::string first_seen;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, repository_record& x) {
  return f(caf::meta::type_name("repository_record"), x.repo, x.active,
           x.first_seen);
}

/// Which deployments the Deployments page lists: newest first, each filter
/// "" for any.
struct deployment_filter {
  std::string repo;
  std::string environment;
  /// A deploy_state's name (queued, running, success, failure, error), or
  /// "" for any.
  std::string state;
  /// Only deployments whose id is below this (0: from the newest), the
  /// next page's start.
  int64_t before = 0;
  /// At most this many (none for <= 0).
  int32_t limit = 50;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_filter& x) {
  return f(caf::meta::type_name("deployment_filter"), x.repo, x.environment,
           x.state, x.before, x.limit);
}

/// One GitHub status heaven queued for a deployment (its "status" outbox
/// row), for the deployment's timeline.
struct status_entry {
  /// GitHub's state: queued, in_progress, success, failure, error.
  std::string state;
  std::string description;
  /// Milliseconds since the epoch when heaven queued it.
  int64_t queued_ms = 0;
  /// When it was settled (delivered or given up); 0 while it waits.
  int64_t settled_ms = 0;
  /// How it was settled ("" while it waits), as the outbox recorded it.
  std::string outcome;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, status_entry& x) {
  return f(caf::meta::type_name("status_entry"), x.state, x.description,
           x.queued_ms, x.settled_ms, x.outcome);
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

/// How the receiver took a webhook event. The ingress alone turns it into
/// an HTTP answer.
enum class receipt_kind : uint8_t {
  /// Recorded and acted upon: a deployment it created is queued, or ended
  /// at once by its lock task.
  accepted,
  /// Recorded, and the rules refused its deployment (a locked environment,
  /// one already deploying, the receiver's refusal): it ended in error.
  refused,
  /// Seen before (same delivery id): nothing changed.
  redelivery,
  /// Recorded, nothing more: the repository is disabled.
  ignored,
  /// Could not be recorded: GitHub should deliver it again.
  unstored,
};

inline constexpr std::string_view receipt_kind_words[] = {
  "accepted", "refused", "redelivery", "ignored", "unstored"};

inline constexpr const auto& words_of(receipt_kind) {
  return receipt_kind_words;
}

/// The receiver's answer to a webhook event.
struct event_receipt {
  receipt_kind kind = receipt_kind::accepted;
  /// heaven's id of the deployment the event created (0: none).
  int64_t deployment_id = 0;
  /// With a deployment: the state the store recorded it in.
  deploy_state state = deploy_state::queued;
  /// With a deployment: the description of that state; unstored: why.
  std::string description;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_receipt& x) {
  return f(caf::meta::type_name("event_receipt"), x.kind, x.deployment_id,
           x.state, x.description);
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

/// One deployment as `GET /deployments` lists it.
struct deployment_row {
  /// heaven's local id.
  int64_t id = 0;
  /// GitHub's deployment id.
  int64_t github_id = 0;
  std::string repo;
  std::string app;
  std::string environment;
  std::string ref;
  std::string sha;
  std::string task;
  std::string provider;
  /// Who asked for it.
  std::string actor;
  deploy_state state = deploy_state::queued;
  /// The description of its latest status.
  std::string description;
  /// ISO-8601 UTC.
  std::string created_at;
  std::string updated_at;
  /// "" while it has not ended.
  std::string finished_at;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_row& x) {
  return f(caf::meta::type_name("deployment_row"), x.id, x.github_id, x.repo,
           x.app, x.environment, x.ref, x.sha, x.task, x.provider, x.actor,
           x.state, x.description, x.created_at, x.updated_at, x.finished_at);
}

/// One deployment as its page shows it.
struct deployment_detail {
  /// False when there is no such deployment (the rest is empty).
  bool found = false;
  deployment_row row;
  /// The request it was accepted with (payload_json holds its config).
  deployment_request request;
  /// ISO-8601 UTC when its provider started ("" if it never did).
  std::string started_at;
  /// Its statuses, oldest first.
  std::vector<status_entry> statuses;
  /// What its app+environment runs now (its revision; "" when unknown).
  std::string current_sha;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deployment_detail& x) {
  return f(caf::meta::type_name("deployment_detail"), x.found, x.row, x.request,
           x.started_at, x.statuses, x.current_sha);
}

/// A deployment heaven accepted but never finished (found at start-up).
struct unfinished_deployment {
  int64_t id = 0;
  /// The state it was left in: queued (its provider never started) or
  /// running.
  deploy_state state = deploy_state::queued;
  deployment_request request;
};

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, unfinished_deployment& x) {
  return f(caf::meta::type_name("unfinished_deployment"), x.id, x.state,
           x.request);
}

/// A stretch of a deployment's log as the database holds it (several heaven
/// instances on PostgreSQL: any instance serves any deployment's log).
struct log_piece {
  /// Whether the database holds any of this deployment's log.
  bool found = false;
  /// The log's bytes from the offset asked for on (at most the limit asked
  /// for, whole chunks), as far as they are stored.
  std::string bytes;
  /// The times of the lines in `bytes`: "offset ms" records, one a line,
  /// as the log book's `.times` sidecar has them.
  std::string times;
  /// How much of the log is stored so far.
  int64_t size = 0;
  /// Whether the deployment has ended (no more log will come).
  bool ended = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_piece& x) {
  return f(caf::meta::type_name("log_piece"), x.found, x.bytes, x.times, x.size,
           x.ended);
}

/// What renewing an instance's lease found (several heaven instances).
struct lease_report {
  /// False when another instance took this one's lease over: it must stop
  /// what it runs without posting anything more.
  bool held = true;
  /// How many lost instances this renewal took over.
  int32_t taken_over = 0;
  /// How many of their deployments were ended (their provider had
  /// started) and how many given back to be run (it had not).
  int32_t ended = 0;
  int32_t released = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lease_report& x) {
  return f(caf::meta::type_name("lease_report"), x.held, x.taken_over, x.ended,
           x.released);
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
  status_state state = status_state::queued;
  /// At most 140 characters (truncated by the poster).
  std::string description;
  std::string log_url;
  std::string environment_url;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, github_status& x) {
  return f(caf::meta::type_name("github_status"), x.repo, x.github_id, x.state,
           x.description, x.log_url, x.environment_url);
}

/// Which stream a log line came from.
enum class stream : uint8_t {
  /// heaven's own narration ("Running deploy/run.sh").
  heaven,
  out,
  err,
};

inline constexpr std::string_view stream_words[] = {"heaven", "out", "err"};

inline constexpr const auto& words_of(stream) {
  return stream_words;
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
  return f(caf::meta::type_name("process_spec"), x.argv, x.env, x.cwd, x.scope);
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

/// How a provider ended, and why.
struct provider_outcome {
  /// success, failure or error: a state a deployment ends in.
  deploy_state state = deploy_state::error;
  std::string description;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_outcome& x) {
  return f(caf::meta::type_name("provider_outcome"), x.state, x.description);
}

} // namespace heaven
