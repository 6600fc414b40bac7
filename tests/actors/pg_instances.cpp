// Tests of several heaven instances' share of the PostgreSQL store
// (actors/pg_instances.cpp): claiming queued deployments, leases, taking
// over a lost instance, leaving. Real pg_store objects, one per "instance",
// on a fresh database of the test binary's throwaway cluster.
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "actors/pg_store.hpp"
#include "tests/support/pg_databases.hpp"

using namespace heaven;
using namespace heaven::test;

namespace {

/// The first column of the first row of `sql` ("NULL" for NULL).
std::string one(const std::string& url, const std::string& sql) {
  pg::connection conn{url};
  auto r = conn.query(sql);
  BOOST_REQUIRE_EQUAL(r.rows(), 1);
  return r.is_null(0, 0) ? "NULL" : r.text(0, 0);
}

/// The ids of `ds`.
std::vector<int64_t> ids(const std::vector<unfinished_deployment>& ds) {
  std::vector<int64_t> out;
  for (auto& d : ds)
    out.push_back(d.id);
  return out;
}

/// Settles every outbox row `who` delivers.
void deliver_all(pg_store& who) {
  outbox_change change;
  for (auto kind : {"status", "deploy", "notice"})
    for (auto& row : who.unsettled(kind))
      change.settled.push_back({row.id, "delivered"});
  committed_rows rows;
  who.change_outbox(change, rows);
}

/// Makes instance `id`'s last renewal `seconds` ago.
void age_lease(const std::string& url, const std::string& id, int seconds) {
  pg::connection{url}.query("UPDATE instances SET renewed_at = now() - $1 * "
                            "interval '1 second' WHERE id = $2",
                            {std::to_string(seconds), id});
}

constexpr auto lost = "the heaven instance running this deployment was lost";

} // namespace

BOOST_AUTO_TEST_SUITE(pg_instances)

BOOST_AUTO_TEST_CASE(queued_deployments_are_claimed_once_oldest_first) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  committed_rows rows;
  std::vector<int64_t> accepted;
  for (int i = 0; i < 5; ++i)
    accepted.push_back(
      a.accept(
         deployment_event("c" + std::to_string(i),
                          make_request(10 + i, "env" + std::to_string(i))),
         rows)
        .deployment_id);
  deliver_all(a); // Their queued statuses reached GitHub.
  auto first = a.claim_queued(2);
  BOOST_TEST(ids(first) == (std::vector<int64_t>{accepted[0], accepted[1]}));
  BOOST_TEST(first[0].request.environment == "env0");
  BOOST_TEST(first[0].request.github_id == 10);
  auto second = b.claim_queued(10);
  BOOST_TEST(ids(second)
             == (std::vector<int64_t>{accepted[2], accepted[3], accepted[4]}));
  BOOST_TEST(a.claim_queued(10).empty());
  BOOST_TEST(b.claim_queued(0).empty());
  BOOST_TEST(one(url, "SELECT string_agg(owner, ',' ORDER BY id) FROM "
                      "deployments")
             == "a,a,b,b,b");
}

BOOST_AUTO_TEST_CASE(a_deployment_waits_for_anothers_undelivered_status) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  committed_rows rows;
  auto id = a.accept(deployment_event("w1", make_request(20, "production")),
                     rows)
              .deployment_id;
  // a has yet to post its queued status: b may not run it (its in_progress
  // could reach GitHub first), a may.
  BOOST_TEST(b.claim_queued(5).empty());
  deliver_all(a);
  BOOST_TEST(ids(b.claim_queued(5)) == (std::vector<int64_t>{id}));
  // And one whose status a still owes, a claims itself.
  auto other = a.accept(deployment_event("w2", make_request(21, "staging")),
                        rows)
                 .deployment_id;
  BOOST_TEST(ids(a.claim_queued(5)) == (std::vector<int64_t>{other}));
}

