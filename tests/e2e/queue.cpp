// Queued deployments (issue 15) through the real `heaven serve` binary: a
// deployment to a busy app+environment that queues (payload.config.queue,
// HEAVEN_QUEUE_DEPLOYMENTS) waits with "waiting for deployment N to
// finish" and runs once the one before has ended, in arrival order; one
// that supersedes replaces the waiting ones of its task; a lock taken
// while one waits refuses it at its turn; waiting ones survive a SIGTERM
// (which starts none of them) and a SIGKILL; DEPLOYMENT_TIMEOUT counts
// from a deployment's start, not its wait; two instances on one PostgreSQL
// database keep the order too, and when one of them stops, the other runs
// what waits.
//
// The deploy scripts are real (a git repository of the test): each writes
// "start X" and "end X" to one order file, and most wait for a gate file
// the test creates, so the test decides when one ends and the order file
// proves that no two ran at once. GitHub is the recording stand-in: every
// status heaven posted is asserted, state and description, and each
// deployment has exactly one terminal status. Nothing is asserted on time.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/scrape.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/pg_cluster.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using steady = std::chrono::steady_clock;
using lines = std::vector<std::string>;

/// Polls `pred` every 50 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = 60s) {
  auto deadline = steady::now() + timeout;
  while (!pred()) {
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::string joined(const lines& xs) {
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : " | ") + x;
  return "[" + out + "]";
}

