// The PostgreSQL store (pg_store) where it differs from SQLite's: several
// heaven instances on one database (advisory locks, ownership of
// deployments and outbox rows), the retry of a deadlocked transaction and
// the reconnect after the database went away. A real throwaway cluster
// (tools/support/pg_cluster); every case has a database of its own.
#include "actors/pg_store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include <boost/test/unit_test.hpp>

#include "tests/support/pg_databases.hpp"

using namespace heaven;
using heaven::test::deployment_event;
using heaven::test::error_of;
using heaven::test::instance_options;
using heaven::test::make_request;
using heaven::test::pg_cluster;

namespace {

/// A fresh, empty database on the shared cluster; its URL.
std::string fresh_database() {
  return test::fresh_database("store_");
}

/// The first column of the first row of `sql` ("NULL" for NULL).
std::string one(const std::string& url, const std::string& sql) {
  pg::connection conn{url};
  auto r = conn.query(sql);
  BOOST_REQUIRE_EQUAL(r.rows(), 1);
  return r.is_null(0, 0) ? "NULL" : r.text(0, 0);
}

/// Runs each of `jobs` on a thread of its own, all let go at once.
void race(const std::vector<std::function<void()>>& jobs) {
  std::latch go{static_cast<std::ptrdiff_t>(jobs.size())};
  std::vector<std::thread> threads;
  for (auto& job : jobs)
    threads.emplace_back([&go, &job] {
      go.arrive_and_wait();
      job();
    });
  for (auto& t : threads)
    t.join();
}

auto_deployment auto_of(const std::string& sha) {
  auto_deployment x;
  x.repo = "octo/app";
  x.app = "app";
  x.environment = "production";
  x.sha = sha;
  x.body = R"({"ref":"main","environment":"production"})";
  return x;
}

} // namespace

BOOST_AUTO_TEST_SUITE(pg_store_instances)

BOOST_AUTO_TEST_CASE(concurrent_deployments_of_one_app_queue_exactly_one) {
  auto url = fresh_database();
  constexpr int per_thread = 3;
  std::vector<std::unique_ptr<pg_store>> stores;
  // Two instances, two threads each (a pg_store serves one thread).
  for (auto id : {"a", "a", "b", "b"})
    stores.push_back(std::make_unique<pg_store>(url, instance_options(id)));
  std::vector<std::vector<accept_result>> results(stores.size());
  std::vector<std::function<void()>> jobs;
  for (size_t t = 0; t < stores.size(); ++t)
    jobs.push_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        committed_rows rows;
        auto n = static_cast<int64_t>(t * per_thread + i + 1);
        results[t].push_back(
          stores[t]->accept(deployment_event("delivery-" + std::to_string(n),
                                             make_request(n, "production")),
                            rows));
        BOOST_REQUIRE_EQUAL(rows.size(), 1u);
      }
    });
  race(jobs);
  int queued = 0;
  int busy = 0;
  for (auto& list : results)
    for (auto& r : list) {
      if (r.state == deploy_state::queued)
        ++queued;
      else if (r.description == "Already deploying.")
        ++busy;
    }
  BOOST_TEST(queued == 1);
  BOOST_TEST(busy == 4 * per_thread - 1);
  BOOST_TEST(one(url, "SELECT count(*) FROM deployments WHERE state = "
                      "'queued'")
             == "1");
  // Each wakes the instances only when it queues one: nothing to check
  // here but the statuses' owners, the instance that accepted each.
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox WHERE kind = 'status' "
                      "AND owner = 'a'")
             == std::to_string(2 * per_thread));
}

