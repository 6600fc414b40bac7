/// The store contract on PostgreSQL: several instances. Each instance holds
/// a lease (a row of `instances` it renews); queued deployments are claimed
/// with FOR UPDATE SKIP LOCKED; an instance that stopped renewing is taken
/// over by the first one to notice: what it ran ends with `error`, what it
/// had not started goes back to be claimed, its undelivered outbox rows
/// become the taker's.
#include "actors/pg_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>

#include "actors/sqlite_store.hpp"

namespace heaven {

namespace {

/// Wakes the instances listening for work (delivered on commit).
void notify_work(pg::connection& conn) {
  conn.query("SELECT pg_notify('heaven_work', '')");
}

/// Reads the deployments a claim returned (id, request, repo, github_id,
/// app, environment, sha, task), oldest first.
std::vector<unfinished_deployment> claimed(const pg::result& res) {
  std::vector<unfinished_deployment> out;
  out.reserve(static_cast<size_t>(res.rows()));
  for (int i = 0; i < res.rows(); ++i) {
    unfinished_deployment d;
    d.id = res.int64(i, 0);
    d.state = deploy_state::queued;
    auto& r = d.request;
    r.repo = res.text(i, 2);
    r.github_id = res.is_null(i, 3) ? 0 : res.int64(i, 3);
    r.app = res.text(i, 4);
    r.environment = res.text(i, 5);
    r.sha = res.text(i, 6);
    r.task = res.text(i, 7);
    sqlite_rows::read_request(res.text(i, 1), r, d.id);
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

/// Unsettled outbox rows a query returned (id, kind, stream, body,
/// created_at), added to `rows` oldest first.
void add_rows(const pg::result& res, committed_rows& rows) {
  committed_rows found;
  for (int i = 0; i < res.rows(); ++i)
    found.push_back(outbox_row{res.int64(i, 0), res.text(i, 1), res.text(i, 2),
                               res.text(i, 3), res.int64(i, 4)});
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  for (auto& row : found)
    rows.push_back(std::move(row));
}

/// Takes over instance `lost` for `me`: its running deployments end with
/// `error` and `why`, its claimed queued ones go back, its undelivered
/// outbox rows become `me`'s (added to `rows` before the new statuses).
void take_over(pg::connection& conn, const std::string& me,
               const std::string& lost, const std::string& why,
               committed_rows& rows, committed_rows& adopted,
               lease_report& report) {
  conn.query("UPDATE instances SET taken_over_by = $1, taken_over_at = now() "
             "WHERE id = $2",
             {me, lost});
  add_rows(conn.query("UPDATE outbox SET owner = $1 WHERE owner = $2 "
                      "AND settled_at IS NULL "
                      "RETURNING id, kind, stream, body, created_at",
                      {me, lost}),
           adopted);
  auto running = conn.query("SELECT id FROM deployments WHERE owner = $1 "
                            "AND state = 'running' ORDER BY id FOR UPDATE",
                            {lost});
  auto now = sqlite_rows::now_iso8601();
  for (int i = 0; i < running.rows(); ++i) {
    auto id = running.int64(i, 0);
    auto found = pg_rows::find_deployment(conn, id, true);
    if (!found)
      continue;
    conn.query("UPDATE deployments SET owner = $1 WHERE id = $2",
               {me, pg::int64_param(id)});
    pg_rows::set_state(conn, id, deploy_state::error, why, now);
    rows.push_back(pg_rows::queue_status(conn, id, found->first,
                                         deploy_state::error, why, me));
    ++report.ended;
  }
  auto released = conn.query("UPDATE deployments SET owner = NULL "
                             "WHERE owner = $1 AND state = 'queued'",
                             {lost});
  report.released += static_cast<int32_t>(released.affected());
  ++report.taken_over;
  spdlog::warn("store: instance {} took over lost instance {}", me, lost);
}

} // namespace

void pg_rows::join_instance(pg::connection& conn, const pg_options& opts) {
  if (opts.instance.empty())
    return;
  // Joining again after a reconnect renews nothing: an instance that was
  // taken over meanwhile stays taken over.
  conn.query("INSERT INTO instances(id, host, pid, listen, lease_seconds) "
             "VALUES($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
             {opts.instance, opts.host, std::to_string(::getpid()), opts.listen,
              pg::int64_param(opts.lease_seconds)});
}

std::string new_instance_id(const std::string& host) {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist;
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", dist(rd));
  return host + "-" + std::to_string(::getpid()) + "-" + hex;
}

bool pg_store::shared() const {
  return true;
}

std::vector<unfinished_deployment> pg_store::claim_queued(int32_t limit) {
  if (limit <= 0 || opts_.instance.empty())
    return {};
  const auto& me = opts_.instance;
  return transact([&](pg::connection& conn) {
    // Only an instance that still holds its lease claims; a deployment
    // whose earlier statuses another instance has yet to deliver waits, so
    // that GitHub gets them in order; one whose app and environment has a
    // deployment running, or an older one queued, waits its turn (one at a
    // time, oldest first: queued deployments, base/queueing.hpp).
    return claimed(conn.query(
      "WITH c AS (SELECT q.id FROM deployments q "
      "  WHERE q.state = 'queued' AND q.owner IS NULL "
      "    AND EXISTS (SELECT 1 FROM instances i WHERE i.id = $1 "
      "                AND i.taken_over_by IS NULL AND i.left_at IS NULL) "
      "    AND NOT EXISTS (SELECT 1 FROM outbox o "
      "      WHERE o.stream = 'd' || q.id AND o.settled_at IS NULL "
      "        AND o.kind = 'status' AND o.owner IS DISTINCT FROM $1) "
      "    AND NOT EXISTS (SELECT 1 FROM deployments b "
      "      WHERE b.app = q.app AND b.environment = q.environment "
      "        AND b.id <> q.id AND (b.state = 'running' "
      "          OR (b.state = 'queued' AND b.id < q.id))) "
      "  ORDER BY q.id LIMIT $2 FOR UPDATE OF q SKIP LOCKED) "
      "UPDATE deployments d SET owner = $1 FROM c WHERE d.id = c.id "
      "RETURNING d.id, d.request, d.repo, d.github_id, d.app, "
      "d.environment, d.sha, d.task",
      {me, pg::int64_param(limit)}));
  });
}

lease_report pg_store::renew_lease(const std::string& why, committed_rows& rows,
                                   committed_rows& adopted) {
  lease_report report;
  if (opts_.instance.empty())
    return report;
  const auto& me = opts_.instance;
  auto kept = adopted.size();
  return transact(rows, [&](pg::connection& conn) {
    adopted.resize(kept); // What an earlier run of this transaction added.
    lease_report r;
    auto renewed = conn.query("UPDATE instances SET renewed_at = now() "
                              "WHERE id = $1 AND taken_over_by IS NULL "
                              "AND left_at IS NULL",
                              {me});
    if (renewed.affected() == 0) {
      r.held = false;
      return r;
    }
    // Instances silent for two of their lease periods are lost. Another
    // instance taking one over right now skips it.
    auto lost = conn.query(
      "SELECT id FROM instances WHERE id != $1 AND taken_over_by IS NULL "
      "AND left_at IS NULL "
      "AND renewed_at < now() - 2 * lease_seconds * interval '1 second' "
      "ORDER BY id FOR UPDATE SKIP LOCKED",
      {me});
    for (int i = 0; i < lost.rows(); ++i)
      take_over(conn, me, lost.text(i, 0), why, rows, adopted, r);
    // Rows nobody delivers (an instance left with rows undelivered, or
    // `heaven db copy` brought them) become this instance's.
    add_rows(conn.query("UPDATE outbox SET owner = $1 WHERE id IN ("
                        "SELECT id FROM outbox WHERE owner IS NULL "
                        "AND settled_at IS NULL ORDER BY id "
                        "FOR UPDATE SKIP LOCKED) "
                        "RETURNING id, kind, stream, body, created_at",
                        {me}),
             adopted);
    if (r.released > 0)
      notify_work(conn);
    return r;
  });
}

void pg_store::leave() {
  if (opts_.instance.empty())
    return;
  const auto& me = opts_.instance;
  transact([&](pg::connection& conn) {
    auto released = conn.query("UPDATE deployments SET owner = NULL "
                               "WHERE owner = $1 AND state = 'queued'",
                               {me});
    // What it could not deliver, another instance will.
    conn.query("UPDATE outbox SET owner = NULL WHERE owner = $1 "
               "AND settled_at IS NULL",
               {me});
    // An instance that leaves deployments running (they could not record
    // their end) keeps its lease: once it lapses, another instance ends
    // them.
    conn.query("UPDATE instances SET left_at = now() WHERE id = $1 "
               "AND NOT EXISTS (SELECT 1 FROM deployments WHERE owner = $1 "
               "AND state = 'running')",
               {me});
    if (released.affected() > 0)
      notify_work(conn);
    return true;
  });
}

} // namespace heaven
