/// The store contract on PostgreSQL: the connection, the batches, the retry
/// of conflicting transactions, and the writes (each one transaction, or
/// part of the store's batch).
#include "actors/pg_store.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/pg_revisions.hpp"
#include "actors/pg_schema.hpp"
#include "actors/sqlite_store.hpp"
#include "actors/store_rules.hpp"
#include "base/lifecycle.hpp"
#include "base/notices.hpp"
#include "base/queueing.hpp"

namespace heaven {

using pg_rows::lock_columns;
using pg_rows::lock_of;
using pg_rows::or_null;
using sqlite_rows::now_iso8601;
using sqlite_rows::now_ms;

namespace {

/// Waits (in the caller's transaction, until it ends) for the advisory
/// lock named `name` (see pg_design: "lock:<repo> <environment>" before
/// reading a lock, "busy:<app> <environment>" before the concurrency rule).
void xact_lock(pg::connection& conn, const std::string& name) {
  conn.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", {name});
}

/// The lock on (repo, environment), if any.
std::optional<env_lock> find_lock(pg::connection& conn, const std::string& repo,
                                  const std::string& environment) {
  auto r = conn.query(std::string("SELECT ") + lock_columns
                        + " FROM locks WHERE repo = $1 AND environment = $2",
                      {repo, environment});
  if (r.rows() == 0)
    return std::nullopt;
  return lock_of(r, 0);
}

/// Removes the lock on (repo, environment); returns it, if there was one.
std::optional<env_lock> delete_lock(pg::connection& conn,
                                    const std::string& repo,
                                    const std::string& environment) {
  auto r = conn.query("DELETE FROM locks WHERE repo = $1 AND environment = $2 "
                      "RETURNING "
                        + std::string(lock_columns),
                      {repo, environment});
  if (r.rows() == 0)
    return std::nullopt;
  return lock_of(r, 0);
}

/// Records `repo` (active) unless known; returns whether it is active.
bool note_repository(pg::connection& conn, const std::string& repo,
                     const std::string& now) {
  // One round trip: the row added, or the one there. (One another
  // instance adds meanwhile is not seen: it is active, as is no row.)
  auto r = conn.query("WITH added AS (INSERT INTO repositories(repo, active, "
                      "first_seen) VALUES($1, 1, $2) ON CONFLICT(repo) DO "
                      "NOTHING RETURNING active) SELECT active FROM added "
                      "UNION ALL SELECT active FROM repositories WHERE repo "
                      "= $1",
                      {repo, now});
  return r.rows() == 0 || r.int64(0, 0) != 0;
}

/// Inserts a deployment event's record (state "queued" until the rules say
/// otherwise, in the same transaction; nobody's until claimed); its id.
int64_t insert_deployment(pg::connection& conn, const inbound_event& ev,
                          const std::string& now) {
  const auto& r = ev.deployment;
  // The description starts as GitHub's deployment description; status
  // updates replace it.
  return conn
    .query("INSERT INTO deployments(delivery, github_id, repo, app, "
           "environment, ref, sha, task, provider, actor, state, "
           "description, request, created_at, updated_at) "
           "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, "
           "$12, $13, $13) RETURNING id",
           {ev.delivery, pg::int64_param(r.github_id), r.repo, r.app,
            r.environment, r.ref, r.sha, r.task, r.provider, r.actor,
            r.description, sqlite_rows::request_to_json(r).dump(), now})
    .int64(0, 0);
}

/// Applies the lock rule (store_rules.hpp) for (repo, the deployment's
/// environment), under that lock's advisory lock, and fills
/// `res.lock_state` and `res.lock`.
lock_decision apply_lock_rule(pg::connection& conn, const inbound_event& ev,
                              const std::string& repo, const std::string& now,
                              accept_result& res) {
  const auto& r = ev.deployment;
  xact_lock(conn, "lock:" + repo + " " + r.environment);
  return heaven::apply_lock_rule(
    ev, repo, res, [&] { return find_lock(conn, repo, r.environment); },
    [&] {
      conn.query("INSERT INTO locks(repo, environment, actor, reason, "
                 "locked_at, deployment_id) VALUES($1, $2, $3, $4, $5, $6) "
                 "ON CONFLICT(repo, environment) DO UPDATE SET "
                 "reason = excluded.reason, "
                 "deployment_id = excluded.deployment_id",
                 {repo, r.environment, r.actor, r.description, now,
                  pg::int64_param(res.deployment_id)});
    },
    [&] { return delete_lock(conn, repo, r.environment); });
}

/// GitHub's id of the deployment another deployment (`id`) of `r`'s app and
/// environment waits for: the one running there, else the oldest queued;
/// none when none is queued or running (the concurrency rule: one at a
/// time). Asked under that app and environment's advisory lock (taken by
/// the caller, see place_lock), so two instances never both pass.
std::optional<int64_t> ahead(pg::connection& conn, int64_t id,
                             const deployment_request& r) {
  auto found = conn.query(
    "SELECT github_id FROM deployments WHERE app = $1 AND "
    "environment = $2 AND state IN ('queued', 'running') AND id <> $3 "
    "ORDER BY state = 'running' DESC, id LIMIT 1",
    {r.app, r.environment, pg::int64_param(id)});
  if (found.rows() == 0)
    return std::nullopt;
  return found.is_null(0, 0) ? 0 : found.int64(0, 0);
}

/// Takes `r`'s app and environment's advisory lock (until the transaction
/// ends): the concurrency rule and the queue behind it.
void place_lock(pg::connection& conn, const deployment_request& r) {
  xact_lock(conn, "busy:" + r.app + " " + r.environment);
}

/// The queued deployments of `r`'s app and environment other than `id`,
/// oldest first, their rows locked: of `task` only, and older than `id`,
/// when `task` is given; whose description is not `unless`, when that is
/// given.
std::vector<int64_t>
waiting_ids(pg::connection& conn, int64_t id, const deployment_request& r,
            const std::string* task, const std::string* unless = nullptr) {
  auto given = [](const std::string* x) {
    return x != nullptr ? pg::param{*x} : pg::param{};
  };
  auto found = conn.query(
    "SELECT id FROM deployments WHERE app = $1 AND environment = $2 "
    "AND state = 'queued' AND id <> $3 "
    "AND ($4::text IS NULL OR (task = $4 AND id < $3)) "
    "AND ($5::text IS NULL OR description <> $5) ORDER BY id FOR UPDATE",
    {r.app, r.environment, pg::int64_param(id), given(task), given(unless)});
  std::vector<int64_t> ids;
  for (int i = 0; i < found.rows(); ++i)
    ids.push_back(found.int64(i, 0));
  return ids;
}

/// Whether deployment `id` is `instance`'s (any instance's when it is ""),
/// locking its row.
bool owned_by(pg::connection& conn, int64_t id, const std::string& instance) {
  return conn
           .query("SELECT 1 FROM deployments WHERE id = $1 AND "
                  "($2::text IS NULL OR owner = $2) FOR UPDATE",
                  {pg::int64_param(id), or_null(instance)})
           .rows()
         > 0;
}

/// Whether deployment `id` is this instance's and already in `state` with
/// `description`: the transition asked for was committed by an earlier
/// call whose COMMIT lost its answer (the store answered with an error and
/// the deployment asks again). Then its status rows not yet delivered are
/// handed on again (the outbox skips rows it has) and the call succeeds,
/// so the deployment goes on instead of being left running for ever.
bool repeated(pg::connection& conn, int64_t id, const std::string& instance,
              deploy_state state, const std::string& description,
              committed_rows& rows) {
  if (instance.empty())
    return false;
  auto same = conn.query("SELECT 1 FROM deployments WHERE id = $1 AND "
                         "owner = $2 AND state = $3 AND description = $4",
                         {pg::int64_param(id), instance, to_string(state),
                          description});
  if (same.rows() == 0)
    return false;
  auto left = conn.query("SELECT id, kind, stream, body, created_at "
                         "FROM outbox WHERE stream = $1 AND owner = $2 "
                         "AND settled_at IS NULL ORDER BY id",
                         {pg_rows::status_stream(id), instance});
  for (int i = 0; i < left.rows(); ++i)
    rows.push_back(outbox_row{left.int64(i, 0), left.text(i, 1),
                              left.text(i, 2), left.text(i, 3),
                              left.int64(i, 4)});
  return true;
}

/// Wakes every instance listening on heaven_work once this transaction
/// commits.
void wake_instances(pg::connection& conn) {
  conn.query("SELECT pg_notify('heaven_work', '')");
}

/// Queues the creation of a GitHub deployment: `body` (see deploy_body in
/// store_rules.hpp) as a "deploy" outbox row of `x`'s stream, `owner`'s to
/// deliver.
outbox_row deploy_row(pg::connection& conn, const auto_deployment& x,
                      const std::string& body, const std::string& owner) {
  return pg_rows::insert_outbox(conn, "deploy", deploy_stream(x), body, owner);
}

} // namespace

// -- helpers shared by the pg_*.cpp files -------------------------------------

namespace pg_rows {

pg::param or_null(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  return s;
}

env_lock lock_of(const pg::result& r, int row) {
  env_lock l;
  l.repo = r.text(row, 0);
  l.environment = r.text(row, 1);
  l.actor = r.text(row, 2);
  l.reason = r.text(row, 3);
  l.locked_at = r.text(row, 4);
  l.deployment_id = r.int64(row, 5);
  return l;
}

std::string status_stream(int64_t id) {
  return "d" + std::to_string(id);
}

outbox_row insert_outbox(pg::connection& conn, const std::string& kind,
                         const std::string& stream, const std::string& body,
                         const std::string& owner, int64_t created_ms) {
  outbox_row row{0, kind, stream, body, created_ms > 0 ? created_ms : now_ms()};
  row.id = conn
             .query("INSERT INTO outbox(kind, stream, body, created_at, "
                    "owner) VALUES($1, $2, $3, $4, $5) RETURNING id",
                    {kind, stream, body, pg::int64_param(row.created_ms),
                     or_null(owner)})
             .int64(0, 0);
  return row;
}

outbox_row queue_status(pg::connection& conn, int64_t id,
                        const deployment_request& r, deploy_state state,
                        const std::string& description,
                        const std::string& owner) {
  return insert_outbox(conn, "status", status_stream(id),
                       status_body(id, r, state, description), owner);
}

void set_state(pg::connection& conn, int64_t id, deploy_state state,
               const std::string& description, const std::string& now) {
  conn.query("UPDATE deployments SET state = $1, description = $2, "
             "updated_at = $3, "
             "started_at = CASE WHEN $1 = 'running' THEN $3 ELSE started_at "
             "END, "
             "finished_at = CASE WHEN $4::boolean THEN coalesce(finished_at, "
             "$3) ELSE finished_at END WHERE id = $5",
             {to_string(state), description, now,
              std::string{terminal(state) ? "true" : "false"},
              pg::int64_param(id)});
}

std::optional<std::pair<deployment_request, std::optional<deploy_state>>>
find_deployment(pg::connection& conn, int64_t id, bool for_update) {
  auto r = conn.query(std::string("SELECT state, request, repo, github_id, "
                                  "app, environment, sha, task FROM "
                                  "deployments WHERE id = $1")
                        + (for_update ? " FOR UPDATE" : ""),
                      {pg::int64_param(id)});
  if (r.rows() == 0)
    return std::nullopt;
  auto state = parse<deploy_state>(r.text(0, 0));
  // The columns are the fallback should the JSON be damaged or old.
  deployment_request req;
  req.repo = r.text(0, 2);
  req.github_id = r.is_null(0, 3) ? 0 : r.int64(0, 3);
  req.app = r.text(0, 4);
  req.environment = r.text(0, 5);
  req.sha = r.text(0, 6);
  req.task = r.text(0, 7);
  sqlite_rows::read_request(r.text(0, 1), req, id);
  return std::make_pair(std::move(req), std::move(state));
}

bool connection_lost(const pg::error& e) {
  const auto& s = e.sqlstate;
  // Class 08: connection exceptions; 57P01-57P03: the server is shutting
  // down, crashed, or does not take connections yet.
  return s.rfind("08", 0) == 0 || s == "57P01" || s == "57P02" || s == "57P03";
}

} // namespace pg_rows

using namespace pg_rows;

// -- the connection -----------------------------------------------------------

pg_store::pg_store(const std::string& url, pg_options opts)
  : url_(url), opts_(std::move(opts)) {
  conn_ = std::make_unique<pg::connection>(url_);
  if (opts_.migrate)
    pg_migrate(*conn_);
  else
    pg_check_schema(*conn_);
  join_instance(*conn_, opts_);
}

pg_store::~pg_store() = default;

pg::connection& pg_store::connection() {
  if (conn_ && conn_->ok())
    return *conn_;
  conn_.reset();
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_)
    throw pg::error("the database is unreachable: " + unreachable_);
  try {
    auto conn = std::make_unique<pg::connection>(url_);
    join_instance(*conn, opts_);
    conn_ = std::move(conn);
  } catch (const pg::error& e) {
    using std::chrono::milliseconds;
    backoff_ = backoff_.count() == 0
                 ? milliseconds{500}
                 : std::min(backoff_ * 2, milliseconds{10000});
    next_connect_ = now + backoff_;
    unreachable_ = e.what();
    throw pg::error("the database is unreachable: " + unreachable_);
  }
  if (backoff_.count() > 0)
    spdlog::info("store reached the database again");
  backoff_ = std::chrono::milliseconds{0};
  next_connect_ = {};
  unreachable_.clear();
  return *conn_;
}