BOOST_AUTO_TEST_CASE(a_deployment_waits_for_another_accept_of_its_app) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  committed_rows rows;
  a.accept(deployment_event("first", make_request(1, "staging")), rows);
  // Another instance, in the middle of accepting a deployment of app to
  // production: its row written, not yet committed, its busy lock held.
  pg::connection other{url};
  other.exec("BEGIN");
  other.exec("INSERT INTO deployments(repo, app, environment, state) "
             "VALUES('octo/app', 'app', 'production', 'queued')");
  other.exec("SELECT pg_advisory_xact_lock(hashtextextended("
             "'busy:app production', 0))");
  std::atomic<bool> done{false};
  accept_result res;
  std::thread t{[&] {
    committed_rows mine;
    res = a.accept(deployment_event("second", make_request(2, "production")),
                   mine);
    done = true;
  }};
  // Until the accept waits for that lock (or ended without waiting).
  pg::connection watch{url};
  while (!done
         && watch
                .query("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                       "locktype = 'advisory'")
                .int64(0, 0)
              == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  other.exec("COMMIT");
  t.join();
  BOOST_TEST(res.state != deploy_state::queued);
  BOOST_TEST(res.description == "Already deploying.");
}

BOOST_AUTO_TEST_CASE(two_lock_tasks_racing_lock_for_one_of_them) {
  auto url = fresh_database();
  for (int round = 0; round < 5; ++round) {
    auto env = "staging" + std::to_string(round);
    pg_store a{url, instance_options("a")};
    pg_store b{url, instance_options("b")};
    accept_result ra;
    accept_result rb;
    auto lock_by = [&](pg_store& s, accept_result& out, const char* who,
                       int64_t n) {
      return [&s, &out, who, n, env] {
        auto r = make_request(n, env);
        r.task = "deploy:lock";
        r.actor = who;
        committed_rows rows;
        out = s.accept(deployment_event("lock-" + std::to_string(n), r,
                                        lock_task::lock),
                       rows);
      };
    };
    race({lock_by(a, ra, "alice", 100 + 2 * round),
          lock_by(b, rb, "bob", 101 + 2 * round)});
    // Exactly one holds the lock; the other met it.
    std::multiset<lock_outcome> outcomes{ra.lock_state, rb.lock_state};
    BOOST_TEST(outcomes.count(lock_outcome::locked) == 1u);
    BOOST_TEST(outcomes.count(lock_outcome::already_locked) == 1u);
    auto holder = ra.lock_state == lock_outcome::locked ? "alice" : "bob";
    BOOST_TEST(ra.lock.actor == holder);
    BOOST_TEST(rb.lock.actor == holder);
    BOOST_TEST(
      one(url, "SELECT actor FROM locks WHERE environment = '" + env + "'")
      == holder);
  }
}

BOOST_AUTO_TEST_CASE(a_lock_task_and_a_deployment_racing_are_ordered) {
  auto url = fresh_database();
  for (int round = 0; round < 5; ++round) {
    auto env = "qa" + std::to_string(round);
    pg_store a{url, instance_options("a")};
    pg_store b{url, instance_options("b")};
    accept_result locked;
    accept_result deployed;
    race({[&] {
            auto r = make_request(200 + 2 * round, env);
            r.task = "deploy:lock";
            r.actor = "alice";
            committed_rows rows;
            locked = a.accept(deployment_event("l" + std::to_string(round), r,
                                               lock_task::lock),
                              rows);
          },
          [&] {
            auto r = make_request(201 + 2 * round, env);
            r.actor = "bob";
            committed_rows rows;
            deployed = b.accept(
              deployment_event("d" + std::to_string(round), r), rows);
          }});
    BOOST_TEST(locked.lock_state == lock_outcome::locked);
    // The deployment saw the lock (and was refused) exactly when the lock
    // task's transaction came first.
    if (deployed.lock_state == lock_outcome::locked) {
      BOOST_TEST(deployed.state != deploy_state::queued);
      BOOST_TEST(deployed.lock.actor == "alice");
      BOOST_TEST(deployed.lock.deployment_id == locked.deployment_id);
    } else {
      BOOST_TEST(deployed.lock_state == lock_outcome::none);
      BOOST_TEST(deployed.state == deploy_state::queued);
    }
  }
}

BOOST_AUTO_TEST_CASE(one_delivery_at_two_instances_makes_one_deployment) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  accept_result ra;
  accept_result rb;
  committed_rows rows_a;
  committed_rows rows_b;
  auto ev = deployment_event("same-delivery", make_request(7, "production"));
  race(
    {[&] { ra = a.accept(ev, rows_a); }, [&] { rb = b.accept(ev, rows_b); }});
  BOOST_TEST(ra.duplicate != rb.duplicate);
  BOOST_TEST(rows_a.size() + rows_b.size() == 1u);
  BOOST_TEST(one(url, "SELECT count(*) FROM deployments") == "1");
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox") == "1");
}

