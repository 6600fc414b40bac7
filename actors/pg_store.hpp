/// The store contract on PostgreSQL (HEAVEN_DATABASE_URL): several heaven
/// instances share one database. The connection, the writes and the retry
/// of conflicting transactions are in pg_store.cpp, the reads in
/// pg_reads.cpp, the schema in pg_schema.cpp, leases, claims and failover in
/// pg_instances.cpp, logs and shared secrets in pg_logs.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "actors/pg.hpp"
#include "actors/store_backend.hpp"

namespace heaven {

/// How a pg_store is opened.
struct pg_options {
  /// Queue chat notices for deployment_status events (as sqlite_store).
  bool notices = true;
  /// Create or migrate the schema at start (under an advisory lock); when
  /// false (the command line's tools) a database without heaven's schema,
  /// or with an older one, is refused.
  bool migrate = true;
  /// This instance's id ("" for the command line: it holds no lease and
  /// claims nothing). Rows it adds to the outbox are its to deliver.
  std::string instance;
  /// HEAVEN_LEASE_SECONDS: an instance that has not renewed its lease for
  /// two of these is taken over.
  int64_t lease_seconds = 30;
  /// What `instances` says of this one (host name, listen address).
  std::string host;
  std::string listen;
};

/// heaven's tables in one PostgreSQL database. Outside a batch each
/// operation is one transaction of its own: one that meets a deadlock or a
/// serialization failure is run again. In a batch (the store's group
/// commit) the operations share one transaction, begun by the first and
/// committed by commit_batch; when one of them throws, or the commit fails
/// in a way that running them again may mend, the whole batch is rolled
/// back and batch_undone thrown, and the store runs its operations again,
/// each alone. A lost connection is made again, with a backoff; while it
/// cannot be, every operation throws pg::error ("the database is
/// unreachable: ...") and changes nothing. Calls block, so its user runs
/// detached.
class pg_store final : public store_backend {
public:
  /// Connects to `url`, brings the schema up to date (see pg_schema.hpp)
  /// and, for an instance, joins with a fresh lease. Throws pg::error; the
  /// message never holds the URL's password.
  pg_store(const std::string& url, pg_options opts);

  ~pg_store() override;

  void begin_batch() override;
  void commit_batch() override;
  bool in_batch() const override;

  accept_result accept(const inbound_event& ev, committed_rows& rows) override;
  bool start(int64_t id, const std::string& description,
             committed_rows& rows) override;
  bool finish(int64_t id, const provider_outcome& outcome,
              committed_rows& rows) override;
  bool claim(const auto_deployment& x, committed_rows& rows) override;
  void queue_creation(const auto_deployment& x, committed_rows& rows) override;
  void change_outbox(const outbox_change& change,
                     committed_rows& rows) override;
  bool remove_lock(const std::string& repo,
                   const std::string& environment) override;
  void set_repository_active(const std::string& repo, bool active) override;

  std::vector<outbox_row> unsettled(const std::string& kind) override;
  std::vector<deployment_row> list(int32_t n) override;
  std::vector<deployment_row> list(const deployment_filter& f) override;
  deployment_detail detail(int64_t id) override;
  std::vector<unfinished_deployment> pending() override;
  std::vector<unfinished_deployment> pending_after(int64_t after,
                                                   int32_t limit) override;
  std::vector<env_lock> locks() override;
  std::vector<deployed_environment> latest(const std::string& repo) override;
  std::vector<repository_record> repositories() override;

  bool shared() const override;
  std::vector<unfinished_deployment> claim_queued(int32_t limit) override;
  lease_report renew_lease(const std::string& why, committed_rows& rows,
                           committed_rows& adopted) override;
  void leave() override;
  void append_log(int64_t id, int64_t offset, const std::string& bytes,
                  const std::string& times) override;
  log_piece read_log(int64_t id, int64_t from, int64_t max) override;
  std::string shared_secret(const std::string& name,
                            const std::string& fresh) override;

  /// This instance's id ("" for the command line).
  const std::string& instance() const {
    return opts_.instance;
  }

