/// The store contract on PostgreSQL: the reads (the same answers as
/// sqlite_reads.cpp's), each in a transaction of its own or in the store's
/// batch (see pg_store.hpp).
#include "actors/pg_store.hpp"

#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/sqlite_store.hpp"

namespace heaven {

using pg_rows::or_null;
using sqlite_rows::read_request;
using sqlite_rows::request_of_row;
using sqlite_rows::status_entry_of;

namespace {

/// Column `col` of row `row` as an int64, 0 when NULL.
int64_t int64_or_0(const pg::result& r, int row, int col) {
  return r.is_null(row, col) ? 0 : r.int64(row, col);
}

/// The columns of a deployment_row, read by deployment_of.
constexpr auto row_columns
  = "SELECT id, github_id, repo, app, environment, ref, sha, task, provider, "
    "actor, state, description, created_at, updated_at, finished_at";

deployment_row deployment_of(const pg::result& r, int i) {
  deployment_row x;
  x.id = r.int64(i, 0);
  x.github_id = int64_or_0(r, i, 1);
  x.repo = r.text(i, 2);
  x.app = r.text(i, 3);
  x.environment = r.text(i, 4);
  x.ref = r.text(i, 5);
  x.sha = r.text(i, 6);
  x.task = r.text(i, 7);
  x.provider = r.text(i, 8);
  x.actor = r.text(i, 9);
  // Only heaven writes states; an unknown one lists as error.
  x.state = parse<deploy_state>(r.text(i, 10)).value_or(deploy_state::error);
  x.description = r.text(i, 11);
  x.created_at = r.text(i, 12);
  x.updated_at = r.text(i, 13);
  x.finished_at = r.text(i, 14);
  return x;
}

/// The columns an unfinished deployment is read from, in unfinished_row's
/// order.
constexpr auto unfinished_columns
  = "SELECT id, state, request, github_id, repo, app, environment, ref, sha, "
    "task, provider, actor, description FROM deployments ";

unfinished_deployment unfinished_row(const pg::result& res, int i) {
  unfinished_deployment x;
  x.id = res.int64(i, 0);
  x.state = parse<deploy_state>(res.text(i, 1)).value_or(deploy_state::queued);
  auto& r = x.request;
  // The columns are the fallback should the JSON be damaged or old.
  r.github_id = int64_or_0(res, i, 3);
  r.repo = res.text(i, 4);
  r.app = res.text(i, 5);
  r.environment = res.text(i, 6);
  r.ref = res.text(i, 7);
  r.sha = res.text(i, 8);
  r.task = res.text(i, 9);
  r.provider = res.text(i, 10);
  r.actor = res.text(i, 11);
  r.description = res.text(i, 12);
  r.payload_json = "{}";
  if (!read_request(res.text(i, 2), r, x.id))
    spdlog::error("store found no readable request for deployment {}; "
                  "rebuilding it from its columns",
                  x.id);
  return x;
}

std::vector<unfinished_deployment> unfinished_rows(const pg::result& r) {
  std::vector<unfinished_deployment> result;
  for (int i = 0; i < r.rows(); ++i)
    result.push_back(unfinished_row(r, i));
  return result;
}

} // namespace

std::vector<outbox_row> pg_store::unsettled(const std::string& kind) {
  return transact([&](pg::connection& conn) {
    // Rows nobody delivers (the command line's) become this instance's.
    if (!opts_.instance.empty())
      conn.query("UPDATE outbox SET owner = $1 WHERE owner IS NULL AND "
                 "settled_at IS NULL AND kind = $2",
                 {opts_.instance, kind});
    auto r = conn.query("SELECT id, kind, stream, body, created_at FROM "
                        "outbox WHERE kind = $1 AND settled_at IS NULL AND "
                        "owner IS NOT DISTINCT FROM $2 ORDER BY id",
                        {kind, or_null(opts_.instance)});
    std::vector<outbox_row> result;
    for (int i = 0; i < r.rows(); ++i)
      result.push_back({r.int64(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3),
                        r.int64(i, 4)});
    return result;
  });
}

std::vector<deployment_row> pg_store::list(int32_t n) {
  deployment_filter all;
  all.limit = n;
  return list(all);
}

std::vector<deployment_row> pg_store::list(const deployment_filter& f) {
  std::vector<deployment_row> result;
  if (f.limit <= 0)
    return result;
  std::string sql = std::string{row_columns} + " FROM deployments WHERE true";
  std::vector<pg::param> params;
  auto where = [&](const char* column, pg::param value) {
    params.push_back(std::move(value));
    sql += std::string{" AND "} + column + " $" + std::to_string(params.size());
  };
  if (!f.repo.empty())
    where("repo =", f.repo);
  if (!f.environment.empty())
    where("environment =", f.environment);
  if (!f.state.empty())
    where("state =", f.state);
  if (f.before > 0)
    where("id <", pg::int64_param(f.before));
  params.push_back(pg::int64_param(f.limit));
  sql += " ORDER BY id DESC LIMIT $" + std::to_string(params.size());
  return transact([&](pg::connection& conn) {
    auto r = conn.query(sql, params);
    std::vector<deployment_row> rows;
    for (int i = 0; i < r.rows(); ++i)
      rows.push_back(deployment_of(r, i));
    return rows;
  });
}

deployment_detail pg_store::detail(int64_t id) {
  return transact([&](pg::connection& conn) {
    deployment_detail d;
    auto r = conn.query(std::string{row_columns}
                          + ", request, started_at FROM deployments "
                            "WHERE id = $1",
                        {pg::int64_param(id)});
    if (r.rows() == 0)
      return d;
    d.found = true;
    d.row = deployment_of(r, 0);
    d.request = request_of_row(d.row, r.text(0, 15));
    d.started_at = r.text(0, 16);
    auto s = conn.query("SELECT body, created_at, settled_at, outcome "
                        "FROM outbox WHERE kind = 'status' AND stream = $1 "
                        "ORDER BY id",
                        {pg_rows::status_stream(id)});
    for (int i = 0; i < s.rows(); ++i) {
      d.statuses.push_back(status_entry_of(s.text(i, 0), s.int64(i, 1),
                                           int64_or_0(s, i, 2), s.text(i, 3)));
    }
    auto rev = conn.query("SELECT sha FROM revisions WHERE repo = $1 AND "
                          "app = $2 AND environment = $3",
                          {d.row.repo, d.row.app, d.row.environment});
    if (rev.rows() > 0)
      d.current_sha = rev.text(0, 0);
    return d;
  });
}

std::vector<unfinished_deployment> pg_store::pending() {
  return transact([&](pg::connection& conn) {
    return unfinished_rows(
      conn.query(std::string{unfinished_columns}
                 + "WHERE state IN ('queued', 'running') ORDER BY id ASC"));
  });
}

std::vector<unfinished_deployment> pg_store::pending_after(int64_t after,
                                                           int32_t limit) {
  if (limit <= 0)
    return {};
  return transact([&](pg::connection& conn) {
    return unfinished_rows(
      conn.query(std::string{unfinished_columns}
                   + "WHERE state IN ('queued', 'running') AND id > $1 "
                     "ORDER BY id ASC LIMIT $2",
                 {pg::int64_param(after), pg::int64_param(limit)}));
  });
}

std::vector<env_lock> pg_store::locks() {
  return transact([&](pg::connection& conn) {
    // Ordered as SQLite orders text: by bytes.
    auto r = conn.query(
      std::string{"SELECT "} + pg_rows::lock_columns
      + " FROM locks ORDER BY locked_at COLLATE \"C\", repo COLLATE \"C\", "
        "environment COLLATE \"C\"");
    std::vector<env_lock> result;
    for (int i = 0; i < r.rows(); ++i)
      result.push_back(pg_rows::lock_of(r, i));
    return result;
  });
}

std::vector<repository_record> pg_store::repositories() {
  return transact([&](pg::connection& conn) {
    auto r = conn.query("SELECT repo, active, first_seen FROM repositories "
                        "ORDER BY repo COLLATE \"C\"");
    std::vector<repository_record> result;
    for (int i = 0; i < r.rows(); ++i)
      result.push_back({r.text(i, 0), r.int64(i, 1) != 0, r.text(i, 2)});
    return result;
  });
}

} // namespace heaven