BOOST_AUTO_TEST_CASE(the_auto_deploy_claim_is_won_once) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  auto x = auto_of("1111111111111111111111111111111111111111");
  bool won_a = false;
  bool won_b = false;
  committed_rows rows_a;
  committed_rows rows_b;
  race(
    {[&] { won_a = a.claim(x, rows_a); }, [&] { won_b = b.claim(x, rows_b); }});
  BOOST_TEST(won_a != won_b);
  BOOST_TEST(rows_a.size() + rows_b.size() == 1u);
  BOOST_TEST(one(url, "SELECT owner FROM outbox WHERE kind = 'deploy'")
             == (won_a ? "a" : "b"));
  committed_rows again;
  BOOST_TEST(!a.claim(x, again));
  BOOST_TEST(again.empty());
}

BOOST_AUTO_TEST_CASE(start_and_finish_are_only_for_the_owner) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  committed_rows rows;
  auto id = a.accept(deployment_event("x1", make_request(1, "production")),
                     rows)
              .deployment_id;
  // Nobody claimed it yet: no instance starts it.
  BOOST_TEST(!a.start(id, "Deploying", rows));
  pg::connection{url}.query("UPDATE deployments SET owner = 'a' WHERE id = $1",
                            {pg::int64_param(id)});
  rows.clear();
  BOOST_TEST(!b.start(id, "Deploying", rows));
  BOOST_TEST(rows.empty());
  BOOST_TEST(a.start(id, "Deploying", rows));
  BOOST_REQUIRE_EQUAL(rows.size(), 1u);
  BOOST_TEST(one(url, "SELECT owner FROM outbox WHERE id = "
                        + std::to_string(rows[0].id))
             == "a");
  rows.clear();
  provider_outcome done;
  done.state = deploy_state::success;
  done.description = "Deployed";
  BOOST_TEST(!b.finish(id, done, rows));
  BOOST_TEST(one(url, "SELECT state FROM deployments") == "running");
  BOOST_TEST(a.finish(id, done, rows));
  BOOST_TEST(rows.size() == 1u);
  BOOST_TEST(one(url, "SELECT state FROM deployments") == "success");
  BOOST_TEST(one(url, "SELECT sha FROM revisions")
             == "0123456789abcdef0123456789abcdef01234567");
  // The command line (no instance) may end anyone's deployment.
  auto other = a.accept(deployment_event("x2", make_request(2, "staging")),
                        rows)
                 .deployment_id;
  pg::connection{url}.query("UPDATE deployments SET owner = 'b' WHERE id = $1",
                            {pg::int64_param(other)});
  auto o = instance_options("");
  o.migrate = false;
  pg_store cli{url, o};
  done.state = deploy_state::error;
  done.description = "Stopped by hand";
  BOOST_TEST(cli.finish(other, done, rows));
  BOOST_TEST(one(url, "SELECT state FROM deployments WHERE id = "
                        + std::to_string(other))
             == "error");
}

BOOST_AUTO_TEST_CASE(unsettled_adopts_ownerless_rows_and_not_anothers) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  auto o = instance_options("");
  o.migrate = false;
  pg_store cli{url, o};
  committed_rows rows;
  cli.queue_creation(auto_of("2222222222222222222222222222222222222222"), rows);
  a.queue_creation(auto_of("3333333333333333333333333333333333333333"), rows);
  BOOST_REQUIRE_EQUAL(rows.size(), 2u);
  auto ownerless = rows[0].id;
  auto as = rows[1].id;
  auto got = b.unsettled("deploy");
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_TEST(got[0].id == ownerless);
  // Adopted: a no longer sees it.
  got = a.unsettled("deploy");
  BOOST_REQUIRE_EQUAL(got.size(), 1u);
  BOOST_TEST(got[0].id == as);
  // a cannot settle b's row; b can.
  outbox_change change;
  change.settled.push_back({ownerless, "delivered"});
  a.change_outbox(change, rows);
  BOOST_TEST(b.unsettled("deploy").size() == 1u);
  b.change_outbox(change, rows);
  BOOST_TEST(b.unsettled("deploy").empty());
  BOOST_TEST(one(url, "SELECT outcome FROM outbox WHERE id = "
                        + std::to_string(ownerless))
             == "delivered");
}