bool pg_store::retry_after(const pg::error& e, int attempt) {
  // A deadlock or a serialization failure: PostgreSQL undid the whole
  // transaction, which may simply run again.
  if (e.sqlstate == "40P01" || e.sqlstate == "40001")
    return attempt < 5;
  bool lost = connection_lost(e) || !conn_ || !conn_->ok();
  if (!lost)
    return false;
  if (conn_ && !conn_->ok())
    conn_.reset();
  // A COMMIT whose answer was lost may have committed: running the
  // operation again could do it twice.
  if (e.sqlstate == "08007")
    return false;
  // The connection was lost before the commit: nothing was written, so
  // once more on a new connection (connection() throws when there is none).
  return attempt == 1;
}

void pg_store::begin_batch() {
  batch_tx_.reset();
  batch_ = true;
}

pg::connection& pg_store::batch_connection() {
  if (batch_tx_)
    return *conn_;
  auto& conn = connection();
  try {
    batch_tx_.emplace(conn);
  } catch (const pg::error& e) {
    undo_batch(e.what());
  }
  return conn;
}

void pg_store::undo_batch(const std::string& why) {
  batch_tx_.reset(); // ROLLBACK, unless the connection is gone.
  batch_ = false;
  if (conn_ && !conn_->ok())
    conn_.reset();
  throw batch_undone(why);
}