BOOST_AUTO_TEST_CASE(a_claim_skips_a_busy_app_and_environment) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  committed_rows rows;
  auto queued = [&](const std::string& delivery, int64_t github_id,
                    const std::string& env) {
    auto r = make_request(github_id, env);
    r.app = "app";
    r.payload_json = R"({"config":{"queue":true}})";
    auto res = a.accept(deployment_event(delivery, r), rows);
    BOOST_REQUIRE(res.state == deploy_state::queued);
    return res;
  };
  auto first = queued("q1", 30, "production");
  auto second = queued("q2", 31, "production");
  auto third = queued("q3", 32, "production");
  auto other = queued("q4", 33, "staging");
  BOOST_TEST(second.description == "waiting for deployment 30 to finish");
  deliver_all(a);
  // One of production (the oldest), and staging; never two of production,
  // on one instance or across them.
  BOOST_TEST(
    ids(a.claim_queued(10))
    == (std::vector<int64_t>{first.deployment_id, other.deployment_id}));
  BOOST_TEST(b.claim_queued(10).empty());
  BOOST_TEST(a.start(first.deployment_id, "Running", rows));
  BOOST_TEST(b.claim_queued(10).empty());
  BOOST_TEST(a.finish(first.deployment_id,
                      provider_outcome{deploy_state::success, "Deployed"},
                      rows));
  deliver_all(a);
  // Its turn comes: whichever instance asks first takes the next, only it.
  BOOST_TEST(ids(b.claim_queued(10))
             == (std::vector<int64_t>{second.deployment_id}));
  BOOST_TEST(a.claim_queued(10).empty());
  BOOST_TEST(b.start(second.deployment_id, "Running", rows));
  // The third now waits for the second (its status, b's to deliver).
  BOOST_TEST(one(url, "SELECT description FROM deployments WHERE id = "
                        + std::to_string(third.deployment_id))
             == "waiting for deployment 31 to finish");
  BOOST_TEST(b.finish(second.deployment_id,
                      provider_outcome{deploy_state::failure, "Failed"}, rows));
  deliver_all(b);
  BOOST_TEST(ids(a.claim_queued(10))
             == (std::vector<int64_t>{third.deployment_id}));
}

BOOST_AUTO_TEST_CASE(a_lapsed_instance_is_taken_over_once) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  pg_store c{url, instance_options("c")};
  committed_rows rows;
  auto running = a.accept(deployment_event("t1", make_request(30, "one")), rows)
                   .deployment_id;
  auto waiting = a.accept(deployment_event("t2", make_request(31, "two")), rows)
                   .deployment_id;
  deliver_all(a);
  BOOST_REQUIRE_EQUAL(a.claim_queued(2).size(), 2u);
  rows.clear();
  BOOST_REQUIRE(a.start(running, "Deploying", rows));
  // a's in_progress status is not delivered yet when a is lost.
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  auto undelivered = rows[0].id;
  // Not lapsed yet: nothing is taken over.
  committed_rows b_rows, b_adopted;
  auto r = b.renew_lease(lost, b_rows, b_adopted);
  BOOST_TEST(r.held);
  BOOST_TEST(r.taken_over == 0);
  BOOST_TEST(b_rows.empty());
  // Silent for two lease periods (30 s each): b takes it over.
  age_lease(url, "a", 61);
  r = b.renew_lease(lost, b_rows, b_adopted);
  BOOST_TEST(r.held);
  BOOST_TEST(r.taken_over == 1);
  BOOST_TEST(r.ended == 1);
  BOOST_TEST(r.released == 1);
  // What a had not delivered is b's now, handed on as adopted (it may have
  // reached GitHub already); the error status is new.
  BOOST_REQUIRE_EQUAL(b_adopted.size(), 1u);
  BOOST_TEST(b_adopted[0].id == undelivered);
  BOOST_REQUIRE_EQUAL(b_rows.size(), 1u);
  BOOST_TEST(b_rows[0].kind == "status");
  BOOST_TEST(b_rows[0].body.find(lost) != std::string::npos);
  BOOST_TEST(b_rows[0].body.find("\"state\":\"error\"") != std::string::npos);
  BOOST_TEST(one(url, "SELECT state || ' ' || owner FROM deployments WHERE "
                      "id = "
                        + std::to_string(running))
             == "error b");
  BOOST_TEST(one(url, "SELECT state || ' ' || coalesce(owner, '-') FROM "
                      "deployments WHERE id = "
                        + std::to_string(waiting))
             == "queued -");
  BOOST_TEST(one(url, "SELECT taken_over_by FROM instances WHERE id = 'a'")
             == "b");
  // c comes later: nothing is left to take over.
  committed_rows c_rows, c_adopted;
  r = c.renew_lease(lost, c_rows, c_adopted);
  BOOST_TEST(r.taken_over == 0);
  BOOST_TEST(c_rows.empty());
  BOOST_TEST(c_adopted.empty());
  // a, only cut off, learns it lost its lease: it claims nothing, starts
  // and ends nothing, and nothing it would write is written.
  committed_rows a_rows, a_adopted;
  r = a.renew_lease(lost, a_rows, a_adopted);
  BOOST_TEST(!r.held);
  BOOST_TEST(a.claim_queued(5).empty());
  BOOST_TEST(!a.start(waiting, "Deploying", a_rows));
  provider_outcome done;
  done.state = deploy_state::success;
  done.description = "Deployed";
  BOOST_TEST(!a.finish(running, done, a_rows));
  BOOST_TEST(a_rows.empty());
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox WHERE body LIKE "
                      "'%\"state\":\"error\"%'")
             == "1");
  // The one given back runs elsewhere.
  BOOST_TEST(ids(c.claim_queued(5)) == (std::vector<int64_t>{waiting}));
}

