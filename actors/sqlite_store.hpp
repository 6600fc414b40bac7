/// The store contract on SQLite: heaven's database file (WAL) in the data
/// directory. The writes are in sqlite_store.cpp, the reads in
/// sqlite_reads.cpp, what is deployed where (both) in sqlite_revisions.cpp.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "actors/sqlite.hpp"
#include "actors/store_backend.hpp"

namespace heaven {

/// heaven's tables in one SQLite file. Calls block (a busy database is
/// waited for up to 5 s), so its user runs detached.
class sqlite_store final : public store_backend {
public:
  /// Opens the database at `path` (creating it only with open_mode::create)
  /// and brings its schema up to date (store_schema.hpp). Throws like
  /// `database`. Without `notices`, a deployment_status event queues no
  /// chat notice (no chat service is configured to read it); its revision is
  /// recorded all the same.
  sqlite_store(const std::string& path, open_mode mode, bool notices = true);

  ~sqlite_store() override;

  void begin_batch() override;
  void commit_batch() override;
  bool in_batch() const override;
  void after_batches() override;

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

private:
  database db_;
  bool notices_;
};

// -- helpers shared by the sqlite_*.cpp files ---------------------------------

namespace sqlite_rows {

/// Now as ISO-8601 UTC with milliseconds, e.g. "2026-11-27T12:00:00.123Z".
std::string now_iso8601();

/// Now as Unix milliseconds: outbox rows' times.
int64_t now_ms();

/// The lock on (repo, environment), if any.
std::optional<env_lock> find_lock(database& db, const std::string& repo,
                                  const std::string& environment);

/// Heaven's deployment `id` of `r` ended in success: a `deploy` with a sha
/// becomes the revision of its repository, app and environment (in the
/// caller's transaction), unless that GitHub deployment is its revision
/// already.
void record_finished(database& db, int64_t id, const deployment_request& r,
                     const std::string& now);

/// GitHub reports `n`: a successful `deploy` of another tool becomes the
/// revision of its repository, app and environment (in the caller's
/// transaction); heaven's own deployments were recorded when they finished.
/// Returns the notice's base (notice_row_body): the sha a successful
/// `deploy` replaced there, or for a start the sha deployed there, read and
/// left as it is ("" when none, not known, or another notice).
std::string record_reported(database& db, const deployment_notice& n,
                            const std::string& now);

/// A deployment's request as it is stored (a JSON object of its fields).
nlohmann::json request_to_json(const deployment_request& r);

/// Reads a deployment's stored request (JSON text) into `r`; fields missing
/// from the JSON keep the values already in `r` (taken from the row's
/// columns). False when the text is no JSON object; a damaged one is
/// logged (for deployment `id`) and read as far as it goes.
bool read_request(const std::string& text, deployment_request& r, int64_t id);

/// The request of deployment `row` as its details show it: the row's
/// columns (payload "{}"), then what its stored request JSON `text` adds
/// (read_request).
deployment_request request_of_row(const deployment_row& row,
                                  const std::string& text);

/// One of a deployment's statuses in the outbox: the row's `body` (JSON
/// text; its state and description), when it was queued and settled (ms, 0
/// while it is not) and its outcome.
status_entry status_entry_of(const std::string& body, int64_t queued_ms,
                             int64_t settled_ms, std::string outcome);

} // namespace sqlite_rows

} // namespace heaven