void pg_store::commit_batch() {
  batch_ = false;
  if (!batch_tx_)
    return; // No operation of it reached the database.
  try {
    batch_tx_->commit();
    batch_tx_.reset();
  } catch (const pg::error& e) {
    batch_tx_.reset();
    if (conn_ && !conn_->ok())
      conn_.reset();
    // A commit whose answer was lost may have committed: its operations
    // must not run again.
    if (e.sqlstate == "08007")
      throw;
    throw batch_undone(e.what());
  }
}

bool pg_store::in_batch() const {
  return batch_;
}

namespace {

/// Sets deployment `id` (queued, its row locked) to `state` with
/// `description`, and queues the status that says so, `owner`'s to
/// deliver.
void restate(pg::connection& conn, int64_t id, deploy_state state,
             const std::string& description, const std::string& now,
             const std::string& owner, committed_rows& rows) {
  auto found = find_deployment(conn, id, true);
  if (!found)
    return;
  set_state(conn, id, state, description, now);
  rows.push_back(
    queue_status(conn, id, found->first, state, description, owner));
}

/// Supersede: the waiting deployments of `r`'s app, environment and task
/// older than `id` end with `error` "superseded by deployment N", whichever
/// instance claimed them (one that prepares it finds it ended at its
/// start). Returns their ids.
std::vector<int64_t> supersede(pg::connection& conn, int64_t id,
                               const deployment_request& r,
                               const std::string& now, const std::string& owner,
                               committed_rows& rows) {
  auto why = superseded_description(r.github_id);
  auto older = waiting_ids(conn, id, r, &r.task);
  for (auto ended : older)
    restate(conn, ended, deploy_state::error, why, now, owner, rows);
  return older;
}

} // namespace

