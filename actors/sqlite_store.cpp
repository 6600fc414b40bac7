/// The store contract on SQLite: the writes, each one transaction.
#include "actors/sqlite_store.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/store_rules.hpp"
#include "actors/store_schema.hpp"
#include "base/lifecycle.hpp"
#include "base/notices.hpp"
#include "base/queueing.hpp"
#include "base/retry.hpp"

namespace heaven {

namespace sqlite_rows {

std::string now_iso8601() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  auto secs = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

int64_t now_ms() {
  return unix_now_ms();
}

} // namespace sqlite_rows

using namespace sqlite_rows;

namespace {

/// Removes the lock on (repo, environment); returns it, if there was one.
std::optional<env_lock> delete_lock(database& db, const std::string& repo,
                                    const std::string& environment) {
  auto held = find_lock(db, repo, environment);
  if (held)
    db.cached("DELETE FROM locks WHERE repo = ? AND environment = ?")
      .bind(1, repo)
      .bind(2, environment)
      .run();
  return held;
}

/// Records `repo` (active) unless known; returns whether it is active.
bool note_repository(database& db, const std::string& repo,
                     const std::string& now) {
  // Read first: nearly every event is of a repository heard from before,
  // and then one statement does.
  auto& stmt = db.cached("SELECT active FROM repositories WHERE repo = ?");
  stmt.bind(1, repo);
  bool known = stmt.step();
  bool active = !known || stmt.int64(0) != 0;
  stmt.reset();
  if (!known)
    db.cached("INSERT INTO repositories(repo, active, first_seen) "
              "VALUES(?, 1, ?)")
      .bind(1, repo)
      .bind(2, now)
      .run();
  return active;
}

/// Inserts a deployment event's record (state "queued" until the rules say
/// otherwise, in the same transaction); its local id.
int64_t insert_deployment(database& db, const inbound_event& ev,
                          const std::string& now) {
  const auto& r = ev.deployment;
  // The description starts as GitHub's deployment description; status
  // updates replace it.
  db.cached("INSERT INTO deployments(delivery, github_id, repo, app, "
            "environment, ref, sha, task, provider, actor, state, "
            "description, request, created_at, updated_at) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)")
    .bind(1, ev.delivery)
    .bind(2, r.github_id)
    .bind(3, r.repo)
    .bind(4, r.app)
    .bind(5, r.environment)
    .bind(6, r.ref)
    .bind(7, r.sha)
    .bind(8, r.task)
    .bind(9, r.provider)
    .bind(10, r.actor)
    .bind(11, r.description)
    .bind(12, request_to_json(r).dump())
    .bind(13, now)
    .bind(14, now)
    .run();
  return db.last_insert_rowid();
}

/// Applies the lock rule (store_rules.hpp) for (repo, the deployment's
/// environment) and fills `res.lock_state` and `res.lock`.
lock_decision apply_lock_rule(database& db, const inbound_event& ev,
                              const std::string& repo, const std::string& now,
                              accept_result& res) {
  const auto& r = ev.deployment;
  return heaven::apply_lock_rule(
    ev, repo, res, [&] { return find_lock(db, repo, r.environment); },
    [&] {
      db.cached("INSERT INTO locks(repo, environment, actor, reason, "
                "locked_at, deployment_id) VALUES(?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(repo, environment) DO UPDATE SET "
                "reason = excluded.reason, "
                "deployment_id = excluded.deployment_id")
        .bind(1, repo)
        .bind(2, r.environment)
        .bind(3, r.actor)
        .bind(4, r.description)
        .bind(5, now)
        .bind(6, res.deployment_id)
        .run();
    },
    [&] { return delete_lock(db, repo, r.environment); });
}

/// Adds one row to the outbox (in the caller's transaction); returns it
/// with its id.
outbox_row insert_outbox(database& db, std::string kind, std::string stream,
                         std::string body, int64_t created_ms = 0) {
  outbox_row row{0, std::move(kind), std::move(stream), std::move(body),
                 created_ms > 0 ? created_ms : now_ms()};
  db.cached("INSERT INTO outbox(kind, stream, body, created_at) "
            "VALUES(?, ?, ?, ?)")
    .bind(1, row.kind)
    .bind(2, row.stream)
    .bind(3, row.body)
    .bind(4, row.created_ms)
    .run();
  row.id = db.last_insert_rowid();
  return row;
}

/// The stream of deployment `id`'s statuses: they go to GitHub in order.
std::string status_stream(int64_t id) {
  return "d" + std::to_string(id);
}

/// Queues the GitHub status that says deployment `id` (of `r`) is in
/// `state`.
outbox_row queue_status(database& db, int64_t id, const deployment_request& r,
                        deploy_state state, const std::string& description) {
  return insert_outbox(db, "status", status_stream(id),
                       status_body(id, r, state, description));
}

/// Sets deployment `id`'s state and description; a terminal state also sets
/// finished_at, running sets started_at.
void set_state(database& db, int64_t id, deploy_state state,
               const std::string& description, const std::string& now) {
  db.cached("UPDATE deployments SET state = ?1, description = ?2, "
            "updated_at = ?3, "
            "started_at = CASE WHEN ?1 = 'running' THEN ?3 ELSE started_at "
            "END, "
            "finished_at = CASE WHEN ?4 THEN coalesce(finished_at, ?3) "
            "ELSE finished_at END WHERE id = ?5")
    .bind(1, to_string(state))
    .bind(2, description)
    .bind(3, now)
    .bind(4, int64_t{terminal(state) ? 1 : 0})
    .bind(5, id)
    .run();
}

/// GitHub's id of the deployment another deployment (`id`) of `r`'s app and
/// environment waits for: the one running there, else the oldest queued;
/// none when none is queued or running (the concurrency rule: one at a
/// time).
std::optional<int64_t> ahead(database& db, int64_t id,
                             const deployment_request& r) {
  auto& stmt = db.cached(
    "SELECT github_id FROM deployments WHERE app = ? AND environment = ? "
    "AND state IN ('queued', 'running') AND id != ? "
    "ORDER BY state = 'running' DESC, id LIMIT 1");
  stmt.bind(1, r.app).bind(2, r.environment).bind(3, id);
  std::optional<int64_t> found;
  if (stmt.step())
    found = stmt.int64(0);
  stmt.reset(); // See find_lock.
  return found;
}

/// The queued deployments of `r`'s app and environment other than `id`,
/// oldest first: of `task` only, and older than `id`, when `task` is given;
/// whose description is not `unless`, when that is given.
std::vector<int64_t>
waiting_ids(database& db, int64_t id, const deployment_request& r,
            const std::string* task, const std::string* unless = nullptr) {
  auto& stmt = db.cached(
    "SELECT id FROM deployments WHERE app = ?1 AND environment = ?2 "
    "AND state = 'queued' AND id != ?3 "
    "AND (?4 IS NULL OR (task = ?4 AND id < ?3)) "
    "AND (?5 IS NULL OR description != ?5) ORDER BY id");
  stmt.bind(1, r.app).bind(2, r.environment).bind(3, id);
  if (task != nullptr)
    stmt.bind(4, *task);
  else
    stmt.bind(4, nullptr);
  if (unless != nullptr)
    stmt.bind(5, *unless);
  else
    stmt.bind(5, nullptr);
  std::vector<int64_t> ids;
  while (stmt.step())
    ids.push_back(stmt.int64(0));
  stmt.reset();
  return ids;
}

/// Queues the creation of a GitHub deployment: `body` (see deploy_body in
/// store_rules.hpp) as a "deploy" outbox row of `x`'s stream.
outbox_row deploy_row(database& db, const auto_deployment& x,
                      const std::string& body) {
  return insert_outbox(db, "deploy", deploy_stream(x), body);
}

/// The request of deployment `id` and its state (none when the record
/// names no state heaven knows), if there is such a deployment.
std::optional<std::pair<deployment_request, std::optional<deploy_state>>>
find_deployment(database& db, int64_t id) {
  auto& stmt = db.cached("SELECT state, request, repo, github_id, app, "
                         "environment, sha, task FROM deployments "
                         "WHERE id = ?");
  stmt.bind(1, id);
  if (!stmt.step()) {
    stmt.reset();
    return std::nullopt;
  }
  auto state = parse<deploy_state>(stmt.text(0));
  // The columns are the fallback should the JSON be damaged or old.
  deployment_request r;
  stmt.columns(2, r.repo, r.github_id, r.app, r.environment, r.sha, r.task);
  auto request = stmt.text(1);
  stmt.reset();
  read_request(request, r, id);
  return std::make_pair(std::move(r), std::move(state));
}

/// Sets deployment `id` (queued) to `state` with `description`, and queues
/// the status that says so.
void restate(database& db, int64_t id, deploy_state state,
             const std::string& description, const std::string& now,
             committed_rows& rows) {
  auto found = find_deployment(db, id);
  if (!found)
    return;
  set_state(db, id, state, description, now);
  rows.push_back(queue_status(db, id, found->first, state, description));
}

/// Supersede: the waiting deployments of `r`'s app, environment and task
/// older than `id` end with `error` "superseded by deployment N". Returns
/// their ids.
std::vector<int64_t> supersede(database& db, int64_t id,
                               const deployment_request& r,
                               const std::string& now, committed_rows& rows) {
  auto why = superseded_description(r.github_id);
  auto older = waiting_ids(db, id, r, &r.task);
  for (auto ended : older)
    restate(db, ended, deploy_state::error, why, now, rows);
  return older;
}

} // namespace

sqlite_store::sqlite_store(const std::string& path, open_mode mode,
                           bool notices)
  : db_(path, mode), notices_(notices) {
  migrate(db_, path);
  db_.checkpoint_by_hand();
}

sqlite_store::~sqlite_store() = default;

void sqlite_store::begin_batch() {
  db_.cached("BEGIN IMMEDIATE").run();
}

void sqlite_store::commit_batch() {
  try {
    db_.cached("COMMIT").run();
  } catch (...) {
    // A failed COMMIT may leave the transaction open (SQLITE_BUSY): end it,
    // so the next batch starts clean.
    if (!db_.autocommit())
      db_.exec_quietly("ROLLBACK");
    throw;
  }
}

bool sqlite_store::in_batch() const {
  return !db_.autocommit();
}

// SQLite's own threshold, moved out of the commit: the answers a commit
// holds go out before the copy, and only the requests arriving meanwhile
// wait for it.
void sqlite_store::after_batches() {
  constexpr int checkpoint_pages = 250;
  if (db_.log_pages() < checkpoint_pages)
    return;
  try {
    db_.checkpoint();
  } catch (const std::exception& e) {
    // The log only grows until a checkpoint works: nothing is lost.
    spdlog::warn("store could not copy its log into the database: {}",
                 e.what());
  }
}

// A lock task and a deployment arriving together are ordered by the
// transaction: never do both pass; two deployments of one app and
// environment: never do both run.
accept_result sqlite_store::accept(const inbound_event& ev,
                                   committed_rows& rows) {
  auto now = now_iso8601();
  transaction tx{db_};
  db_
    .cached("INSERT OR IGNORE INTO deliveries(delivery, event, body, "
            "received_at) VALUES(?, ?, ?, ?)")
    .bind(1, ev.delivery)
    .bind(2, to_string(ev.type))
    .bind(3, ev.body)
    .bind(4, now)
    .run();
  accept_result res;
  if (db_.changes() == 0) {
    res.duplicate = true;
    return res; // The rollback changes nothing: nothing was written.
  }
  const auto& repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
  if (!repo.empty() && !note_repository(db_, repo, now)) {
    // The delivery stays recorded, so a redelivery is a duplicate.
    res.ignored = true;
  } else if (ev.type == event_kind::deployment) {
    const auto& r = ev.deployment;
    res.deployment_id = insert_deployment(db_, ev, now);
    auto lock = apply_lock_rule(db_, ev, repo, now, res);
    auto mode = read_queue_mode(r, queue_all_);
    bool applies = concurrency_applies(ev.lock_action, lock.outcome);
    // Only a deployment that will be queued replaces the waiting ones.
    if (applies && mode == queue_mode::supersede && ev.refusal.empty())
      res.superseded = supersede(db_, res.deployment_id, r, now, rows);
    auto first = applies ? ahead(db_, res.deployment_id, r) : std::nullopt;
    auto v = decide_state(r, ev.lock_action, lock, res.lock.actor,
                          first.has_value(), ev.refusal,
                          mode != queue_mode::refuse, first.value_or(0));
    set_state(db_, res.deployment_id, v.state, v.description, now);
    rows.push_back(
      queue_status(db_, res.deployment_id, r, v.state, v.description));
    res.state = v.state;
    res.description = std::move(v.description);
  } else if (ev.type == event_kind::deployment_status) {
    // The notice's base is decided here, once: the notice carries the
    // revision before it, whenever and however often it is delivered.
    const auto& n = ev.notice;
    auto base = record_reported(db_, n, now);
    if (notices_)
      rows.push_back(insert_outbox(db_, notice_kind, notice_stream(n),
                                   notice_row_body(n, base)));
  }
  tx.commit();
  return res;
}

bool sqlite_store::start(int64_t id, const std::string& description,
                         committed_rows& rows) {
  auto now = now_iso8601();
  transaction tx{db_};
  auto found = find_deployment(db_, id);
  if (!found || found->second != deploy_state::queued)
    return false;
  const auto& r = found->first;
  if (read_queue_mode(r, queue_all_) != queue_mode::refuse) {
    // A lock taken while it waited refuses it at its turn.
    if (auto held = find_lock(db_, r.repo, r.environment)) {
      restate(db_, id, deploy_state::error, locked_description(r, held->actor),
              now, rows);
      tx.commit();
      return false;
    }
  }
  set_state(db_, id, deploy_state::running, description, now);
  rows.push_back(queue_status(db_, id, r, deploy_state::running, description));
  // Those behind it now wait for it.
  auto waiting = waiting_description(r.github_id);
  for (auto next : waiting_ids(db_, id, r, nullptr, &waiting))
    restate(db_, next, deploy_state::queued, waiting, now, rows);
  tx.commit();
  return true;
}

bool sqlite_store::finish(int64_t id, const provider_outcome& outcome,
                          committed_rows& rows) {
  if (!terminal(outcome.state))
    throw std::invalid_argument("'" + to_string(outcome.state)
                                + "' is not a state a deployment ends in");
  auto now = now_iso8601();
  transaction tx{db_};
  auto found = find_deployment(db_, id);
  if (!found || (found->second && terminal(*found->second)))
    return false;
  set_state(db_, id, outcome.state, outcome.description, now);
  if (outcome.state == deploy_state::success)
    record_finished(db_, id, found->first, now);
  rows.push_back(
    queue_status(db_, id, found->first, outcome.state, outcome.description));
  tx.commit();
  return true;
}

bool sqlite_store::claim(const auto_deployment& x, committed_rows& rows) {
  auto body = deploy_body(x, "the auto deployment's");
  transaction tx{db_};
  db_
    .cached("INSERT OR IGNORE INTO auto_deploys(repo, app, environment, "
            "sha, claimed_at) VALUES(?, ?, ?, ?, ?)")
    .bind(1, x.repo)
    .bind(2, x.app)
    .bind(3, x.environment)
    .bind(4, x.sha)
    .bind(5, now_iso8601())
    .run();
  if (db_.changes() != 1)
    return false;
  rows.push_back(deploy_row(db_, x, body));
  tx.commit();
  return true;
}

void sqlite_store::queue_creation(const auto_deployment& x,
                                  committed_rows& rows) {
  auto body = deploy_body(x, "the deployment's");
  transaction tx{db_};
  rows.push_back(deploy_row(db_, x, body));
  tx.commit();
}

void sqlite_store::change_outbox(const outbox_change& change,
                                 committed_rows& rows) {
  auto now = now_ms();
  transaction tx{db_};
  for (auto& x : change.settled)
    db_
      .cached("UPDATE outbox SET settled_at = ?, outcome = ? WHERE id = ? "
              "AND settled_at IS NULL")
      .bind(1, now)
      .bind(2, x.outcome)
      .bind(3, x.id)
      .run();
  // What the settled rows lead to is written at the moment they settle.
  for (auto& x : change.added)
    rows.push_back(insert_outbox(db_, x.kind, x.stream, x.body, now));
  tx.commit();
}

bool sqlite_store::remove_lock(const std::string& repo,
                               const std::string& environment) {
  transaction tx{db_};
  auto removed = delete_lock(db_, repo, environment);
  tx.commit();
  return removed.has_value();
}

void sqlite_store::set_repository_active(const std::string& repo, bool active) {
  db_
    .cached("INSERT INTO repositories(repo, active, first_seen) "
            "VALUES(?, ?, ?) ON CONFLICT(repo) DO UPDATE SET "
            "active = excluded.active")
    .bind(1, repo)
    .bind(2, int64_t{active ? 1 : 0})
    .bind(3, now_iso8601())
    .run();
}

} // namespace heaven