BOOST_AUTO_TEST_CASE(queued_work_and_settled_statuses_wake_the_instances) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg::connection listener{url};
  listener.listen("heaven_work");
  committed_rows rows;
  // A lock task ends at once: nothing to wake anyone for. The queued
  // deployment after it is.
  auto lock = make_request(1, "production");
  lock.task = "deploy:lock";
  a.accept(deployment_event("n1", lock, lock_task::lock), rows);
  a.accept(deployment_event("n2", make_request(2, "staging")), rows);
  auto woken = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(woken);
  BOOST_TEST(woken->channel == "heaven_work");
  BOOST_TEST(woken->sender_pid != listener.backend_pid());
  // Exactly one so far: the lock task's commit sent none before it (a
  // notification of the same transaction would be one, of two would be
  // two; PostgreSQL keeps their order).
  pg::connection{url}.query("SELECT pg_notify('heaven_work', 'marker')");
  auto next = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(next);
  BOOST_TEST(next->payload == "marker");
  // Settling a status wakes them too (a claim may wait for it).
  BOOST_REQUIRE(!rows.empty());
  outbox_change change;
  change.settled.push_back({rows.back().id, "delivered"});
  a.change_outbox(change, rows);
  auto settled = listener.wait_notification(std::chrono::seconds(30));
  BOOST_REQUIRE(settled);
  BOOST_TEST(settled->payload == "");
}

BOOST_AUTO_TEST_CASE(a_deadlocked_transaction_runs_again) {
  auto url = fresh_database();
  pg_store a{url, instance_options("")};
  committed_rows rows;
  auto r = make_request(9, "production");
  auto id = a.accept(deployment_event("dl", r), rows).deployment_id;
  pg::connection other{url};
  other.exec("INSERT INTO revisions(repo, app, environment, sha, github_id, "
             "recorded_at) VALUES('octo/app', 'app', 'production', 'old', 1, "
             "'2026-01-01T00:00:00.000Z')");
  // Only the store's backend looks for deadlocks soon, so it is the one
  // PostgreSQL ends.
  other.exec("SET deadlock_timeout = '1h'");
  other.exec("BEGIN");
  other.exec("SELECT 1 FROM revisions FOR UPDATE");
  bool finished = false;
  std::thread t{[&] {
    committed_rows mine;
    provider_outcome done;
    done.state = deploy_state::success;
    done.description = "Deployed";
    finished = a.finish(id, done, mine);
  }};
  // Once finish holds the deployment's row and waits for the revision's,
  // take the deployment's row: a deadlock.
  pg::connection watch{url};
  while (watch
           .query("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                  "locktype = 'transactionid'")
           .int64(0, 0)
         == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto got = other.query("SELECT id FROM deployments WHERE id = $1 FOR UPDATE",
                         {pg::int64_param(id)});
  BOOST_TEST(got.rows() == 1);
  other.exec("ROLLBACK");
  t.join();
  BOOST_TEST(finished);
  BOOST_TEST(one(url, "SELECT state FROM deployments") == "success");
  BOOST_TEST(one(url, "SELECT sha FROM revisions") == r.sha);
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox WHERE body LIKE "
                      "'%\"state\":\"success\"%'")
             == "1");
  BOOST_TEST(test::shared_cluster().log().find("deadlock detected")
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_lost_database_is_reached_again_after_the_backoff) {
  pg_cluster own;
  pg_store a{own.url(), instance_options("a")};
  BOOST_TEST(a.list(10).empty());
  // The cluster commits asynchronously: the schema must be on disk before
  // the immediate stop.
  pg::connection{own.url()}.exec("CHECKPOINT");
  own.halt();
  auto first = error_of([&] { a.list(10); });
  BOOST_TEST(first.rfind("the database is unreachable: ", 0) == 0);
  BOOST_TEST(first.find(own.password()) == std::string::npos);
  // Within the backoff it is not tried again, and says so the same way.
  committed_rows rows;
  BOOST_TEST(error_of([&] {
               a.accept(deployment_event("r1", make_request(1, "production")),
                        rows);
             })
             == first);
  BOOST_TEST(rows.empty());
  own.resume();
  // The first backoff is half a second.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  auto res = a.accept(deployment_event("r1", make_request(1, "production")),
                      rows);
  BOOST_TEST(!res.duplicate);
  BOOST_TEST(res.state == deploy_state::queued);
  BOOST_TEST(a.list(10).size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// -- the store's group commit -------------------------------------------------

BOOST_AUTO_TEST_SUITE(pg_store_batches)

namespace {

/// Waits until no other session is connected to `url`'s database.
void wait_alone(const std::string& url) {
  pg::connection conn{url};
  for (int i = 0; i < 500; ++i) {
    if (conn
          .query("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                 "current_database() AND pid <> pg_backend_pid()")
          .int64(0, 0)
        == 0)
      return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_FAIL("another session stayed connected");
}

/// Accepts `delivery` (deploying `r`) outside a batch: true when it is
/// recorded now, not found recorded already.
bool recorded_alone(pg_store& store, const std::string& delivery,
                    const deployment_request& r) {
  committed_rows rows;
  return !store.accept(deployment_event(delivery, r), rows).duplicate;
}

/// The message of the batch_undone `f` throws ("" when it throws none).
template <class F>
std::string undone_by(F&& f) {
  try {
    f();
  } catch (const batch_undone& e) {
    return e.what();
  }
  return "";
}

} // namespace

/// A batch's operations share one transaction: nobody sees any of them
/// before commit_batch, and everyone sees all of them after it.
BOOST_AUTO_TEST_CASE(a_batch_is_one_transaction) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  committed_rows rows;
  a.begin_batch();
  for (int i = 1; i <= 3; ++i) {
    auto n = std::to_string(i);
    auto res = a.accept(deployment_event("b-" + n, make_request(i, "env-" + n)),
                        rows);
    BOOST_TEST(!res.duplicate);
    BOOST_TEST(res.deployment_id > 0);
  }
  BOOST_TEST(a.in_batch());
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "0");
  BOOST_TEST(one(url, "SELECT count(*) FROM deployments") == "0");
  a.commit_batch();
  BOOST_TEST(!a.in_batch());
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "3");
  BOOST_TEST(one(url, "SELECT count(*) FROM deployments") == "3");
  BOOST_TEST(one(url, "SELECT count(*) FROM outbox")
             == std::to_string(rows.size()));
  BOOST_TEST(rows.size() == 3u);
}

/// The connection lost midway: the batch is undone whole, says so with
/// batch_undone, and its operations then commit alone on a new connection.
BOOST_AUTO_TEST_CASE(a_batch_whose_connection_is_lost_is_undone_whole) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  committed_rows rows;
  a.begin_batch();
  a.accept(deployment_event("l-1", make_request(1, "production")), rows);
  pg::connection{url}.exec(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
    "current_database() AND pid <> pg_backend_pid()");
  wait_alone(url);
  auto why = undone_by([&] {
    a.accept(deployment_event("l-2", make_request(2, "staging")), rows);
  });
  BOOST_TEST(!why.empty());
  BOOST_TEST(!a.in_batch());
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "0");
  // Alone: l-1 is no redelivery, since nothing of the batch was written.
  BOOST_TEST(recorded_alone(a, "l-1", make_request(1, "production")));
  BOOST_TEST(recorded_alone(a, "l-2", make_request(2, "staging")));
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "2");
}