// -- writes -------------------------------------------------------------------

// A lock task and a deployment arriving together, at this instance or
// another, are ordered by the advisory lock of the environment's lock; two
// deployments of one app and environment by that of the app and
// environment: never do both run.
accept_result pg_store::accept(const inbound_event& ev, committed_rows& rows) {
  return transact(rows, [&](pg::connection& conn) {
    auto now = now_iso8601();
    accept_result res;
    // A concurrent duplicate waits for the first and then does nothing.
    auto recorded = conn.query(
      "INSERT INTO deliveries(delivery, event, body, received_at) "
      "VALUES($1, $2, $3, $4) ON CONFLICT(delivery) DO NOTHING",
      {ev.delivery, to_string(ev.type), ev.body, now});
    if (recorded.affected() == 0) {
      res.duplicate = true;
      return res;
    }
    const auto& repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
    if (!repo.empty() && !note_repository(conn, repo, now)) {
      // The delivery stays recorded, so a redelivery is a duplicate.
      res.ignored = true;
    } else if (ev.type == event_kind::deployment) {
      const auto& r = ev.deployment;
      res.deployment_id = insert_deployment(conn, ev, now);
      auto lock = apply_lock_rule(conn, ev, repo, now, res);
      auto mode = read_queue_mode(r, queue_all_);
      bool applies = concurrency_applies(ev.lock_action, lock.outcome);
      std::optional<int64_t> first;
      if (applies) {
        place_lock(conn, r);
        // Only a deployment that will be queued replaces the waiting ones.
        if (mode == queue_mode::supersede && ev.refusal.empty())
          res.superseded = supersede(conn, res.deployment_id, r, now,
                                     opts_.instance, rows);
        first = ahead(conn, res.deployment_id, r);
      }
      auto v = decide_state(r, ev.lock_action, lock, res.lock.actor,
                            first.has_value(), ev.refusal,
                            mode != queue_mode::refuse, first.value_or(0));
      set_state(conn, res.deployment_id, v.state, v.description, now);
      rows.push_back(queue_status(conn, res.deployment_id, r, v.state,
                                  v.description, opts_.instance));
      if (v.state == deploy_state::queued)
        wake_instances(conn);
      res.state = v.state;
      res.description = std::move(v.description);
    } else if (ev.type == event_kind::deployment_status) {
      // The notice's base is decided here, once (see sqlite_store).
      const auto& n = ev.notice;
      auto base = pg_rows::record_reported(conn, n, now);
      if (opts_.notices)
        rows.push_back(insert_outbox(conn, notice_kind, notice_stream(n),
                                     notice_row_body(n, base), opts_.instance));
    }
    return res;
  });
}

