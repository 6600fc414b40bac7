// End-to-end tests: the real `heaven serve` binary over real HTTP, real git
// repositories and real deploy scripts, with a recording stand-in for
// GitHub's API that checks every status heaven posts.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log_book.hpp"
#include "base/webhook.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// True while `pid` runs. An exited process whose parent (here an init that
/// never reaps) has not collected it is a zombie: it runs no more.
bool running(pid_t pid) {
  if (kill(pid, 0) != 0)
    return false;
  std::ifstream stat{"/proc/" + std::to_string(pid) + "/stat"};
  std::string text{std::istreambuf_iterator<char>(stat), {}};
  auto close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size()
         || text[close + 2] != 'Z';
}

constexpr auto secret = e2e_webhook_secret;
constexpr auto token = e2e_github_token;

/// Runs a shell command and returns its stdout; fails the test on error.
std::string sh(const std::string& cmd) {
  std::string out;
  auto pipe = popen(cmd.c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  auto rc = pclose(pipe);
  BOOST_REQUIRE_MESSAGE(rc == 0, "command failed: " + cmd + "\n" + out);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

/// A git repository with executable scripts, committed on `main`.
struct repo {
  fs::path dir;
  std::string sha;

  explicit repo(const fs::path& where) : dir(where) {
    fs::create_directories(dir / "script");
    sh("git -C " + dir.string() + " init -q --initial-branch=main");
  }

  void script(const std::string& name, const std::string& body) {
    auto path = dir / "script" / name;
    std::ofstream{path} << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  }

  void commit(const std::string& message) {
    sh("cd " + dir.string()
       + " && git add -A && git -c user.name=t -c user.email=t@t commit -q "
         "-m '"
       + message + "'");
    sha = sh("git -C " + dir.string() + " rev-parse HEAD");
  }

  std::string url() const {
    return "file://" + dir.string();
  }
};

json deployment_event(const repo& r, int64_t github_id,
                      const std::string& script,
                      const std::string& environment = "production",
                      const std::string& app = "app") {
  return heaven::test::deployment_event(
    {.id = github_id,
     .sha = r.sha,
     .clone_url = r.url(),
     .payload = {{"name", app},
                 {"notify", {{"room", "ops"}, {"user", "alice"}}},
                 {"config",
                  {{"provider", "shell"},
                   {"deploy_script", script},
                   {"production_url", "https://app.example.com"}}}},
     .environment = environment});
}

/// One heaven, one GitHub stand-in and one repository per test.
struct fixture {
  fs::path tmp = make_temp_dir("t");
  http_stub github;
  repo app{tmp / "app"};

  fixture() {
    app.script("deploy",
               "echo \"BRANCH=$BRANCH SHA=$SHA DEPLOY_ENV=$DEPLOY_ENV "
               "DEPLOY_TASK=$DEPLOY_TASK\"\n"
               "echo \"token is $GITHUB_TOKEN\"\n"
               "echo \"webhook secret is [$GITHUB_WEBHOOK_SECRET]\"\n"
               "echo 'to stderr' >&2\n"
               "echo \"cwd $(pwd)\"\n"
               "for f in /proc/$$/fd/*; do echo \"fd $(readlink $f)\"; "
               "done\n");
    app.script("fail", "echo 'about to fail'\nexit 3\n");
    app.commit("first");
  }

  ~fixture() {
    fs::remove_all(tmp);
    fs::remove(tmp.string() + ".stderr");
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(end_to_end, fixture)

BOOST_AUTO_TEST_CASE(
  a_signed_deployment_runs_the_script_and_reports_to_github) {
  heaven_server h{tmp / "data", github.base_url()};
  auto body = deployment_event(app, 1001, "script/deploy").dump();
  auto res = h.post_event("deployment", "delivery-1", body);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(res.body == "{}");
  auto id = id_of(h, 1001);
  auto row = h.wait_finished(id);
  BOOST_TEST(row.at("state") == "success");
  BOOST_TEST(row.at("sha") == app.sha);
  BOOST_TEST(row.at("repo") == "octo/app");
  BOOST_TEST(row.at("environment") == "production");
  BOOST_REQUIRE(github.wait_for(3));
  auto posted = statuses(github, 1001);
  BOOST_TEST(states(posted)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  std::ifstream key_file{tmp / "data" / "log.key"};
  std::string key;
  std::getline(key_file, key);
  auto expected_log_url = "https://heaven.example.test/deployments/"
                          + std::to_string(id)
                          + "/log?token=" + log_token(key, id);
  for (auto& r : posted) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.header("authorization") == "token " + std::string{token});
    BOOST_TEST(r.header("accept") == "application/vnd.github+json");
    BOOST_TEST(r.header("content-type") == "application/json");
    auto b = json::parse(r.body);
    BOOST_TEST(b.at("log_url") == expected_log_url);
    BOOST_TEST(b.at("environment_url") == "https://app.example.com");
    BOOST_TEST(b.at("description").get<std::string>().size() <= 140u);
  }
  BOOST_TEST(json::parse(posted[0].body).at("description")
             == "Queued main (" + app.sha.substr(0, 7)
                  + ") for production by alice");
  BOOST_TEST(json::parse(posted[1].body).at("description")
             == "Deploying main (" + app.sha.substr(0, 7)
                  + ") to production with shell");
  // The log: the script's own output, the variables, no secrets.
  auto log = h.log(id);
  BOOST_TEST(log.find("BRANCH=main SHA=" + app.sha
                      + " DEPLOY_ENV=production DEPLOY_TASK=deploy\n")
               != std::string::npos,
             log);
  BOOST_TEST(log.find("to stderr\n") != std::string::npos);
  BOOST_TEST(log.find("token is [redacted]\n") != std::string::npos, log);
  BOOST_TEST(log.find("webhook secret is []\n") != std::string::npos, log);
  BOOST_TEST(log.find(token) == std::string::npos);
  BOOST_TEST(log.find(secret) == std::string::npos);
  // The script inherits none of heaven's sockets or files.
  BOOST_TEST(log.find("fd socket:") == std::string::npos, log);
  BOOST_TEST(log.find(".log\n") == std::string::npos, log);
  BOOST_TEST(log.find("heaven.db") == std::string::npos, log);
  // The script ran in a private checkout, which is gone afterwards.
  auto cwd_at = log.find("cwd ");
  BOOST_REQUIRE(cwd_at != std::string::npos);
  auto cwd = log.substr(cwd_at + 4, log.find('\n', cwd_at) - cwd_at - 4);
  BOOST_TEST(cwd != app.dir.string());
  for (int i = 0; i < 100 && fs::exists(cwd); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_TEST(!fs::exists(cwd));
  // Without the token, or with another deployment's, the log is not there.
  auto base = h.base() + "/deployments/" + std::to_string(id) + "/log";
  BOOST_TEST(http_call("GET", base).status == 404);
  BOOST_TEST(http_call("GET", base + "?token=" + log_token(key, id + 1)).status
             == 404);
  // The list of deployments: 401 and no data without the API token, the
  // rows with it.
  auto list = h.base() + "/deployments";
  auto denied = http_call("GET", list);
  BOOST_TEST(denied.status == 401);
  BOOST_TEST(denied.body == R"({"error":"unauthorized"})");
  auto challenge = std::find_if(denied.headers.begin(), denied.headers.end(),
                                [](auto& kv) {
                                  return kv.first == "www-authenticate";
                                });
  BOOST_REQUIRE(challenge != denied.headers.end());
  BOOST_TEST(challenge->second == R"(Bearer realm="heaven")");
  auto listed = http_call("GET", list, h.authorization());
  BOOST_TEST(listed.status == 200);
  BOOST_TEST(listed.body.find(R"("id":)" + std::to_string(id) + ",")
               != std::string::npos,
             listed.body);
  // heaven's own log never shows the token either.
  h.stop();
  auto own = read_text(tmp.string() + "/data.stderr");
  BOOST_TEST(own.find("deployment " + std::to_string(id)
                      + " of octo/app to production ended: success")
               != std::string::npos,
             own);
  BOOST_TEST(own.find(token) == std::string::npos);
  BOOST_TEST(own.find(secret) == std::string::npos);
  BOOST_TEST(own.find(e2e_api_token) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_failing_script_fails_the_deployment_with_its_status) {
  heaven_server h{tmp / "data", github.base_url()};
  auto body = deployment_event(app, 1002, "script/fail").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-2", body).status == 201);
  auto id = id_of(h, 1002);
  auto row = h.wait_finished(id);
  BOOST_TEST(row.at("state") == "failure");
  BOOST_REQUIRE(github.wait_for(3));
  auto posted = statuses(github, 1002);
  BOOST_TEST(states(posted)
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  std::string description = json::parse(posted[2].body).at("description");
  BOOST_TEST(description.find("exited with status 3") != std::string::npos,
             description);
  BOOST_TEST(h.log(id).find("about to fail\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_missing_script_is_an_error_and_runs_nothing) {
  heaven_server h{tmp / "data", github.base_url()};
  auto body = deployment_event(app, 1003, "script/nope").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-3", body).status == 201);
  auto row = h.wait_finished(id_of(h, 1003));
  BOOST_TEST(row.at("state") == "error");
  BOOST_REQUIRE(github.wait_for(3));
  auto posted = statuses(github, 1003);
  BOOST_TEST(states(posted).back() == "error");
  std::string description = json::parse(posted.back().body).at("description");
  BOOST_TEST(description.find("script/nope") != std::string::npos, description);
  BOOST_TEST(description.find("not found") != std::string::npos, description);
}

BOOST_AUTO_TEST_CASE(bad_signature_broken_json_and_odd_events_are_refused) {
  heaven_server h{tmp / "data", github.base_url()};
  auto body = deployment_event(app, 1004, "script/deploy").dump();
  auto wrong = h.post_event("deployment", "d-bad", body,
                            "sha256="
                              + hmac_sha256_hex("not the secret", body));
  BOOST_TEST(wrong.status == 401);
  auto missing = http_call("POST", h.base() + "/events",
                           {{"X-GitHub-Event", "deployment"},
                            {"X-GitHub-Delivery", "d-missing"}},
                           body);
  BOOST_TEST(missing.status == 401);
  auto broken = h.post_event("deployment", "d-broken", "{\"deployment\": {");
  BOOST_TEST(broken.status == 400);
  BOOST_TEST(json::parse(broken.body).contains("error"));
  auto no_sha = deployment_event(app, 1005, "script/deploy");
  no_sha["deployment"].erase("sha");
  auto incomplete = h.post_event("deployment", "d-nosha", no_sha.dump());
  BOOST_TEST(incomplete.status == 400);
  BOOST_TEST(incomplete.body.find("deployment.sha") != std::string::npos);
  auto odd = h.post_event("issues", "d-issues", "{}");
  BOOST_TEST(odd.status == 422);
  auto ping = h.post_event("ping", "d-ping",
                           R"({"zen":"Keep it logically awesome."})");
  BOOST_TEST(ping.status == 201);
  // Nothing was deployed and GitHub heard nothing. heaven answered after
  // committing what the events led to: once its store is quiet, whatever
  // that was has been sent and answered.
  h.wait_quiet();
  BOOST_TEST(h.deployments().empty());
  BOOST_TEST(github.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_redelivered_event_is_deployed_once) {
  heaven_server h{tmp / "data", github.base_url()};
  auto body = deployment_event(app, 1006, "script/deploy").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-same", body).status == 201);
  auto again = h.post_event("deployment", "delivery-same", body);
  BOOST_TEST(again.status == 200);
  h.wait_finished(id_of(h, 1006));
  BOOST_REQUIRE(github.wait_for(3));
  // The redelivery was answered after it was recorded: a second deployment
  // would be in the store now, and would have to end before it is quiet.
  h.wait_quiet();
  BOOST_TEST(h.deployments().size() == 1u);
  BOOST_TEST(statuses(github, 1006).size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_timeout_kills_the_script_and_all_its_children) {
  auto pids = tmp / "pids";
  app.script("slow", "sleep 300 &\necho $! >> " + pids.string()
                       + "\nsh -c 'sleep 300' &\necho $! >> " + pids.string()
                       + "\necho $$ >> " + pids.string()
                       + "\necho started\nwait\n");
  app.commit("slow");
  heaven_server h{tmp / "data",
                  github.base_url(),
                  {{"DEPLOYMENT_TIMEOUT", "5"}, {"HEAVEN_KILL_GRACE", "1"}}};
  auto body = deployment_event(app, 1007, "script/slow").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-7", body).status == 201);
  auto id = id_of(h, 1007);
  auto row = h.wait_finished(id);
  BOOST_TEST(row.at("state") == "failure");
  BOOST_TEST(row.at("description") == "Deployment timed out after 5 seconds");
  auto log = h.log(id);
  BOOST_TEST(log.find("started\n") != std::string::npos);
  std::string tail = "DEPLOYMENT TIMED OUT AFTER 5 SECONDS\n";
  BOOST_REQUIRE(log.size() >= tail.size());
  BOOST_TEST(log.substr(log.size() - tail.size()) == tail);
  BOOST_REQUIRE(github.wait_for(3));
  BOOST_TEST(states(statuses(github, 1007)).back() == "failure");
  // No process of the script's is left behind.
  std::ifstream in{pids};
  int count = 0;
  for (pid_t pid; in >> pid; ++count) {
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = !running(pid);
      if (!gone)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    BOOST_TEST(gone, "process " << pid << " survived the timeout");
  }
  BOOST_TEST(count == 3);
}

BOOST_AUTO_TEST_CASE(the_same_app_and_environment_deploys_one_at_a_time) {
  // The first deployment's script waits for a file the test makes, so it is
  // surely running when the second arrives.
  auto gate = tmp / "gate";
  app.script("wait", "while [ ! -e " + gate.string()
                       + " ]; do sleep 0.05; done\necho done\n");
  app.commit("wait");
  heaven_server h{tmp / "data", github.base_url()};
  BOOST_TEST(h.post_event("deployment", "delivery-a",
                          deployment_event(app, 2001, "script/wait").dump())
               .status
             == 201);
  auto first_id = id_of(h, 2001);
  BOOST_TEST(h.post_event("deployment", "delivery-b",
                          deployment_event(app, 2002, "script/wait").dump())
               .status
             == 201);
  auto second = h.wait_finished(id_of(h, 2002));
  BOOST_TEST(second.at("state") == "error");
  BOOST_TEST(second.at("description") == "Already deploying.");
  // It never ran: no log file; its log is the one line of its refusal.
  auto problems = h.unstarted_log_problems(
    id_of(h, 2002), "heaven: error: Already deploying.\n");
  BOOST_TEST(problems.empty(), problems);
  // The one running has its file (so the check above can tell them apart).
  BOOST_TEST(
    fs::exists(tmp / "data" / "logs" / (std::to_string(first_id) + ".log")));
  // Another environment of the same app is not held up.
  BOOST_TEST(
    h.post_event("deployment", "delivery-c",
                 deployment_event(app, 2003, "script/deploy", "staging").dump())
      .status
    == 201);
  BOOST_TEST(h.wait_finished(id_of(h, 2003)).at("state") == "success");
  std::ofstream{gate} << "go\n";
  auto first = h.wait_finished(first_id);
  BOOST_TEST(first.at("state") == "success");
  // Once it has ended, the environment takes deployments again.
  BOOST_TEST(h.post_event("deployment", "delivery-d",
                          deployment_event(app, 2004, "script/deploy").dump())
               .status
             == 201);
  BOOST_TEST(h.wait_finished(id_of(h, 2004)).at("state") == "success");
}

BOOST_AUTO_TEST_CASE(an_accepted_event_survives_a_restart) {
  // The first heaven starts a deployment and is killed hard while the
  // script runs; the second finishes the story.
  auto data = tmp / "data";
  auto pidfile = tmp / "script.pid";
  {
    heaven_server h{data, github.base_url()};
    app.script("wait", "echo $$ > " + pidfile.string() + "\nsleep 30\n");
    app.commit("wait");
    auto body = deployment_event(app, 3001, "script/wait").dump();
    BOOST_TEST(h.post_event("deployment", "delivery-r", body).status == 201);
    id_of(h, 3001);
    // Wait until the script runs, then kill heaven without warning.
    bool running_now = false;
    for (int i = 0; i < 200 && !running_now; ++i) {
      auto rows = h.deployments();
      running_now = !rows.empty() && rows[0].at("state") == "running"
                    && fs::exists(pidfile);
      if (!running_now)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    BOOST_REQUIRE(running_now);
    kill(h.pid, SIGKILL);
    waitpid(h.pid, nullptr, 0);
    h.pid = -1;
    // The orphaned script is its own process group: end it.
    for (int i = 0; i < 100 && !fs::exists(pidfile); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in{pidfile};
    pid_t pgid = 0;
    if (in >> pgid && pgid > 0)
      kill(-pgid, SIGKILL);
  }
  heaven_server h2{data, github.base_url()};
  auto row = h2.wait_finished(id_of(h2, 3001));
  BOOST_TEST(row.at("state") == "error");
  std::string description = row.at("description");
  BOOST_TEST(description.find("heaven restarted") == 0u, description);
  // GitHub ends with exactly one terminal status for it.
  auto ended = [&] {
    auto seen = states(statuses(github, 3001));
    return !seen.empty() && seen.back() == "error";
  };
  for (int i = 0; i < 200 && !ended(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_REQUIRE(ended());
  auto seen = states(statuses(github, 3001));
  BOOST_TEST(std::count(seen.begin(), seen.end(), "error") == 1);
  BOOST_TEST(std::count(seen.begin(), seen.end(), "success") == 0);
}

/// Reads the pids a script wrote, one a line.
std::vector<pid_t> read_pids(const fs::path& file) {
  std::vector<pid_t> result;
  std::ifstream in{file};
  for (pid_t pid; in >> pid;)
    result.push_back(pid);
  return result;
}

BOOST_AUTO_TEST_CASE(stopping_heaven_ends_a_script_that_ignores_sigterm) {
  auto pids = tmp / "stubborn.pids";
  app.script("stubborn", "trap '' TERM\necho $$ >> " + pids.string()
                           + "\nsleep 300 &\necho $! >> " + pids.string()
                           + "\nwait\n");
  app.commit("stubborn");
  heaven_server h{
    tmp / "data", github.base_url(), {{"HEAVEN_KILL_GRACE", "1"}}};
  auto body = deployment_event(app, 4001, "script/stubborn").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-s", body).status == 201);
  for (int i = 0; i < 200 && read_pids(pids).size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_REQUIRE(read_pids(pids).size() == 2u);
  BOOST_TEST(h.stop() == 0);
  for (auto pid : read_pids(pids))
    BOOST_TEST(!running(pid), "process " << pid << " outlived heaven");
  auto seen = states(statuses(github, 4001));
  BOOST_REQUIRE(!seen.empty());
  BOOST_TEST(seen.back() == "error");
  BOOST_TEST(json::parse(statuses(github, 4001).back().body).at("description")
             == "heaven was stopped during the deployment");
}

BOOST_AUTO_TEST_CASE(
  a_stopping_heaven_posts_the_end_it_recorded_before_exiting) {
  // GitHub is slow to take the in_progress status: when heaven stops the
  // deployment, the `error` that ends it waits behind that answer in its
  // stream. heaven must not exit before it is posted.
  github.respond_with([](const recorded_request& r) {
    if (r.method == "POST"
        && r.body.find("\"in_progress\"") != std::string::npos)
      std::this_thread::sleep_for(std::chrono::seconds(3));
    return stub_response{};
  });
  auto pids = tmp / "slow.pids";
  app.script("slow", "echo $$ >> " + pids.string() + "\nsleep 300\n");
  app.commit("slow");
  heaven_server h{tmp / "data",
                  github.base_url(),
                  {{"HEAVEN_DRAIN_SECONDS", "0"}, {"HEAVEN_KILL_GRACE", "1"}}};
  auto body = deployment_event(app, 4003, "script/slow").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-u", body).status == 201);
  for (int i = 0; i < 200 && read_pids(pids).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_REQUIRE(read_pids(pids).size() == 1u);
  BOOST_TEST(h.stop() == 0);
  BOOST_TEST(!running(read_pids(pids)[0]));
  auto seen = states(statuses(github, 4003));
  BOOST_TEST(std::count(seen.begin(), seen.end(), "error") == 1);
  BOOST_REQUIRE(!seen.empty());
  BOOST_TEST(seen.back() == "error");
  BOOST_TEST(json::parse(statuses(github, 4003).back().body).at("description")
             == "heaven was stopped during the deployment");
}

BOOST_AUTO_TEST_CASE(processes_a_timeout_spared_end_when_heaven_stops) {
  auto pids = tmp / "spared.pids";
  app.script("spared", "echo $$ >> " + pids.string() + "\nsleep 300\n");
  app.commit("spared");
  heaven_server h{tmp / "data",
                  github.base_url(),
                  {{"DEPLOYMENT_TIMEOUT", "5"},
                   {"TERMINATE_CHILD_PROCESS_ON_TIMEOUT", "0"},
                   {"HEAVEN_KILL_GRACE", "1"}}};
  auto body = deployment_event(app, 4002, "script/spared").dump();
  BOOST_TEST(h.post_event("deployment", "delivery-t", body).status == 201);
  auto row = h.wait_finished(id_of(h, 4002));
  BOOST_TEST(row.at("state") == "failure");
  BOOST_TEST(row.at("description") == "Deployment timed out after 5 seconds");
  auto spared = read_pids(pids);
  BOOST_REQUIRE(spared.size() == 1u);
  // As configured, the timeout left the script running...
  BOOST_TEST(running(spared[0]));
  // ...but it does not outlive heaven.
  BOOST_TEST(h.stop() == 0);
  BOOST_TEST(!running(spared[0]));
}

BOOST_AUTO_TEST_CASE(without_a_token_or_sign_in_the_read_side_is_off) {
  heaven_server h{tmp / "data", github.base_url(), {{"HEAVEN_API_TOKEN", ""}}};
  auto res = http_call("GET", h.base() + "/deployments",
                       {{"Authorization", "Bearer "}});
  BOOST_TEST(res.status == 404);
  BOOST_TEST(res.body == R"({"error":"not found"})");
  BOOST_TEST(http_call("GET", h.base() + "/locks").status == 404);
  BOOST_TEST(h.stop() == 0);
  auto own = read_text(h.stderr_file);
  const std::string line
    = "] [heaven] [warning] neither HEAVEN_API_TOKEN nor GITHUB_CLIENT_ID is "
      "set: GET /deployments, GET /locks and GET /metrics are not served on "
      "127.0.0.1:0 (only the log and locks links with their token are); set "
      "HEAVEN_API_TOKEN to read them with 'Authorization: Bearer <token>', or "
      "GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET and GITHUB_TEAM_ID or "
      "HEAVEN_GITHUB_ORG to read /deployments and /locks signed in with "
      "GitHub\n";
  // Said once.
  BOOST_TEST(own.find(line) != std::string::npos, own);
  BOOST_TEST(own.find(line) == own.rfind(line), own);
}

BOOST_AUTO_TEST_CASE(heaven_refuses_to_start_without_a_webhook_secret) {
  auto out = sh(std::string{"cd "} + tmp.string() + " && env -i PATH=$PATH "
                + HEAVEN_BINARY + " serve 2>&1; echo rc=$?");
  BOOST_TEST(out.find("GITHUB_WEBHOOK_SECRET is not set") != std::string::npos,
             out);
  BOOST_TEST(out.find("rc=2") != std::string::npos, out);
}

BOOST_AUTO_TEST_SUITE_END()