/// A batch whose COMMIT fails (here a deferred check of one of its events)
/// is undone whole; alone, only the event that fails it fails.
BOOST_AUTO_TEST_CASE(a_batch_whose_commit_fails_is_undone_whole) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  committed_rows rows;
  BOOST_TEST(a.list(1).empty()); // The schema is made.
  pg::connection{url}.exec(
    "CREATE FUNCTION refuse_late() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION 'late-2 is refused at commit'; END $$ "
    "LANGUAGE plpgsql; "
    "CREATE CONSTRAINT TRIGGER refuse_late AFTER INSERT ON deliveries "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "WHEN (NEW.delivery = 'late-2') EXECUTE FUNCTION refuse_late()");
  a.begin_batch();
  a.accept(deployment_event("late-1", make_request(1, "production")), rows);
  a.accept(deployment_event("late-2", make_request(2, "staging")), rows);
  auto why = undone_by([&] { a.commit_batch(); });
  BOOST_TEST(why.find("late-2 is refused at commit") != std::string::npos, why);
  BOOST_TEST(!a.in_batch());
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "0");
  BOOST_TEST(recorded_alone(a, "late-1", make_request(1, "production")));
  auto alone = error_of(
    [&] { recorded_alone(a, "late-2", make_request(2, "staging")); });
  BOOST_TEST(alone.find("late-2 is refused at commit") != std::string::npos,
             alone);
  BOOST_TEST(one(url, "SELECT delivery FROM deliveries") == "late-1");
}