bool pg_store::start(int64_t id, const std::string& description,
                     committed_rows& rows) {
  return transact(rows, [&](pg::connection& conn) {
    // The advisory locks come before the row's, as in accept: the
    // environment's lock, then its app and environment.
    if (auto peek = find_deployment(conn, id, false)) {
      if (read_queue_mode(peek->first, queue_all_) != queue_mode::refuse)
        xact_lock(conn,
                  "lock:" + peek->first.repo + " " + peek->first.environment);
      place_lock(conn, peek->first);
    }
    auto found = find_deployment(conn, id, true);
    if (found && found->second == deploy_state::running)
      return repeated(conn, id, opts_.instance, deploy_state::running,
                      description, rows);
    if (!found || found->second != deploy_state::queued
        || !owned_by(conn, id, opts_.instance))
      return false;
    const auto& r = found->first;
    auto now = now_iso8601();
    if (read_queue_mode(r, queue_all_) != queue_mode::refuse) {
      // A lock taken while it waited refuses it at its turn.
      if (auto held = find_lock(conn, r.repo, r.environment)) {
        restate(conn, id, deploy_state::error,
                locked_description(r, held->actor), now, opts_.instance, rows);
        return false;
      }
    }
    set_state(conn, id, deploy_state::running, description, now);
    rows.push_back(queue_status(conn, id, r, deploy_state::running, description,
                                opts_.instance));
    // Those behind it now wait for it.
    auto waiting = waiting_description(r.github_id);
    for (auto next : waiting_ids(conn, id, r, nullptr, &waiting))
      restate(conn, next, deploy_state::queued, waiting, now, opts_.instance,
              rows);
    return true;
  });
}