BOOST_AUTO_TEST_CASE(a_start_whose_commit_answer_was_lost_is_repeated) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  committed_rows rows;
  auto id = a.accept(deployment_event("r1", make_request(40, "production")),
                     rows)
              .deployment_id;
  deliver_all(a);
  BOOST_REQUIRE_EQUAL(a.claim_queued(1).size(), 1u);
  rows.clear();
  BOOST_REQUIRE(a.start(id, "Deploying", rows));
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  auto in_progress = rows[0];
  // The deployment asks again (it never heard the answer): it succeeds and
  // gets the same undelivered row again, and nothing new is written.
  rows.clear();
  BOOST_TEST(a.start(id, "Deploying", rows));
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(rows[0].id == in_progress.id);
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox WHERE stream = 'd"
                        + std::to_string(id) + "'")
             == "2");
  // The same for its end; another end is still refused.
  provider_outcome done;
  done.state = deploy_state::success;
  done.description = "Deployed";
  rows.clear();
  BOOST_REQUIRE(a.finish(id, done, rows));
  rows.clear();
  BOOST_TEST(a.finish(id, done, rows));
  BOOST_TEST(rows.size() == 2u); // in_progress and success, undelivered.
  done.state = deploy_state::failure;
  rows.clear();
  BOOST_TEST(!a.finish(id, done, rows));
  BOOST_TEST(rows.empty());
}

BOOST_AUTO_TEST_CASE(leaving_gives_back_what_waits_and_ends_the_lease) {
  auto url = fresh_database("inst_");
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  committed_rows rows;
  auto id = a.accept(deployment_event("l1", make_request(50, "production")),
                     rows)
              .deployment_id;
  BOOST_REQUIRE_EQUAL(a.claim_queued(1).size(), 1u);
  a.leave();
  BOOST_TEST(one(url, "SELECT coalesce(owner, '-') FROM deployments") == "-");
  BOOST_TEST(one(url, "SELECT left_at IS NOT NULL FROM instances WHERE id = "
                      "'a'")
             == "t");
  // Its undelivered queued status is nobody's: the next renewal adopts it,
  // and then the deployment may run there.
  committed_rows b_rows, b_adopted;
  auto r = b.renew_lease(lost, b_rows, b_adopted);
  BOOST_TEST(r.taken_over == 0); // It left: nothing to take over.
  BOOST_REQUIRE_EQUAL(b_adopted.size(), 1u);
  deliver_all(b);
  BOOST_TEST(ids(b.claim_queued(1)) == (std::vector<int64_t>{id}));
}

BOOST_AUTO_TEST_SUITE_END()