/// The server killed while it runs a batch's COMMIT: nobody knows whether
/// it committed, so the batch fails as it is (08007) and is not run again
/// (running it again could do it twice; GitHub's redelivery finds it
/// recorded or not).
BOOST_AUTO_TEST_CASE(a_batch_whose_commit_answer_is_lost_is_not_run_again) {
  pg_cluster own; // Killing a backend restarts the whole cluster.
  pg_store a{own.url(), instance_options("a")};
  BOOST_TEST(a.list(1).empty()); // The schema is made.
  pg::connection{own.url()}.exec(
    "CREATE FUNCTION slow_commit() RETURNS trigger AS $$ BEGIN "
    "PERFORM pg_sleep(60); RETURN NULL; END $$ LANGUAGE plpgsql; "
    "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON deliveries "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "WHEN (NEW.delivery = 'slow') EXECUTE FUNCTION slow_commit()");
  committed_rows rows;
  a.begin_batch();
  a.accept(deployment_event("slow", make_request(1, "production")), rows);
  std::thread killer{[&] {
    pg::connection watch{own.url()};
    for (int i = 0; i < 1000; ++i) {
      auto r = watch.query("SELECT pid FROM pg_stat_activity WHERE query = "
                           "'COMMIT' AND state = 'active'");
      if (r.rows() == 1) {
        ::kill(static_cast<pid_t>(r.int64(0, 0)), SIGKILL);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }};
  std::string sqlstate = "none";
  bool undone = false;
  try {
    a.commit_batch();
  } catch (const batch_undone&) {
    undone = true;
  } catch (const pg::error& e) {
    sqlstate = e.sqlstate;
  }
  killer.join();
  BOOST_TEST(!undone);
  BOOST_TEST(sqlstate == "08007");
  BOOST_TEST(!a.in_batch());
}

/// Two instances whose batches take two environments in opposite orders:
/// PostgreSQL ends one batch for the deadlock, the other commits, and the
/// undone one's events, run again alone, meet the rules as if they had come
/// last: each environment has exactly one deployment queued.
BOOST_AUTO_TEST_CASE(two_instances_batches_that_deadlock_both_end_recorded) {
  auto url = fresh_database();
  pg_store a{url, instance_options("a")};
  pg_store b{url, instance_options("b")};
  struct side {
    pg_store& store;
    std::vector<std::pair<std::string, deployment_request>> events;
    committed_rows rows;
    std::string undone;
  };
  // The repository is known first: the first event of a repository new to
  // both would make the second batch wait for the first's commit.
  committed_rows before;
  a.accept(deployment_event("known", make_request(9, "z")), before);
  side x{
    a, {{"a-x", make_request(1, "x")}, {"a-y", make_request(2, "y")}}, {}, {}};
  side y{
    b, {{"b-y", make_request(3, "y")}, {"b-x", make_request(4, "x")}}, {}, {}};
  for (auto* s : {&x, &y}) {
    s->store.begin_batch();
    auto& [delivery, r] = s->events[0];
    s->store.accept(deployment_event(delivery, r), s->rows);
  }
  // Each now asks for the environment the other holds.
  auto second = [](side& s) {
    s.undone = undone_by([&] {
      auto& [delivery, r] = s.events[1];
      s.store.accept(deployment_event(delivery, r), s.rows);
      s.store.commit_batch();
    });
  };
  race({[&] { second(x); }, [&] { second(y); }});
  BOOST_TEST((x.undone.empty() != y.undone.empty()),
             "a: '" << x.undone << "', b: '" << y.undone << "'");
  BOOST_TEST((x.undone + y.undone).find("deadlock detected")
               != std::string::npos,
             x.undone + y.undone);
  auto& loser = x.undone.empty() ? y : x;
  BOOST_TEST(!loser.store.in_batch());
  for (auto& [delivery, r] : loser.events)
    BOOST_TEST(recorded_alone(loser.store, delivery, r),
               delivery << " was recorded by the undone batch");
  BOOST_TEST(one(url, "SELECT count(*) FROM deliveries") == "5");
  BOOST_TEST(one(url, "SELECT string_agg(environment || ':' || n, ' ' "
                      "ORDER BY environment) FROM (SELECT environment, "
                      "count(*) AS n FROM deployments WHERE state = 'queued' "
                      "GROUP BY environment) q")
             == "x:1 y:1 z:1");
}

BOOST_AUTO_TEST_SUITE_END()
