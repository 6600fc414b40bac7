// End-to-end tests of several heaven instances on one PostgreSQL database
// (issue 14): real `heaven serve` processes sharing a throwaway cluster
// (tools/support/pg_cluster), a recording stand-in for GitHub's API, shell
// deployments of a real local git repository.
//
// No timed assertions: the tests wait (with generous deadlines) for
// conditions and then assert them.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/pg.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/pg_cluster.hpp"

using namespace heaven;
using namespace heaven::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// GitHub's description of a deployment whose instance was lost.
constexpr auto lost_description
  = "the heaven instance running this deployment was lost";

/// Waits until `pred` holds, polling every 50 ms for up to `seconds`;
/// returns whether it held.
bool wait_until(const std::function<bool()>& pred, int seconds = 90) {
  auto deadline = std::chrono::steady_clock::now()
                  + std::chrono::seconds(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

bool is_terminal(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

/// How many of `states` are terminal.
long terminal_count(const std::vector<std::string>& states) {
  return std::count_if(states.begin(), states.end(), is_terminal);
}

/// The rows of `sql` on the database at `url`, as text (NULL as "").
std::vector<std::vector<std::string>> rows(const std::string& url,
                                           const std::string& sql) {
  pg::connection conn{url};
  auto r = conn.query(sql);
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < r.rows(); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < r.columns(); ++j)
      row.push_back(r.is_null(i, j) ? std::string{} : r.text(i, j));
    out.push_back(std::move(row));
  }
  return out;
}

/// The one value of `sql`.
std::string value(const std::string& url, const std::string& sql) {
  auto r = rows(url, sql);
  BOOST_REQUIRE_EQUAL(r.size(), 1u);
  return r[0][0];
}

/// A git repository with a few scripts, committed on `main`.
struct repo {
  fs::path dir;
  std::string sha;

  explicit repo(const fs::path& where) : dir(where) {
    fs::create_directories(dir / "script");
    run_checked("git -C " + dir.string() + " init -q --initial-branch=main");
  }

  void script(const std::string& name, const std::string& body) {
    auto path = dir / "script" / name;
    std::ofstream{path} << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  }

  void commit() {
    run_checked("cd " + dir.string()
                + " && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m scripts");
    sha = run_checked("git -C " + dir.string() + " rev-parse HEAD");
  }
};

/// A throwaway cluster, a GitHub stand-in, a repository and up to three
/// heaven instances on the cluster's database.
struct fixture {
  fs::path tmp = make_temp_dir("inst");
  pg_cluster db;
  http_stub github;
  repo app{tmp / "app"};
  fs::path gate = tmp / "gate";
  std::vector<std::unique_ptr<heaven_server>> hs;
  int started = 0;

  fixture() {
    app.script("deploy", "sleep 1\necho \"deployed $DEPLOY_ENV\"\n");
    // Waits for the test to open the gate.
    app.script("wait",
               "echo \"waiting in $DEPLOY_ENV\"\nwhile [ ! -e " + gate.string()
                 + " ]; do sleep 0.1; done\necho \"done $DEPLOY_ENV\"\n");
    app.commit();
  }

  ~fixture() {
    hs.clear();
    // Kept for a look when a case failed.
    if (getenv("HEAVEN_KEEP_TEST_DATA"))
      return;
    fs::remove_all(tmp);
  }

  /// Starts one more instance (its own data directory and port).
  heaven_server& start(heaven_server::env_list extra = {}) {
    heaven_server::env_list env = {{"HEAVEN_DATABASE_URL", db.url()},
                                   {"HEAVEN_LEASE_SECONDS", "3"}};
    for (auto& e : extra)
      env.push_back(e);
    auto data = tmp / ("data" + std::to_string(++started));
    hs.push_back(std::make_unique<heaven_server>(data, github.base_url(), env));
    return *hs.back();
  }

  /// A deployment event for `environment` of app "app" (repo octo/app).
  json event(int64_t github_id, const std::string& environment,
             const std::string& script = "script/deploy",
             const std::string& task = "deploy",
             const std::string& login = "alice") const {
    auto ev = deployment_event(
      {.id = github_id,
       .sha = app.sha,
       .clone_url = "file://" + app.dir.string(),
       .payload = {{"name", "app"},
                   {"config",
                    {{"provider", "shell"}, {"deploy_script", script}}}},
       .environment = environment,
       .login = login});
    ev["deployment"]["task"] = task;
    return ev;
  }

  /// The states GitHub was sent for `github_id`, in arrival order.
  std::vector<std::string> posted(int64_t github_id) const {
    return states(statuses(github, github_id));
  }

  /// The last status GitHub was sent for `github_id` (null when none).
  json last_status(int64_t github_id) const {
    auto reqs = statuses(github, github_id);
    return reqs.empty() ? json{} : json::parse(reqs.back().body);
  }

  /// Whether GitHub got a terminal status for `github_id`.
  bool ended(int64_t github_id) const {
    auto s = posted(github_id);
    return !s.empty() && is_terminal(s.back());
  }

  /// Waits until the database has nothing unfinished: every deployment in
  /// a terminal state and every outbox row settled (so every status was
  /// answered by the stand-in, which recorded it before answering).
  bool quiet(int seconds = 120) const {
    return wait_until(
      [&] {
        try {
          return value(db.url(),
                       "SELECT (SELECT count(*) FROM deployments WHERE state "
                       "NOT IN ('success','failure','error')) + (SELECT "
                       "count(*) FROM outbox WHERE settled_at IS NULL)")
                 == "0";
        } catch (const std::exception&) {
          return false; // The database is coming back.
        }
      },
      seconds);
  }

  /// The unfinished deployments and undelivered rows, for a failure's
  /// message.
  std::string unfinished() const {
    std::string out;
    try {
      for (auto& r :
           rows(db.url(), "SELECT 'deployment ' || id || ' (' || github_id || "
                          "') ' || state || ' owner ' || coalesce(owner, '-') "
                          "FROM deployments WHERE state NOT IN ('success', "
                          "'failure', 'error') UNION ALL SELECT 'outbox ' || "
                          "id || ' ' || stream || ' owner ' || "
                          "coalesce(owner, '-') FROM outbox WHERE settled_at "
                          "IS NULL UNION ALL SELECT 'session ' || pid || ' ' "
                          "|| coalesce(state, '') || ' port ' || client_port "
                          "|| ' waits ' || "
                          "coalesce(wait_event_type, '-') || ' ' || "
                          "coalesce(wait_event, '-') || ': ' || left(query, "
                          "120) FROM pg_stat_activity WHERE datname = "
                          "current_database() AND pid <> pg_backend_pid()"))
        out += r[0] + "\n";
    } catch (const std::exception& e) {
      out += e.what();
    }
    out += run_command("ss -tnp 'dport = :" + std::to_string(db.port()) + "'")
             .out;
    for (auto& h : hs)
      out += "heaven " + std::to_string(h->pid) + "\n";
    return out;
  }

  /// heaven's id of each GitHub id -> the instance (id) that owns it.
  std::map<int64_t, std::string> owners() const {
    std::map<int64_t, std::string> out;
    for (auto& r : rows(db.url(), "SELECT github_id, coalesce(owner, '') FROM "
                                  "deployments WHERE github_id IS NOT NULL"))
      out[std::stoll(r[0])] = r[1];
    return out;
  }

  /// The instance id of the process `pid`.
  std::string instance_of(pid_t pid) const {
    auto r = rows(db.url(),
                  "SELECT id FROM instances WHERE pid = " + std::to_string(pid)
                    + " ORDER BY started_at DESC LIMIT 1");
    return r.empty() ? std::string{} : r[0][0];
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(instances, fixture)

BOOST_AUTO_TEST_CASE(
  a_burst_round_robin_is_deployed_once_each_across_three_instances) {
  for (int i = 0; i < 3; ++i)
    start();
  constexpr int n = 30;
  for (int i = 0; i < n; ++i) {
    auto& h = *hs[i % 3];
    auto res = h.post_event("deployment", "d-" + std::to_string(1000 + i),
                            event(1000 + i, "env" + std::to_string(i)).dump());
    BOOST_TEST(res.status == 201, "event " << i << ": " << res.body);
  }
  // A redelivery to another instance is recorded once, not deployed again.
  auto again = hs[1]->post_event("deployment", "d-1000",
                                 event(1000, "env0").dump());
  BOOST_TEST(again.status == 200, again.body);
  BOOST_REQUIRE(wait_until([&] {
    for (int i = 0; i < n; ++i)
      if (!ended(1000 + i))
        return false;
    return true;
  }));
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  for (int i = 0; i < n; ++i)
    BOOST_TEST(
      posted(1000 + i)
        == (std::vector<std::string>{"queued", "in_progress", "success"}),
      "deployment " << 1000 + i);
  BOOST_TEST(value(db.url(), "SELECT count(*) FROM deployments") == "30");
  // The work ran on more than one instance, and only on these three.
  std::set<std::string> ran_on, ours;
  for (auto& [gid, owner] : owners())
    ran_on.insert(owner);
  for (auto& h : hs)
    ours.insert(instance_of(h->pid));
  BOOST_TEST(ran_on.size() > 1u);
  for (auto& o : ran_on)
    BOOST_TEST(ours.count(o) == 1u, o);
  // Every instance lists all of them.
  for (auto& h : hs)
    BOOST_TEST(h->deployments().size() == 30u);

  // Two events for one app and environment at once, to two instances: one
  // runs, the other ends "Already deploying.".
  std::vector<http_response> answers(2);
  {
    std::thread a{[&] {
      answers[0] = hs[0]->post_event("deployment", "d-2001",
                                     event(2001, "same", "script/wait").dump());
    }};
    std::thread b{[&] {
      answers[1] = hs[1]->post_event("deployment", "d-2002",
                                     event(2002, "same", "script/wait").dump());
    }};
    a.join();
    b.join();
  }
  BOOST_TEST(answers[0].status == 201);
  BOOST_TEST(answers[1].status == 201);
  // One of them ends at once; then the gate lets the other finish.
  BOOST_REQUIRE(wait_until([&] { return ended(2001) || ended(2002); }));
  std::ofstream{gate} << "open\n";
  BOOST_REQUIRE(wait_until([&] { return ended(2001) && ended(2002); }));
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  int refused = 0, ran = 0;
  for (int64_t gid : {2001, 2002}) {
    auto last = last_status(gid);
    if (last.at("state") == "error") {
      ++refused;
      BOOST_TEST(last.at("description") == "Already deploying.");
    } else {
      ++ran;
      BOOST_TEST(
        posted(gid)
        == (std::vector<std::string>{"queued", "in_progress", "success"}));
    }
  }
  BOOST_TEST(refused == 1);
  BOOST_TEST(ran == 1);

  // A lock made through instance A refuses a deployment sent to B.
  BOOST_TEST(
    hs[0]
      ->post_event(
        "deployment", "d-3001",
        event(3001, "locked", "script/deploy", "deploy:lock", "bob").dump())
      .status
    == 201);
  BOOST_REQUIRE(wait_until([&] { return ended(3001); }));
  BOOST_TEST(last_status(3001).at("description")
             == "octo/app locked on locked by bob");
  BOOST_TEST(
    hs[1]
      ->post_event("deployment", "d-3002", event(3002, "locked").dump())
      .status
    == 201);
  BOOST_REQUIRE(wait_until([&] { return ended(3002); }));
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  BOOST_TEST(posted(3002) == (std::vector<std::string>{"error"}));
  BOOST_TEST(last_status(3002).at("description")
             == "octo/app is locked on locked by bob");
  // Neither it nor the one refused as "Already deploying." ran: nothing of
  // their logs was shipped to the store, and on every instance their log
  // link answers the one line of their refusal, made from their row.
  for (auto [gid, line] :
       {std::pair<int64_t, std::string>{
          3002, "heaven: error: octo/app is locked on locked by bob\n"},
        std::pair<int64_t, std::string>{
          last_status(2001).at("state") == "error" ? 2001 : 2002,
          "heaven: error: Already deploying.\n"}}) {
    auto id = id_of(*hs[0], gid);
    BOOST_TEST(value(db.url(), "SELECT count(*) FROM log_chunks WHERE "
                               "deployment_id = "
                                 + std::to_string(id))
               == "0");
    auto url = last_status(gid).at("log_url").get<std::string>();
    BOOST_REQUIRE(url.starts_with(e2e_public_url));
    auto path = url.substr(std::string{e2e_public_url}.size());
    for (auto& h : hs) {
      auto res = http_call("GET", h->base() + path);
      BOOST_TEST(res.status == 200, gid);
      BOOST_TEST(res.body == line, gid);
      BOOST_TEST(headers_of(res, "transfer-encoding")
                   == std::vector<std::string>{"chunked"},
                 gid);
    }
    auto page = http_call(
      "GET", hs[1]->base() + "/ui/deployments/" + std::to_string(id),
      hs[1]->authorization());
    BOOST_TEST(page.status == 200);
    BOOST_TEST(page.body.find("<span class=\"text\">"
                              + line.substr(0, line.size() - 1) + "</span>")
                 != std::string::npos,
               page.body);
  }
  for (auto& h : hs)
    BOOST_TEST(h->stop() == 0);
}

BOOST_AUTO_TEST_CASE(a_log_link_opened_on_another_instance_serves_the_log) {
  start();
  start();
  BOOST_TEST(
    hs[0]->post_event("deployment", "d-4001", event(4001, "logs").dump()).status
    == 201);
  BOOST_REQUIRE(wait_until([&] { return ended(4001); }));
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  auto url = last_status(4001).at("log_url").get<std::string>();
  std::string prefix = e2e_public_url;
  BOOST_REQUIRE(url.starts_with(prefix));
  auto path = url.substr(prefix.size());
  auto a = http_call("GET", hs[0]->base() + path);
  auto b = http_call("GET", hs[1]->base() + path);
  BOOST_TEST(a.status == 200);
  BOOST_TEST(b.status == 200);
  BOOST_TEST(a.body.find("deployed logs\n") != std::string::npos, a.body);
  BOOST_TEST(b.body == a.body);
}

BOOST_AUTO_TEST_CASE(
  the_survivors_end_or_run_what_a_killed_instance_had_taken) {
  for (int i = 0; i < 3; ++i)
    start({{"HEAVEN_MAX_RUNNING", "2"}});
  // Nine long deployments: six run (two per instance), three wait.
  constexpr int n = 9;
  for (int i = 0; i < n; ++i)
    BOOST_TEST(
      hs[i % 3]
        ->post_event(
          "deployment", "d-" + std::to_string(5000 + i),
          event(5000 + i, "env" + std::to_string(i), "script/wait").dump())
        .status
      == 201);
  // Wait until six run (their in_progress status reached GitHub).
  auto in_progress = [&] {
    int count = 0;
    for (int i = 0; i < n; ++i) {
      auto s = posted(5000 + i);
      count += std::count(s.begin(), s.end(), "in_progress");
    }
    return count;
  };
  BOOST_REQUIRE(wait_until([&] { return in_progress() >= 6; }));
  // kill -9 an instance that runs deployments.
  auto victim = hs[0].get();
  auto victim_id = instance_of(victim->pid);
  std::set<int64_t> victims;
  for (auto& r : rows(db.url(), "SELECT github_id FROM deployments WHERE "
                                "state NOT IN ('success','failure','error',"
                                "'queued') AND owner = '"
                                  + victim_id + "'"))
    victims.insert(std::stoll(r[0]));
  BOOST_TEST_MESSAGE("killing " << victim_id << " running " << victims.size());
  BOOST_REQUIRE(!victims.empty());
  // One queued deployment as the victim would leave one it claimed but had
  // not started yet (a moment's state of a real claim, made lasting here):
  // owned by it, still queued.
  auto claimed = rows(db.url(), "UPDATE deployments SET owner = '" + victim_id
                                  + "' WHERE id = (SELECT min(id) FROM "
                                    "deployments WHERE state = 'queued' AND "
                                    "owner IS NULL) RETURNING github_id");
  BOOST_REQUIRE_EQUAL(claimed.size(), 1u);
  auto claimed_gid = std::stoll(claimed[0][0]);
  BOOST_REQUIRE(::kill(victim->pid, SIGKILL) == 0);
  int status = 0;
  BOOST_REQUIRE(::waitpid(victim->pid, &status, 0) == victim->pid);
  victim->pid = -1;
  // The survivors end what it ran, each with one error.
  BOOST_REQUIRE(wait_until([&] {
    for (auto gid : victims)
      if (!ended(gid))
        return false;
    return true;
  }));
  for (auto gid : victims) {
    BOOST_TEST(
      posted(gid)
        == (std::vector<std::string>{"queued", "in_progress", "error"}),
      gid);
    BOOST_TEST(last_status(gid).at("description") == lost_description);
  }
  // Now let everything else finish: every deployment ends once.
  std::ofstream{gate} << "open\n";
  BOOST_REQUIRE(wait_until([&] {
    for (int i = 0; i < n; ++i)
      if (!ended(5000 + i))
        return false;
    return true;
  }));
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  for (int i = 0; i < n; ++i) {
    int64_t gid = 5000 + i;
    auto s = posted(gid);
    BOOST_TEST(terminal_count(s) == 1, gid);
    if (!victims.count(gid))
      BOOST_TEST(
        s == (std::vector<std::string>{"queued", "in_progress", "success"}),
        gid);
  }
  // What it had claimed but not started ran on another instance.
  BOOST_TEST(posted(claimed_gid)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(owners().at(claimed_gid) != victim_id);
  BOOST_TEST(owners().at(claimed_gid) != "");
  // The killed instance was taken over by one of the others.
  auto taker = value(db.url(),
                     "SELECT coalesce(taken_over_by, '') FROM instances "
                     "WHERE id = '"
                       + victim_id + "'");
  BOOST_TEST(taker != "");
  BOOST_TEST(taker != victim_id);
  for (size_t i = 1; i < hs.size(); ++i)
    BOOST_TEST(hs[i]->stop() == 0);
}

BOOST_AUTO_TEST_CASE(
  a_database_restart_mid_burst_ends_every_accepted_deployment_once) {
  // A lease longer than the outage: the instances ride it out.
  for (int i = 0; i < 3; ++i)
    start({{"HEAVEN_LEASE_SECONDS", "20"}});
  std::set<int64_t> accepted;
  int64_t gid = 6000;
  auto post = [&](int count) {
    std::vector<int> answers;
    for (int i = 0; i < count; ++i, ++gid) {
      auto res = hs[gid % 3]->post_event(
        "deployment", "d-" + std::to_string(gid),
        event(gid, "env" + std::to_string(gid)).dump());
      answers.push_back(res.status);
      if (res.status == 201)
        accepted.insert(gid);
    }
    return answers;
  };
  for (auto s : post(9))
    BOOST_TEST(s == 201);
  db.halt();
  // While the database is down, events are refused (never accepted).
  for (auto s : post(3))
    BOOST_TEST(s == 503);
  db.resume();
  // Each instance reaches the database again (its /healthz says so).
  for (auto& h : hs)
    BOOST_REQUIRE(wait_until(
      [&] { return http_call("GET", h->base() + "/healthz").status == 200; },
      60));
  for (auto s : post(9))
    BOOST_TEST(s == 201);
  BOOST_TEST(accepted.size() == 18u);
  BOOST_REQUIRE_MESSAGE(wait_until(
                          [&] {
                            for (auto g : accepted)
                              if (!ended(g))
                                return false;
                            return true;
                          },
                          60),
                        unfinished());
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  for (auto g : accepted) {
    auto s = posted(g);
    BOOST_TEST(terminal_count(s) == 1, g);
  }
  // The refused ones were never recorded.
  for (int64_t g = 6009; g < 6012; ++g) {
    BOOST_TEST(posted(g).empty(), g);
    BOOST_TEST(value(db.url(), "SELECT count(*) FROM deployments WHERE "
                               "github_id = "
                                 + std::to_string(g))
               == "0");
  }
  for (auto& h : hs)
    BOOST_TEST(h->stop() == 0);
}

// An instance that was only cut off (here: stopped with SIGSTOP for longer
// than two lease periods) comes back to find its deployment ended by
// another: it posts nothing more and exits with status 75, so GitHub has
// exactly one terminal status even though its script then succeeds.
BOOST_AUTO_TEST_CASE(a_cut_off_instance_taken_over_posts_nothing_more) {
  for (int i = 0; i < 2; ++i)
    start({{"HEAVEN_LEASE_SECONDS", "2"}});
  int64_t gid = 7000;
  BOOST_REQUIRE(hs[0]
                  ->post_event("deployment", "d-7000",
                               event(gid, "cut", "script/wait").dump())
                  .status
                == 201);
  // It runs, and its in_progress status is delivered and settled.
  BOOST_REQUIRE(wait_until([&] {
    return value(db.url(),
                 "SELECT count(*) FROM deployments d JOIN outbox o ON "
                 "o.stream = 'd' || d.id WHERE d.github_id = 7000 AND "
                 "d.state = 'running' AND o.settled_at IS NOT NULL AND "
                 "o.body LIKE '%in_progress%'")
           == "1";
  }));
  auto owner = owners().at(gid);
  heaven_server* cut = nullptr;
  for (auto& h : hs)
    if (instance_of(h->pid) == owner)
      cut = h.get();
  BOOST_REQUIRE(cut != nullptr);
  BOOST_REQUIRE(::kill(cut->pid, SIGSTOP) == 0);
  // The other instance takes it over and ends the deployment once.
  BOOST_REQUIRE(wait_until([&] { return ended(gid); }));
  BOOST_TEST(posted(gid)
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  BOOST_TEST(last_status(gid).at("description") == lost_description);
  BOOST_TEST(value(db.url(), "SELECT coalesce(taken_over_by, '') FROM "
                             "instances WHERE id = '"
                               + owner + "'")
             != "");
  // Its script may now succeed; the cut-off instance comes back.
  std::ofstream{gate} << "open\n";
  BOOST_REQUIRE(::kill(cut->pid, SIGCONT) == 0);
  int status = 0;
  BOOST_REQUIRE(::waitpid(cut->pid, &status, 0) == cut->pid);
  cut->pid = -1;
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 75);
  // It exited having posted nothing more: still one terminal status.
  BOOST_REQUIRE_MESSAGE(quiet(), unfinished());
  BOOST_TEST(posted(gid)
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  BOOST_TEST(
    value(db.url(), "SELECT state FROM deployments WHERE github_id = 7000")
    == "error");
  for (auto& h : hs)
    if (h->pid > 0)
      BOOST_TEST(h->stop() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