  /// Runs `fn(conn)` in one transaction and commits it: again (up to a few
  /// times) when PostgreSQL ends it with a deadlock or a serialization
  /// failure, after making the connection again when it was lost. What
  /// `fn` returns is returned once committed; `rows` it added are kept only
  /// from the run that committed. Throws what `fn` throws (the transaction
  /// is then rolled back), or pg::error. In a batch, `fn` runs once in the
  /// batch's transaction, which commit_batch commits; when it throws, the
  /// whole batch is rolled back and batch_undone thrown instead.
  template <class Fn>
  auto transact(committed_rows& rows, Fn fn)
    -> decltype(fn(std::declval<pg::connection&>())) {
    auto kept = rows.size();
    if (batch_) {
      auto& conn = batch_connection();
      try {
        return fn(conn);
      } catch (const std::exception& e) {
        // What it did may be half done: the batch goes whole.
        rows.resize(kept);
        undo_batch(e.what());
      }
    }
    for (int attempt = 1;; ++attempt) {
      auto& conn = connection();
      try {
        pg::transaction tx{conn};
        auto res = fn(conn);
        tx.commit();
        return res;
      } catch (const pg::error& e) {
        rows.resize(kept);
        if (!retry_after(e, attempt))
          throw;
      }
    }
  }

  /// `transact` for an operation that adds no outbox rows.
  template <class Fn>
  auto transact(Fn fn) -> decltype(fn(std::declval<pg::connection&>())) {
    committed_rows none;
    return transact(none, std::move(fn));
  }

private:
  /// The connection, made again first when it was lost (not more often
  /// than the backoff allows: until then throws pg::error).
  pg::connection& connection();

  /// The batch's connection, its transaction begun by the first operation
  /// that asks. Throws pg::error when there is no connection and no
  /// transaction yet (the asking operation fails alone), batch_undone when
  /// BEGIN fails.
  pg::connection& batch_connection();

  /// Rolls the batch back, ends it, and throws batch_undone saying `why`.
  [[noreturn]] void undo_batch(const std::string& why);

  /// Whether a transaction that failed with `e` on its `attempt`th run
  /// should run again (a deadlock, a serialization failure, a connection
  /// lost before the commit was sent).
  bool retry_after(const pg::error& e, int attempt);

  std::string url_;
  pg_options opts_;
  std::unique_ptr<pg::connection> conn_;
  /// When the connection may next be tried again, and the wait after that.
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_{0};
  /// Why the last attempt to connect failed.
  std::string unreachable_;
  bool batch_ = false;
  /// The batch's transaction, once an operation of it began one.
  std::optional<pg::transaction> batch_tx_;
};

/// A fresh id for this instance: "<host>-<pid>-<random hex>".
std::string new_instance_id(const std::string& host);

// -- helpers shared by the pg_*.cpp files -------------------------------------

namespace pg_rows {

/// `s` as a parameter, NULL when empty (an instance id).
pg::param or_null(const std::string& s);

/// The columns `lock_of` reads, in its order.
inline constexpr const char* lock_columns
  = "repo, environment, actor, reason, locked_at, deployment_id";

/// The lock in row `row` of `r` (columns `lock_columns`).
env_lock lock_of(const pg::result& r, int row);

/// The stream of deployment `id`'s statuses ("d<id>", as SQLite's).
std::string status_stream(int64_t id);

/// Adds one row to the outbox in the caller's transaction, `owner`'s to
/// deliver (NULL when empty: any instance may adopt it); returns it with
/// its id.
outbox_row insert_outbox(pg::connection& conn, const std::string& kind,
                         const std::string& stream, const std::string& body,
                         const std::string& owner, int64_t created_ms = 0);

/// Queues the GitHub status that says deployment `id` (of `r`) is in
/// `state` (the same body as SQLite's), `owner`'s to deliver.
outbox_row queue_status(pg::connection& conn, int64_t id,
                        const deployment_request& r, deploy_state state,
                        const std::string& description,
                        const std::string& owner);

/// Sets deployment `id`'s state and description (a terminal state sets
/// finished_at, running sets started_at), as SQLite's set_state.
void set_state(pg::connection& conn, int64_t id, deploy_state state,
               const std::string& description, const std::string& now);

/// Deployment `id`'s request (read from its row) and state, if there is
/// such a deployment; `for_update` locks its row.
std::optional<std::pair<deployment_request, std::optional<deploy_state>>>
find_deployment(pg::connection& conn, int64_t id, bool for_update);

/// Whether `e` is PostgreSQL saying the database is not reachable (the
/// connection is gone, or the server refuses connections).
bool connection_lost(const pg::error& e);

/// Registers the instance `opts` names (if any) with a fresh lease, on a
/// new connection (pg_instances.cpp; the constructor calls it after the
/// schema is up to date, and again after a reconnect).
void join_instance(pg::connection& conn, const pg_options& opts);

} // namespace pg_rows

} // namespace heaven
