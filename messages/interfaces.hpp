/// Every conversation between heaven's actors, as typed interfaces.
///
/// Read this file to know the whole system: each alias is one actor kind and
/// each line one message it understands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/types.hpp"

namespace heaven {

/// The OUTBOX actor interface: delivers one kind of outbox row (GitHub
/// statuses, chat notices, chat messages, auto-deployments) from the store, in
/// order per stream, retrying until the row is delivered or too old.
using outbox_actor = caf::typed_actor<
  // Rows the store has just committed (or found unsettled at start).
  caf::reacts_to<outbox_atom, std::vector<outbox_row>>,
  // Rows this instance took over from a lost one (several instances): like
  // rows found at start, one may have been delivered already, so each is
  // looked up before it is sent.
  caf::reacts_to<outbox_atom, std::vector<outbox_row>, bool>,
  // Internal: stream S may try again; "" after a pause or a failed settle.
  caf::reacts_to<retry_atom, std::string>,
  // Answers true once nothing is under way: no request in flight, no row
  // ready to send now, nothing settled left unrecorded. Rows waiting out a
  // backoff or a rate limit do not count (a stopping heaven leaves them to
  // its next start).
  caf::replies_to<drain_atom>::with<bool>,
  // Internal: look again whether a drain may be answered.
  caf::reacts_to<wake_atom>>;

/// The STORE actor interface: the one writer of heaven's database.
/// Every transition of a deployment is committed here before anyone acts on
/// it, together with the outbox rows it leads to.
using store_actor = caf::typed_actor<
  // Records a delivery before the webhook is answered. For a deployment event
  // also records its deployment, decides the lock and concurrency rules and
  // the receiver's refusal, and queues the status that says so: `queued`
  // when it may run, else its terminal status. For a deployment_status
  // event queues its chat notice (a "notice" outbox row) with the sha a
  // successful `deploy` replaced; another tool's deploy becomes the
  // revision. Duplicates (same delivery id) change nothing.
  caf::replies_to<accept_atom, inbound_event>::with<accept_result>,
  // The same for events that arrived together, each in its own savepoint
  // of the same group commit: one answer per event, in order (`unstored`
  // says why one was not recorded).
  caf::replies_to<accept_atom,
                  std::vector<inbound_event>>::with<std::vector<accept_result>>,
  // Marks queued deployment `id` running with this description and queues
  // its `in_progress` status, in one transaction: true when it was queued,
  // false when it was not (it has ended; nothing changes).
  caf::replies_to<start_atom, int64_t, std::string>::with<bool>,
  // Ends deployment `id`, queues its terminal status and records the
  // revision of a successful `deploy`, in one transaction: true when this
  // ended it, false when it had ended already (nothing changes).
  caf::replies_to<finish_atom, int64_t, provider_outcome>::with<bool>,
  // Subscribes an outbox to the rows of one kind: answers the rows not yet
  // settled, oldest first, then sends it every row of that kind committed
  // later, as `(outbox_atom, rows)`.
  caf::replies_to<subscribe_atom, std::string,
                  outbox_actor>::with<std::vector<outbox_row>>,
  // Settles outbox rows and adds the rows they lead to, in one transaction.
  caf::replies_to<outbox_atom, outbox_change>::with<bool>,
  // Lists the newest N deployments, newest first.
  caf::replies_to<list_atom, int32_t>::with<std::vector<deployment_row>>,
  // Lists deployments left unfinished by an earlier run of heaven, oldest
  // first.
  caf::replies_to<pending_atom>::with<std::vector<unfinished_deployment>>,
  // The same, only those whose id is above `after`, at most `limit`: the
  // receiver reads the deployments waiting to run a page at a time.
  caf::replies_to<pending_atom, int64_t,
                  int32_t>::with<std::vector<unfinished_deployment>>,
  // Lists every environment lock, oldest first.
  caf::replies_to<locks_atom>::with<std::vector<env_lock>>,
  // For a repository: each app+environment heaven deployed, its revision,
  // the heaven deployment to repeat, and whether the environment is locked.
  caf::replies_to<latest_atom,
                  std::string>::with<std::vector<deployed_environment>>,
  // Claims the auto-deployment of (repo, app, environment, sha) and queues
  // its creation (a "deploy" outbox row), in one transaction: true the
  // first time, false ever after, so one green sha deploys once.
  caf::replies_to<claim_atom, auto_deployment>::with<bool>,
  // -- the pages (reads ride in the group commit like every request) -------
  // The deployments matching a filter, newest first.
  caf::replies_to<list_atom,
                  deployment_filter>::with<std::vector<deployment_row>>,
  // One deployment with its statuses (found = false when there is none).
  caf::replies_to<detail_atom, int64_t>::with<deployment_detail>,
  // Every repository heaven has heard from (or that was switched), by name.
  caf::replies_to<repos_atom>::with<std::vector<repository_record>>,
  // Removes the lock on (repo, environment): false when there was none.
  caf::replies_to<unlock_atom, std::string, std::string>::with<bool>,
  // Sets whether heaven acts on a repository's events (recording it when
  // heaven has not heard from it yet): true once committed.
  caf::replies_to<switch_atom, std::string, bool>::with<bool>,
  // Queues the creation of a GitHub deployment (a "deploy" outbox row, as
  // auto-deploy's claim does, but without a claim: a person asked for it).
  caf::replies_to<create_atom, auto_deployment>::with<bool>,
  // -- several instances on one PostgreSQL (SQLite: one instance) ----------
  // Claims up to N queued deployments no instance runs for this one, oldest
  // first (SQLite: the queued ones it has not handed out yet).
  caf::replies_to<claim_atom,
                  int32_t>::with<std::vector<unfinished_deployment>>,
  // Renews this instance's lease and takes over instances whose lease
  // lapsed: ends what they ran, gives back what they had not started.
  caf::replies_to<lease_atom>::with<lease_report>,
  // This instance stops: gives back the queued deployments it claimed but
  // did not start, and gives up its lease.
  caf::replies_to<leave_atom>::with<bool>,
  // Appends to deployment `id`'s log in the database: offset, bytes, and
  // the times records of those bytes.
  caf::replies_to<log_atom, int64_t, int64_t, std::string,
                  std::string>::with<bool>,
  // Reads deployment `id`'s log from the database: from offset, at most N
  // bytes.
  caf::replies_to<log_atom, int64_t, int64_t, int64_t>::with<log_piece>,
  // The secret every instance shares under a name, made from the value
  // given when there is none yet (the key behind log and lock links).
  caf::replies_to<secret_atom, std::string, std::string>::with<std::string>,
  // To itself: commits the requests queued since the last commit (group
  // commit; see actors/store.hpp).
  caf::reacts_to<tick_atom>>;

/// What a streamed response body goes to, piece by piece as it arrives (an
/// API provider following a build's output).
using chunk_sink = caf::typed_actor<caf::reacts_to<chunk_atom, std::string>>;

/// What a deployment's output goes to, line by line (the deployment, or a
/// test's recorder): from the blocking run_process, the SSH sessions and
/// the workspace (spawn_process sends batches: see output_sink).
using line_sink = caf::typed_actor<caf::reacts_to<log_atom, log_line>>;

/// What the process runner's output goes to: a child's lines in batches, in
/// order. Each batch is sent as a request; its (empty) answer says the lines
/// are written, and the runner reads no more of that child while more than
/// a bound of its output is unanswered. Answer every batch, also one that
/// is dropped: an unanswered batch stops the child once its pipe is full.
using output_sink
  = caf::typed_actor<caf::reacts_to<log_atom, std::vector<log_line>>>;

/// Who hears that the process runner started a child: its process group.
/// The runner's caller, which may have to kill it (a process provider, the
/// workspace).
using process_watcher = caf::typed_actor<caf::reacts_to<started_atom, int32_t>>;

/// Who hears of a child the process reactor started (spawn_process): that
/// it started, and how it ended.
using process_owner
  = process_watcher::extend<caf::reacts_to<exited_atom, exit_info>>;

/// What the workspace tells while it makes a checkout: the lines of what it
/// does, and finally whether the checkout is there (true, path) or not
/// (false, why).
using checkout_client
  = line_sink::extend<caf::reacts_to<prepared_atom, bool, std::string>>;

/// Who is told `(swept_atom, int32_t ended)` once every process of a
/// deployment's scope is gone (the deployment, or the undertaker that ends a
/// deployment for a dead one).
using sweep_client = caf::typed_actor<caf::reacts_to<swept_atom, int32_t>>;

/// The HTTP_CLIENT actor interface: all outbound HTTP, on libcurl's multi
/// interface (never blocks a scheduler thread).
using http_client_actor = caf::typed_actor<
  // Performs one request; network failures come back as status 0.
  caf::replies_to<http_request>::with<http_response>,
  // Performs one request and hands its body to the given sink piece by
  // piece as it arrives, as `(chunk, std::string)` messages; answers once the
  // transfer ends, with an empty body. A transfer whose sink is gone ends
  // early.
  caf::replies_to<stream_atom, http_request, chunk_sink>::with<http_response>,
  // Ends every streaming transfer of this sink now (answered with status 0,
  // error "cancelled").
  caf::reacts_to<cancel_atom, chunk_sink>,
  // Internal: the curl thread hands back a finished transfer.
  caf::reacts_to<http_done_atom, uint64_t, http_response>>;

/// The RECEIVER actor interface: applies heaven's rules to accepted events
/// and spawns one deployment actor per deployment that may run.
using receiver_actor = caf::typed_actor<
  // Has the store record the event and answers how it was taken (the
  // ingress turns that into the webhook's HTTP answer).
  caf::replies_to<event_atom, inbound_event>::with<event_receipt>,
  // The same for events that arrived together (one message each way, one
  // receipt per event, in order).
  caf::replies_to<event_atom,
                  std::vector<inbound_event>>::with<std::vector<event_receipt>>,
  // heaven stops: start nothing more, let running deployments finish for up
  // to N seconds, then stop them; answers once no deployment runs. Events
  // are still recorded meanwhile; what has not started runs after the next
  // start.
  caf::replies_to<drain_atom, int64_t>::with<bool>,
  // Stop draining: stop every running deployment now.
  caf::reacts_to<cancel_atom>,
  // Internal: read the deployments an earlier run left (again).
  caf::reacts_to<pending_atom>,
  // Several instances: there may be queued deployments to claim (a NOTIFY,
  // the lease's tick, a deployment accepted here).
  caf::reacts_to<wake_atom>>;

/// The DEPLOYMENT actor interface: one per deployment that may run.
using deployment_actor = caf::typed_actor<
  // A line of output from the workspace preparation or the provider.
  caf::reacts_to<log_atom, log_line>,
  // The provider's processes' output, in batches (see output_sink): the
  // answer comes once the lines are in the log book (or dropped).
  caf::reacts_to<log_atom, std::vector<log_line>>,
  // The workspace is ready (true, path) or could not be made (false, why).
  caf::reacts_to<prepared_atom, bool, std::string>,
  // The provider finished.
  caf::reacts_to<result_atom, provider_outcome>,
  // The deadline passed (from the timer actor).
  caf::reacts_to<timeout_atom>,
  // heaven is stopping: end now with `error` and this description.
  caf::reacts_to<cancel_atom, std::string>,
  // heaven is stopping: when the provider has not started yet, give up the
  // checkout and quit, leaving the deployment queued for the next start.
  caf::reacts_to<shelve_atom>,
  // Every process the deployment started is gone; N had to be ended.
  caf::reacts_to<swept_atom, int32_t>,
  // Internal: time to try writing the pending transition again.
  caf::reacts_to<retry_atom>>;

/// The PROVIDER actor interface: what the deployment tells every provider.
using provider_actor = caf::typed_actor<
  // Stop now: kill the process group, close channels, stop polling; then
  // finish with an outcome (or simply quit).
  caf::reacts_to<cancel_atom>>;

/// What the providers that run child processes (shell, capistrano's Capfile
/// mode, fabric's fabfile mode, ansible, bundler_capistrano) understand on
/// top of the provider contract: the process runner's reports, and the
/// kill rules.
using process_provider_actor = provider_actor::extend<
  // A child process (group) of this provider started.
  caf::reacts_to<started_atom, int32_t>,
  // A child process of this provider ended.
  caf::reacts_to<exited_atom, exit_info>,
  // The grace period after SIGTERM is over (or heaven stops and spares
  // nothing): SIGKILL what is left.
  caf::reacts_to<kill_atom>>;

/// What the HTTP API providers (heroku, elastic_beanstalk) understand on top
/// of the provider contract.
using api_provider_actor = provider_actor::extend<
  // A piece of a streamed response body (a build's output).
  caf::reacts_to<chunk_atom, std::string>,
  // Time to poll the remote build again.
  caf::reacts_to<tick_atom>>;

/// The AUTO_DEPLOY actor interface: hears `status` events and creates GitHub
/// deployments of green commits on the default branch.
using auto_deploy_actor
  = caf::typed_actor<caf::reacts_to<status_atom, commit_status_event>>;

/// The SSH actor interface: one SSH session to one host (libssh2, never on
/// a scheduler thread). Commands run one after another on that session;
/// their stdout and stderr reach the sink given at spawn as
/// `(log_atom, log_line)` messages, line by line, prefixed with the host.
using ssh_actor = caf::typed_actor<
  // Runs one command (connecting first if needed) and answers how it ended.
  caf::replies_to<ssh_command>::with<ssh_result>,
  // Closes the running command's channel and the session now; a command
  // in flight answers with error "cancelled".
  caf::reacts_to<cancel_atom>>;

/// The WORKSPACE actor interface: makes one deployment's checkout on a
/// thread of its own, then tells the deployment `prepared` and quits.
using workspace_actor = caf::typed_actor<
  // The deployment no longer needs the checkout: the git running now gets
  // SIGTERM, any started later SIGKILL; `prepared` still follows, last.
  caf::reacts_to<cancel_atom>,
  // A git process (group) of the checkout started: its pid, its pgid.
  caf::reacts_to<started_atom, int32_t>,
  // Internal: the checkout is there (true, path) or not (false, why).
  caf::reacts_to<prepared_atom, bool, std::string>>;

/// The TIMER actor interface: sends `timeout` to its deployment once.
using timer_actor = caf::typed_actor<caf::reacts_to<timeout_atom>>;

} // namespace heaven