bool pg_store::finish(int64_t id, const provider_outcome& outcome,
                      committed_rows& rows) {
  if (!terminal(outcome.state))
    throw std::invalid_argument("'" + to_string(outcome.state)
                                + "' is not a state a deployment ends in");
  return transact(rows, [&](pg::connection& conn) {
    auto found = find_deployment(conn, id, true);
    if (found && found->second && terminal(*found->second))
      return repeated(conn, id, opts_.instance, outcome.state,
                      outcome.description, rows);
    if (!found || !owned_by(conn, id, opts_.instance))
      return false;
    auto now = now_iso8601();
    set_state(conn, id, outcome.state, outcome.description, now);
    if (outcome.state == deploy_state::success)
      pg_rows::record_finished(conn, id, found->first, now);
    rows.push_back(queue_status(conn, id, found->first, outcome.state,
                                outcome.description, opts_.instance));
    // A deployment waiting behind it may be claimed now, by any instance.
    if (conn
          .query("SELECT 1 FROM deployments WHERE app = $1 AND "
                 "environment = $2 AND state = 'queued' LIMIT 1",
                 {found->first.app, found->first.environment})
          .rows()
        > 0)
      wake_instances(conn);
    return true;
  });
}

bool pg_store::claim(const auto_deployment& x, committed_rows& rows) {
  auto body = deploy_body(x, "the auto deployment's");
  return transact(rows, [&](pg::connection& conn) {
    auto first = conn.query(
      "INSERT INTO auto_deploys(repo, app, environment, sha, claimed_at) "
      "VALUES($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
      {x.repo, x.app, x.environment, x.sha, now_iso8601()});
    if (first.affected() != 1)
      return false;
    rows.push_back(deploy_row(conn, x, body, opts_.instance));
    return true;
  });
}

void pg_store::queue_creation(const auto_deployment& x, committed_rows& rows) {
  auto body = deploy_body(x, "the deployment's");
  transact(rows, [&](pg::connection& conn) {
    rows.push_back(deploy_row(conn, x, body, opts_.instance));
    return true;
  });
}

void pg_store::change_outbox(const outbox_change& change,
                             committed_rows& rows) {
  transact(rows, [&](pg::connection& conn) {
    auto now = now_ms();
    bool status_settled = false;
    // Only this instance's rows: another's are its to settle.
    for (auto& x : change.settled) {
      auto settled = conn.query(
        "UPDATE outbox SET settled_at = $1, outcome = $2 WHERE id = $3 "
        "AND settled_at IS NULL AND owner IS NOT DISTINCT FROM $4 "
        "RETURNING kind",
        {pg::int64_param(now), x.outcome, pg::int64_param(x.id),
         or_null(opts_.instance)});
      if (settled.rows() > 0 && settled.text(0, 0) == "status")
        status_settled = true;
    }
    // What the settled rows lead to is written at the moment they settle.
    for (auto& x : change.added)
      rows.push_back(
        insert_outbox(conn, x.kind, x.stream, x.body, opts_.instance, now));
    // A deployment waiting for its earlier statuses may be claimed now.
    if (status_settled)
      wake_instances(conn);
    return true;
  });
}

bool pg_store::remove_lock(const std::string& repo,
                           const std::string& environment) {
  return transact([&](pg::connection& conn) {
    xact_lock(conn, "lock:" + repo + " " + environment);
    return delete_lock(conn, repo, environment).has_value();
  });
}

void pg_store::set_repository_active(const std::string& repo, bool active) {
  transact([&](pg::connection& conn) {
    conn.query("INSERT INTO repositories(repo, active, first_seen) "
               "VALUES($1, $2, $3) ON CONFLICT(repo) DO UPDATE SET "
               "active = excluded.active",
               {repo, std::string{active ? "1" : "0"}, now_iso8601()});
    return true;
  });
}

} // namespace heaven