bool terminal(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

/// One GitHub stand-in and one repository of gated scripts per test.
struct queue_fixture {
  /// The statuses GitHub kept, by target path, oldest first.
  std::map<std::string, std::vector<json>> kept;
  std::mutex kept_mx;
  fs::path tmp = make_temp_dir("queue");
  http_stub github;
  fs::path repo = tmp / "app";
  fs::path order = tmp / "order";
  std::string sha;

  queue_fixture() {
    // GitHub keeps the statuses it accepts and lists them back (newest
    // first), so that heaven's look-up before sending one again after a
    // restart sees what arrived.
    github.respond_with([this](const recorded_request& r) {
      auto path = r.target.substr(0, r.target.find('?'));
      std::lock_guard guard{kept_mx};
      auto& list = kept[path];
      if (r.method == "GET") {
        auto out = json::array();
        for (auto i = list.size(); i-- > 0;)
          out.push_back(list[i]);
        return stub_response{
          200, {{"Content-Type", "application/json"}}, out.dump()};
      }
      auto body = json::parse(r.body, nullptr, false);
      json status = {{"id", static_cast<int64_t>(list.size() + 1)},
                     {"state", body.is_object() ? body.value("state", "") : ""},
                     {"description",
                      body.is_object() ? body.value("description", "") : ""}};
      list.push_back(status);
      return stub_response{
        201, {{"Content-Type", "application/json"}}, status.dump()};
    });
    fs::create_directories(repo / "script");
    run_checked("git -C " + repo.string() + " init -q --initial-branch=main");
    // Gated: runs until the test opens its gate (two minutes at most, so
    // nothing outlives a failed test for long).
    for (std::string name : {"a", "b", "c", "d", "e", "f"})
      script(name, "echo 'start " + name + "' >> " + order.string() + "\n"
                     + (name == "d" ? daemon() : std::string{})
                     + "i=0\nwhile [ ! -e " + gate(name).string()
                     + " ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); "
                       "done\necho 'end "
                     + name + "' >> " + order.string() + "\n");
    // Slow: runs five seconds.
    for (auto name : {"slow1", "slow2", "slow3"})
      script(name, "echo 'start " + std::string{name} + "' >> " + order.string()
                     + "\nsleep 5\necho 'end " + name + "' >> " + order.string()
                     + "\n");
    run_checked("cd " + repo.string()
                + " && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m scripts");
    sha = run_checked("git -C " + repo.string() + " rev-parse HEAD");
  }

  ~queue_fixture() {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::remove(tmp.string() + ".stderr", ec);
  }

  void script(const std::string& name, const std::string& body) {
    auto path = repo / "script" / name;
    std::ofstream{path} << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  }

  /// A daemon of script d (setsid): it outlives a killed heaven, and says
  /// "stopped d" when the next start ends it (SIGTERM), after half a second
  /// of cleaning up (so that ending it takes a while). The end of d ends it
  /// too, and whether it says so depends on whether its trap was set by
  /// then, so only the kill test, which kills heaven before d ends, runs d.
  std::string daemon() const {
    auto says = "sleep 0.5; echo 'stopped d' >> " + order.string();
    return "setsid sh -c \"trap \\\"" + says
           + "; exit 1\\\" TERM; i=0; while [ \\$i -lt 2400 ]; do sleep "
             "0.05; i=\\$((i+1)); done\" </dev/null >/dev/null 2>&1 &\n";
  }

  fs::path gate(const std::string& name) const {
    return tmp / ("open-" + name);
  }

  /// Lets gated script `name` end.
  void open(const std::string& name) const {
    std::ofstream{gate(name)} << "open\n";
  }

  /// The order file's lines: "start X", "end X", as the scripts wrote them.
  lines ran() const {
    lines out;
    std::istringstream in{read_text(order)};
    for (std::string line; std::getline(in, line);)
      out.push_back(line);
    return out;
  }

  /// Waits until the order file reads `want`.
  bool ran_until(const lines& want) const {
    return eventually([&] { return ran() == want; });
  }

  /// A `deployment` event of GitHub id `github_id` running script
  /// `script` to production, with `config` merged into payload.config.
  json event(int64_t github_id, const std::string& script,
             const json& config = json::object(),
             const std::string& login = "alice") const {
    json c = {{"provider", "shell"}, {"deploy_script", "script/" + script}};
    c.update(config);
    return deployment_event({.id = github_id,
                             .sha = sha,
                             .clone_url = "file://" + repo.string(),
                             .payload = {{"name", "app"}, {"config", c}},
                             .login = login});
  }

  static void post(const heaven_server& h, const json& ev) {
    auto id = ev.at("deployment").at("id").get<int64_t>();
    auto res = h.post_event("deployment", "delivery-" + std::to_string(id),
                            ev.dump());
    BOOST_TEST(res.status == 201, res.status << " " << res.body);
  }

  /// What GitHub was told about deployment `github_id`, in order:
  /// "state: description".
  lines told(int64_t github_id) const {
    lines out;
    for (auto& r : statuses(github, github_id)) {
      auto b = json::parse(r.body);
      out.push_back(b.at("state").get<std::string>() + ": "
                    + b.at("description").get<std::string>());
    }
    return out;
  }

  /// Waits until GitHub was told exactly `want` about `github_id`.
  bool told_until(int64_t github_id, const lines& want) const {
    bool ok = eventually([&] { return told(github_id) == want; });
    if (!ok)
      BOOST_TEST_MESSAGE("deployment " << github_id << " told "
                                       << joined(told(github_id)));
    return ok;
  }

  /// Waits until GitHub got a terminal status for `github_id`.
  bool ended_until(int64_t github_id) const {
    return eventually([&] {
      auto s = states_of(github_id);
      return !s.empty() && terminal(s.back());
    });
  }

  /// The states GitHub got for `github_id`.
  std::vector<std::string> states_of(int64_t github_id) const {
    return states(statuses(github, github_id));
  }

  /// Exactly one terminal status, the last one.
  void one_end(int64_t github_id) const {
    auto s = states_of(github_id);
    int ends = 0;
    for (auto& x : s)
      ends += terminal(x) ? 1 : 0;
    BOOST_TEST(ends == 1, github_id << ": " << joined(s));
    BOOST_TEST((!s.empty() && terminal(s.back())), github_id);
  }

  std::string queued(const std::string& who = "alice") const {
    return "queued: Queued main (" + sha.substr(0, 7) + ") for production by "
           + who;
  }

  std::string deploying() const {
    return "in_progress: Deploying main (" + sha.substr(0, 7)
           + ") to production with shell";
  }
};

std::string waiting(int64_t github_id) {
  return "queued: waiting for deployment " + std::to_string(github_id)
         + " to finish";
}

/// Waits for `pid` (a child of ours) to exit; its waitpid status.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  if (eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                 timeout))
    return status;
  return std::nullopt;
}

/// Sends `h` SIGTERM and checks that it says it is draining.
void stop_draining(const heaven_server& h) {
  ::kill(h.pid, SIGTERM);
  BOOST_TEST(eventually([&] {
    auto res = http_call("GET", h.base() + "/healthz", {}, "", 2000);
    auto j = json::parse(res.body, nullptr, false);
    return res.status == 503 && j.is_object()
           && j.value("status", "") == "draining";
  }));
}

/// Waits for stopping `h` to exit, and checks that it exited with 0.
void exits_cleanly(heaven_server& h) {
  auto status = wait_exit(h.pid, 120s);
  BOOST_REQUIRE_MESSAGE(status, "heaven did not exit after SIGTERM");
  h.pid = -1;
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
}

/// The value of the unlabelled metric `name` on `h`'s /metrics (-1 when
/// it is not there).
double metric(const heaven_server& h, const std::string& name) {
  auto res = http_call("GET", h.base() + "/metrics", h.authorization());
  auto m = samples(res.body);
  auto i = m.find(name);
  return i == m.end() ? -1 : i->second;
}

const json queueing = {{"queue", true}};
const json superseding = {{"supersede", true}};

} // namespace

BOOST_FIXTURE_TEST_SUITE(queued_deployments, queue_fixture)

BOOST_AUTO_TEST_CASE(waiting_deployments_run_one_after_another_in_order) {
  heaven_server h{tmp / "data", github.base_url()};
  post(h, event(11, "a", queueing));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(h, event(12, "b", queueing, "bob"));
  post(h, event(13, "c", queueing, "carol"));
  // Without queue, the Rails Heaven's refusal stays.
  post(h, event(14, "d"));
  BOOST_TEST(told_until(12, {waiting(11)}));
  BOOST_TEST(told_until(13, {waiting(11)}));
  BOOST_TEST(told_until(14, {"error: Already deploying."}));
  // Nothing else started while the first runs.
  BOOST_TEST(ran() == (lines{"start a"}), joined(ran()));
  open("a");
  BOOST_REQUIRE(ran_until({"start a", "end a", "start b"}));
  // The third now waits for the second.
  BOOST_TEST(told_until(13, {waiting(11), waiting(12)}));
  open("b");
  BOOST_REQUIRE(ran_until({"start a", "end a", "start b", "end b", "start c"}));
  open("c");
  h.wait_quiet(120);
  BOOST_TEST(
    ran()
      == (lines{"start a", "end a", "start b", "end b", "start c", "end c"}),
    joined(ran()));
  auto d1 = told(11);
  BOOST_REQUIRE_EQUAL(d1.size(), 3u);
  BOOST_TEST(d1[0] == queued());
  BOOST_TEST(d1[1] == deploying());
  BOOST_TEST(states_of(11)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  auto d2 = told(12);
  BOOST_REQUIRE_EQUAL(d2.size(), 3u);
  BOOST_TEST(d2[0] == waiting(11));
  BOOST_TEST(d2[1] == deploying());
  BOOST_TEST(states_of(12)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  auto d3 = told(13);
  BOOST_REQUIRE_EQUAL(d3.size(), 4u);
  BOOST_TEST(d3[0] == waiting(11));
  BOOST_TEST(d3[1] == waiting(12));
  BOOST_TEST(d3[2] == deploying());
  BOOST_TEST(states_of(13)
             == (std::vector<std::string>{"queued", "queued", "in_progress",
                                          "success"}));
  BOOST_TEST(told(14) == (lines{"error: Already deploying."}));
  for (int64_t id : {11, 12, 13, 14})
    one_end(id);
}

BOOST_AUTO_TEST_CASE(a_burst_that_supersedes_deploys_only_the_newest) {
  heaven_server h{tmp / "data", github.base_url()};
  post(h, event(21, "a", superseding));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(h, event(22, "b", superseding));
  BOOST_TEST(told_until(22, {waiting(21)}));
  post(h, event(23, "c", superseding));
  BOOST_TEST(
    told_until(22, {waiting(21), "error: superseded by deployment 23"}));
  // e, not d: d leaves a daemon behind, which is the kill test's business.
  post(h, event(24, "e", superseding));
  BOOST_TEST(
    told_until(23, {waiting(21), "error: superseded by deployment 24"}));
  BOOST_TEST(told_until(24, {waiting(21)}));
  // Only e waits: the superseded ones are no longer counted.
  BOOST_TEST(
    eventually([&] { return metric(h, "heaven_deployments_waiting") == 1; },
               10s),
    "heaven_deployments_waiting " << metric(h, "heaven_deployments_waiting")
                                  << ", not 1");
  // The running one is no waiting one: it runs on, then only the newest.
  open("a");
  open("e");
  h.wait_quiet(120);
  BOOST_TEST(ran() == (lines{"start a", "end a", "start e", "end e"}),
             joined(ran()));
  BOOST_TEST(states_of(21)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  auto d4 = told(24);
  BOOST_REQUIRE_EQUAL(d4.size(), 3u);
  BOOST_TEST(d4[0] == waiting(21));
  BOOST_TEST(d4[1] == deploying());
  BOOST_TEST(states_of(24)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(told(22)
             == (lines{waiting(21), "error: superseded by deployment 23"}));
  BOOST_TEST(told(23)
             == (lines{waiting(21), "error: superseded by deployment 24"}));
  for (int64_t id : {21, 22, 23, 24})
    one_end(id);
  // The superseded ones never ran: no log file; the log of each is the one
  // line of its end.
  for (auto [gid, by] : {std::pair{22, 23}, std::pair{23, 24}}) {
    auto problems = h.unstarted_log_problems(
      id_of(h, gid),
      "heaven: error: superseded by deployment " + std::to_string(by) + "\n");
    BOOST_TEST(problems.empty(), problems);
  }
}

BOOST_AUTO_TEST_CASE(heaven_queue_deployments_queues_all_but_who_opts_out) {
  heaven_server h{
    tmp / "data", github.base_url(), {{"HEAVEN_QUEUE_DEPLOYMENTS", "1"}}};
  post(h, event(31, "a"));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(h, event(32, "b", {{"queue", false}}));
  BOOST_TEST(told_until(32, {"error: Already deploying."}));
  post(h, event(33, "c"));
  BOOST_TEST(told_until(33, {waiting(31)}));
  open("a");
  open("c");
  h.wait_quiet(120);
  BOOST_TEST(ran() == (lines{"start a", "end a", "start c", "end c"}),
             joined(ran()));
  BOOST_TEST(states_of(33)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  for (int64_t id : {31, 32, 33})
    one_end(id);
}

BOOST_AUTO_TEST_CASE(a_lock_taken_while_one_waits_refuses_it_at_its_turn) {
  heaven_server h{tmp / "data", github.base_url()};
  post(h, event(51, "a", queueing));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(h, event(52, "b", queueing));
  BOOST_TEST(told_until(52, {waiting(51)}));
  // bob locks production (the lock task, as hubot's `deploy:lock` sends).
  auto lock = event(53, "c", json::object(), "bob");
  lock["deployment"]["task"] = "deploy:lock";
  post(h, lock);
  BOOST_TEST(told_until(53, {"success: octo/app locked on production by bob"}));
  // One arriving now is refused at once, queue or not.
  post(h, event(54, "d", queueing, "carol"));
  BOOST_TEST(
    told_until(54, {"error: octo/app is locked on production by bob"}));
  // The waiting one's turn comes: refused with the lock's words.
  open("a");
  h.wait_quiet(120);
  BOOST_TEST(
    told(52)
    == (lines{waiting(51), "error: octo/app is locked on production by bob"}));
  BOOST_TEST(ran() == (lines{"start a", "end a"}), joined(ran()));
  BOOST_TEST(states_of(51)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  for (int64_t id : {51, 52, 53, 54})
    one_end(id);
}

BOOST_AUTO_TEST_CASE(waiting_deployments_survive_a_stop_and_a_kill_in_order) {
  auto data = tmp / "data";
  auto h = std::make_unique<heaven_server>(
    data, github.base_url(),
    heaven_server::env_list{{"HEAVEN_DRAIN_SECONDS", "60"},
                            {"HEAVEN_KILL_GRACE", "1"}});
  post(*h, event(41, "a", queueing));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(*h, event(42, "b", queueing));
  post(*h, event(43, "c", queueing));
  BOOST_TEST(told_until(42, {waiting(41)}));
  BOOST_TEST(told_until(43, {waiting(41)}));
  // SIGTERM while the first runs and two wait: the first may finish, and
  // a stopping heaven starts neither of the others.
  stop_draining(*h);
  open("a");
  open("b");
  open("c");
  exits_cleanly(*h);
  BOOST_TEST(ran() == (lines{"start a", "end a"}), joined(ran()));
  BOOST_TEST(states_of(41)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(told(42) == (lines{waiting(41)}));
  BOOST_TEST(told(43) == (lines{waiting(41)}));
  // The next start runs them, one after the other, in order.
  h = std::make_unique<heaven_server>(
    data, github.base_url(),
    heaven_server::env_list{{"HEAVEN_KILL_GRACE", "1"}});
  h->wait_quiet(120);
  BOOST_TEST(
    ran()
      == (lines{"start a", "end a", "start b", "end b", "start c", "end c"}),
    joined(ran()));
  BOOST_TEST(told(42) == (lines{waiting(41), deploying(), told(42).back()}));
  BOOST_TEST(
    told(43)
    == (lines{waiting(41), waiting(42), deploying(), told(43).back()}));
  for (int64_t id : {41, 42, 43}) {
    BOOST_TEST(states_of(id).back() == "success", id);
    one_end(id);
  }
  // SIGKILL while one runs and two wait: the one running ends with
  // `error` at the next start, the others run after it, in order.
  post(*h, event(44, "d", queueing));
  BOOST_REQUIRE(ran_until(
    {"start a", "end a", "start b", "end b", "start c", "end c", "start d"}));
  post(*h, event(45, "e", queueing));
  post(*h, event(46, "f", queueing));
  BOOST_TEST(told_until(45, {waiting(44)}));
  BOOST_TEST(told_until(46, {waiting(44)}));
  ::kill(h->pid, SIGKILL);
  ::waitpid(h->pid, nullptr, 0);
  h->pid = -1;
  open("e");
  open("f");
  h = std::make_unique<heaven_server>(
    data, github.base_url(),
    heaven_server::env_list{{"HEAVEN_KILL_GRACE", "1"}});
  h->wait_quiet(120);
  // The next of production starts only once the start has ended what the
  // killed heaven left running there.
  auto all = ran();
  BOOST_TEST(all
               == (lines{"start a", "end a", "start b", "end b", "start c",
                         "end c", "start d", "stopped d", "start e", "end e",
                         "start f", "end f"}),
             joined(all));
  BOOST_TEST(told(44).back()
             == "error: heaven restarted during this deployment; its outcome "
                "is unknown: deploy again");
  BOOST_TEST(states_of(45)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(states_of(46)
             == (std::vector<std::string>{"queued", "queued", "in_progress",
                                          "success"}));
  BOOST_TEST(told(46)[1] == waiting(45));
  for (int64_t id : {44, 45, 46})
    one_end(id);
}

BOOST_AUTO_TEST_CASE(deployment_timeout_counts_from_the_start_not_the_wait) {
  // Each script runs 5 s, under the 8 s timeout; the third waits for the
  // two before it (10 s at least), longer than the timeout, and still runs.
  heaven_server h{
    tmp / "data", github.base_url(), {{"DEPLOYMENT_TIMEOUT", "8"}}};
  post(h, event(61, "slow1", queueing));
  post(h, event(62, "slow2", queueing));
  post(h, event(63, "slow3", queueing));
  h.wait_quiet(120);
  BOOST_TEST(ran()
               == (lines{"start slow1", "end slow1", "start slow2", "end slow2",
                         "start slow3", "end slow3"}),
             joined(ran()));
  BOOST_TEST(told(62) == (lines{waiting(61), deploying(), told(62).back()}));
  BOOST_TEST(
    told(63)
    == (lines{waiting(61), waiting(62), deploying(), told(63).back()}));
  for (int64_t id : {61, 62, 63}) {
    BOOST_TEST(states_of(id).back() == "success", id << joined(told(id)));
    one_end(id);
  }
}

BOOST_AUTO_TEST_CASE(several_instances_run_one_at_a_time_in_order) {
  // Two heavens on one PostgreSQL database: whichever instance accepted a
  // deployment, and whichever claims it, one of an app and environment
  // runs at a time, oldest first.
  pg_cluster db;
  heaven_server::env_list env = {{"HEAVEN_DATABASE_URL", db.url()},
                                 {"HEAVEN_LEASE_SECONDS", "3"}};
  heaven_server one{tmp / "data1", github.base_url(), env};
  heaven_server two{tmp / "data2", github.base_url(), env};
  post(one, event(71, "a", queueing));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(two, event(72, "b", queueing, "bob"));
  post(one, event(73, "c", queueing, "carol"));
  post(two, event(74, "d", json::object(), "dave"));
  BOOST_TEST(told_until(72, {waiting(71)}));
  BOOST_TEST(told_until(73, {waiting(71)}));
  BOOST_TEST(told_until(74, {"error: Already deploying."}));
  BOOST_TEST(ran() == (lines{"start a"}), joined(ran()));
  open("a");
  BOOST_REQUIRE(ran_until({"start a", "end a", "start b"}));
  BOOST_TEST(told_until(73, {waiting(71), waiting(72)}));
  open("b");
  BOOST_REQUIRE(ran_until({"start a", "end a", "start b", "end b", "start c"}));
  open("c");
  BOOST_REQUIRE(
    ran_until({"start a", "end a", "start b", "end b", "start c", "end c"}));
  BOOST_TEST(ended_until(73));
  BOOST_TEST(states_of(71)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(told(72) == (lines{waiting(71), deploying(), told(72).back()}));
  BOOST_TEST(
    told(73)
    == (lines{waiting(71), waiting(72), deploying(), told(73).back()}));
  for (int64_t id : {71, 72, 73, 74})
    one_end(id);
}

BOOST_AUTO_TEST_CASE(a_stopping_instance_starts_none_the_other_one_does) {
  // Two heavens on one PostgreSQL database. The one told to stop (SIGTERM)
  // lets its running deployment finish and starts none of the waiting
  // ones; the other instance runs the waiting one once the first has
  // ended.
  pg_cluster db;
  heaven_server::env_list env = {{"HEAVEN_DATABASE_URL", db.url()},
                                 {"HEAVEN_LEASE_SECONDS", "3"},
                                 {"HEAVEN_DRAIN_SECONDS", "60"}};
  auto one = std::make_unique<heaven_server>(tmp / "data1", github.base_url(),
                                             env);
  heaven_server two{tmp / "data2", github.base_url(), env};
  post(*one, event(81, "a", queueing));
  BOOST_REQUIRE(ran_until({"start a"}));
  post(*one, event(82, "b", queueing, "bob"));
  BOOST_TEST(told_until(82, {waiting(81)}));
  stop_draining(*one);
  open("a");
  open("b");
  exits_cleanly(*one);
  BOOST_REQUIRE(ran_until({"start a", "end a", "start b", "end b"}));
  // Which instance ran which: each says so in its log.
  auto log_one = read_text(one->stderr_file);
  BOOST_TEST(log_one.find("runs script/a") != std::string::npos);
  BOOST_TEST(log_one.find("runs script/b") == std::string::npos, log_one);
  BOOST_TEST(read_text(two.stderr_file).find("runs script/b")
             != std::string::npos);
  BOOST_TEST(ended_until(82));
  BOOST_TEST(states_of(81)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(told(82) == (lines{waiting(81), deploying(), told(82).back()}));
  BOOST_TEST(states_of(82).back() == "success");
  for (int64_t id : {81, 82})
    one_end(id);
}

BOOST_AUTO_TEST_SUITE_END()
