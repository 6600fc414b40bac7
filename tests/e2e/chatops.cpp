// End-to-end tests of heaven's chat-ops rules through the real `heaven serve`
// binary: environment locks (tasks, the store, a restart, the command line
// and GET /locks), repository switches, auto-deployment on green commit
// statuses, and chat notifications on deployment statuses. GitHub and the
// chat services are local stand-ins over real sockets that record every
// request; deployments run real scripts from a real git repository.

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "base/log_book.hpp"
#include "base/webhook.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string sh(const std::string& cmd) {
  return run_checked(cmd);
}

/// The heaven command line on data directory `data` (no config file).
command_result heaven_cli(const fs::path& data, const std::string& args) {
  return run_command("HEAVEN_CONFIG=/dev/null " + std::string{HEAVEN_BINARY}
                     + " " + args + " --data-dir " + data.string());
}

/// The base of the e2e stand-in GitHub's answers to auto-deploy's questions.
struct github_answers {
  std::string combined = "success";
  std::string compare = "ahead";
};

/// One heaven's world: a GitHub stand-in, a repository whose deploy script
/// leaves a mark for every deployment it runs, and a data directory.
struct fixture {
  fs::path tmp = make_temp_dir("chatops");
  fs::path data = tmp / "data";
  fs::path marks = tmp / "marks";
  http_stub github;
  std::shared_ptr<github_answers> answers = std::make_shared<github_answers>();
  std::string sha;
  std::string next_sha;

  fixture() {
    auto dir = tmp / "app";
    fs::create_directories(dir / "script");
    fs::create_directories(marks);
    sh("git -C " + dir.string() + " init -q --initial-branch=main");
    std::ofstream{dir / "script" / "deploy"}
      << "#!/bin/sh\necho deployed > " << marks.string()
      << "/$DEPLOY_ENV-$SHA\necho \"deploying $SHA to $DEPLOY_ENV\"\n";
    fs::permissions(dir / "script" / "deploy", fs::perms::owner_all);
    commit(dir, "first");
    sha = sh("git -C " + dir.string() + " rev-parse HEAD");
    std::ofstream{dir / "README"} << "second\n";
    commit(dir, "second");
    next_sha = sh("git -C " + dir.string() + " rev-parse HEAD");
    auto a = answers;
    github.respond_with([a](const recorded_request& r) {
      if (r.method == "GET" && r.target.find("/status") != std::string::npos)
        return stub_response{
          200,
          {{"Content-Type", "application/json"}},
          json{{"state", a->combined}, {"total_count", 1}}.dump()};
      if (r.method == "GET" && r.target.find("/compare/") != std::string::npos)
        return stub_response{200,
                             {{"Content-Type", "application/json"}},
                             json{{"status", a->compare},
                                  {"ahead_by", a->compare == "ahead" ? 1 : 0},
                                  {"behind_by", a->compare == "behind" ? 1 : 0},
                                  {"total_commits", 1},
                                  {"commits", json::array()},
                                  {"files", json::array()}}
                               .dump()};
      if (r.method == "POST" && r.target == "/repos/octo/app/deployments")
        return stub_response{201,
                             {{"Content-Type", "application/json"}},
                             R"({"id":90001,"sha":"x"})"};
      return stub_response{};
    });
  }

  static void commit(const fs::path& dir, const std::string& message) {
    sh("cd " + dir.string()
       + " && git add -A && git -c user.name=t -c user.email=t@t commit -q "
         "-m '"
       + message + "'");
  }

  ~fixture() {
    fs::remove_all(tmp);
    fs::remove(data.string() + ".stderr");
  }

  /// A deployment event of task `task` by `login`.
  json event(int64_t id, const std::string& task,
             const std::string& login = "alice",
             const std::string& environment = "production",
             const std::string& description = "Deploying from chat") const {
    auto ev = deployment_event(
      {.id = id,
       .sha = sha,
       .clone_url = "file://" + (tmp / "app").string(),
       .payload = {{"name", "app"},
                   {"notify", {{"room", "ops"}, {"user", login}}},
                   {"config",
                    {{"provider", "shell"},
                     {"deploy_script", "script/deploy"}}}},
       .environment = environment,
       .description = description,
       .login = login});
    ev["deployment"]["task"] = task;
    return ev;
  }

  /// Posts deployment `id` and waits for its terminal status; returns
  /// (state, description) of the last status.
  std::pair<std::string, std::string> deploy(const heaven_server& h,
                                             const json& ev) const {
    auto id = ev["deployment"]["id"].get<int64_t>();
    auto res = h.post_event("deployment", "delivery-" + std::to_string(id),
                            ev.dump());
    BOOST_REQUIRE_EQUAL(res.status, 201);
    h.wait_finished(id_of(h, id));
    std::vector<recorded_request> posted;
    BOOST_REQUIRE(eventually(
      [&] {
        posted = statuses(github, id);
        if (posted.empty())
          return false;
        auto s = json::parse(posted.back().body).at("state");
        return s == "success" || s == "failure" || s == "error";
      },
      30s));
    auto last = json::parse(posted.back().body);
    return {last.at("state"), last.at("description")};
  }

  bool ran(const std::string& environment) const {
    return fs::exists(marks / (environment + "-" + sha));
  }

  /// The /locks page with `token`.
  http_response locks_page(const heaven_server& h,
                           const std::string& token) const {
    return http_call("GET", h.base() + "/locks?token=" + token);
  }

  std::string locks_token_of(const heaven_server& h) const {
    return heaven::locks_token(h.log_key());
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(chatops, fixture)

BOOST_AUTO_TEST_CASE(
  a_lock_refuses_deployments_naming_the_locker_until_unlocked) {
  heaven_server h{data, github.base_url()};
  auto locked = deploy(h, event(101, "deploy:lock", "bob", "production",
                                "incident 42: db failover"));
  BOOST_CHECK_EQUAL(locked.first, "success");
  BOOST_CHECK_EQUAL(locked.second, "octo/app locked on production by bob");
  // A lock never reaches a provider: one status, no queued/in_progress.
  BOOST_CHECK_EQUAL(states(statuses(github, 101)).size(), 1u);

  auto refused = deploy(h, event(102, "deploy", "alice"));
  BOOST_CHECK_EQUAL(refused.first, "error");
  BOOST_CHECK_EQUAL(refused.second, "octo/app is locked on production by bob");
  BOOST_CHECK_EQUAL(states(statuses(github, 102)).size(), 1u);
  BOOST_CHECK(!ran("production"));
  // Neither the lock nor the refusal ran: no log file for either; the log
  // of each is the one line of its end.
  auto problems = h.unstarted_log_problems(
    id_of(h, 102), "heaven: error: octo/app is locked on production by bob\n");
  BOOST_TEST(problems.empty(), problems);
  problems = h.unstarted_log_problems(
    id_of(h, 101), "heaven: success: octo/app locked on production by bob\n");
  BOOST_TEST(problems.empty(), problems);

  // Another environment of the same repository is not locked.
  auto staging = deploy(h, event(103, "deploy", "alice", "staging"));
  BOOST_CHECK_EQUAL(staging.first, "success");
  BOOST_CHECK(ran("staging"));

  // The lock is on the HTTP side, with its link's token or the API token.
  auto page = locks_page(h, locks_token_of(h));
  BOOST_REQUIRE_EQUAL(page.status, 200);
  auto locks = json::parse(page.body);
  BOOST_REQUIRE_EQUAL(locks.size(), 1u);
  BOOST_CHECK_EQUAL(locks[0]["repo"], "octo/app");
  BOOST_CHECK_EQUAL(locks[0]["environment"], "production");
  BOOST_CHECK_EQUAL(locks[0]["actor"], "bob");
  BOOST_CHECK_EQUAL(locks[0]["reason"], "incident 42: db failover");
  BOOST_CHECK_EQUAL(locks[0]["deployment_id"], id_of(h, 101));
  // Without either: 401, no data.
  BOOST_CHECK_EQUAL(locks_page(h, "").status, 401);
  BOOST_CHECK_EQUAL(locks_page(h, log_token(h.log_key(), 1)).status, 401);
  BOOST_CHECK_EQUAL(locks_page(h, log_token(h.log_key(), 1)).body,
                    R"({"error":"unauthorized"})");
  auto with_token = http_call("GET", h.base() + "/locks", h.authorization());
  BOOST_CHECK_EQUAL(with_token.status, 200);
  BOOST_CHECK_EQUAL(with_token.body, page.body);

  // Someone else's lock is not taken over.
  auto stolen = deploy(h, event(104, "deploy:lock", "carol"));
  BOOST_CHECK_EQUAL(stolen.first, "error");
  BOOST_CHECK_EQUAL(stolen.second,
                    "octo/app is already locked on production by bob: ask "
                    "them, or unlock it first");
  BOOST_CHECK_EQUAL(
    json::parse(locks_page(h, locks_token_of(h)).body)[0]["actor"], "bob");

  auto unlocked = deploy(h, event(105, "deploy:unlock", "alice"));
  BOOST_CHECK_EQUAL(unlocked.first, "success");
  BOOST_CHECK_EQUAL(unlocked.second,
                    "octo/app unlocked on production by alice");
  BOOST_CHECK_EQUAL(locks_page(h, locks_token_of(h)).body, "[]");

  auto allowed = deploy(h, event(106, "deploy", "alice"));
  BOOST_CHECK_EQUAL(allowed.first, "success");
  BOOST_CHECK(ran("production"));
}

BOOST_AUTO_TEST_CASE(the_lock_prefix_follows_hubot_deploy_prefix) {
  heaven_server h{data, github.base_url(), {{"HUBOT_DEPLOY_PREFIX", "ship"}}};
  auto locked = deploy(h, event(111, "ship:lock", "bob"));
  BOOST_CHECK_EQUAL(locked.first, "success");
  BOOST_CHECK_EQUAL(locked.second, "octo/app locked on production by bob");
  // deploy:lock is an ordinary task now; the environment is locked.
  auto refused = deploy(h, event(112, "deploy:lock", "alice"));
  BOOST_CHECK_EQUAL(refused.second, "octo/app is locked on production by bob");
}

BOOST_AUTO_TEST_CASE(a_lock_survives_a_restart_and_the_command_line_breaks_it) {
  {
    heaven_server h{data, github.base_url()};
    BOOST_CHECK_EQUAL(deploy(h, event(121, "deploy:lock", "bob")).first,
                      "success");
    BOOST_CHECK_EQUAL(h.stop(), 0);
  }
  heaven_server h{data, github.base_url()};
  auto refused = deploy(h, event(122, "deploy", "alice"));
  BOOST_CHECK_EQUAL(refused.second, "octo/app is locked on production by bob");

  // The command line sees and breaks the lock while heaven runs.
  auto listed = heaven_cli(data, "locks");
  BOOST_CHECK_EQUAL(listed.status, 0);
  BOOST_CHECK_MESSAGE(listed.out.find("octo/app is locked on production by "
                                      "bob since ")
                        != std::string::npos,
                      listed.out);
  BOOST_CHECK_MESSAGE(listed.out.find("/locks?token=" + locks_token_of(h))
                        != std::string::npos,
                      listed.out);
  auto broken = heaven_cli(data, "unlock octo/app production");
  BOOST_CHECK_EQUAL(broken.status, 0);
  BOOST_CHECK_MESSAGE(broken.out.rfind("Unlocked octo/app on production "
                                       "(locked by bob since ",
                                       0)
                        == 0,
                      broken.out);
  auto again = heaven_cli(data, "unlock octo/app production");
  BOOST_CHECK_EQUAL(again.status, 1);
  BOOST_CHECK_EQUAL(again.out, "octo/app is not locked on production.\n");
  BOOST_CHECK_EQUAL(
    heaven_cli(data, "locks").out.rfind("No environment is locked.\n", 0), 0u);

  auto allowed = deploy(h, event(123, "deploy", "alice"));
  BOOST_CHECK_EQUAL(allowed.first, "success");
  BOOST_CHECK(ran("production"));

  auto usage = heaven_cli(data, "unlock octo/app");
  BOOST_CHECK_EQUAL(usage.status, 2);
  BOOST_CHECK_EQUAL(heaven_cli(tmp / "nowhere", "locks").status, 1);
}

BOOST_AUTO_TEST_CASE(a_disabled_repository_is_ignored_until_enabled) {
  heaven_server h{data, github.base_url()};
  auto disabled = heaven_cli(data, "repos disable octo/app");
  BOOST_CHECK_EQUAL(disabled.status, 0);
  BOOST_CHECK_EQUAL(disabled.out,
                    "octo/app is disabled: heaven ignores its events until "
                    "`heaven repos enable octo/app`.\n");
  auto res = h.post_event("deployment", "delivery-131",
                          event(131, "deploy").dump());
  BOOST_CHECK_EQUAL(res.status, 202);
  BOOST_CHECK_EQUAL(res.body,
                    R"({"status":"ignored","reason":"repository disabled"})");
  BOOST_CHECK(h.deployments().empty());
  auto listed = heaven_cli(data, "repos");
  BOOST_CHECK_EQUAL(listed.status, 0);
  BOOST_CHECK_MESSAGE(
    listed.out.rfind("octo/app\tdisabled\tfirst seen ", 0) == 0, listed.out);
  BOOST_CHECK_EQUAL(heaven_cli(data, "repos disable not-a-repo").status, 2);

  BOOST_CHECK_EQUAL(heaven_cli(data, "repos enable octo/app").status, 0);
  auto allowed = deploy(h, event(132, "deploy"));
  BOOST_CHECK_EQUAL(allowed.first, "success");
  // The ignored deployment got no status at all, ever.
  BOOST_CHECK(statuses(github, 131).empty());
  BOOST_CHECK(heaven_cli(data, "repos").out.rfind("octo/app\tactive\t", 0)
              == 0);
}

namespace {

/// A GitHub `status` event (the shape GitHub documents) for `sha`.
json status_event(const std::string& sha, const std::string& state,
                  const std::string& branch = "main") {
  return {{"id", 6001},
          {"sha", sha},
          {"name", "octo/app"},
          {"target_url", "https://ci.example.com/builds/1"},
          {"context", "ci/test"},
          {"description", "The build passed"},
          {"state", state},
          {"commit",
           {{"sha", sha},
            {"commit",
             {{"author", {{"name", "Carol"}, {"email", "carol@example.com"}}},
              {"message", "second"}}},
            {"author", {{"login", "carol"}}}}},
          {"branches", json::array({{{"name", branch},
                                     {"commit", {{"sha", sha}}},
                                     {"protected", false}}})},
          {"repository",
           {{"id", 1},
            {"name", "app"},
            {"full_name", "octo/app"},
            {"owner", {{"login", "octo"}}},
            {"html_url", "https://github.com/octo/app"},
            {"default_branch", "main"}}},
          {"sender", {{"login", "ci-bot"}}}};
}

/// The requests `github` got at exactly `method` `target`.
std::vector<recorded_request> requests_to(const http_stub& github,
                                          const std::string& method,
                                          const std::string& target) {
  std::vector<recorded_request> out;
  for (auto& r : github.requests())
    if (r.method == method && r.target == target)
      out.push_back(r);
  return out;
}

/// True once heaven's stderr holds `text`.
bool stderr_says(const heaven_server& h, const std::string& text) {
  return eventually(
    [&] { return read_text(h.stderr_file).find(text) != std::string::npos; },
    30s);
}

} // namespace

BOOST_AUTO_TEST_CASE(a_green_commit_ahead_is_auto_deployed_once) {
  heaven_server h{data, github.base_url()};
  BOOST_REQUIRE_EQUAL(deploy(h, event(141, "deploy", "alice")).first,
                      "success");
  auto green = status_event(next_sha, "success");
  BOOST_CHECK_EQUAL(h.post_event("status", "status-1", green.dump()).status,
                    201);
  auto create = [&] {
    return requests_to(github, "POST", "/repos/octo/app/deployments");
  };
  BOOST_REQUIRE(eventually([&] { return !create().empty(); }, 30s));
  BOOST_CHECK_EQUAL(
    requests_to(github, "GET",
                "/repos/octo/app/commits/" + next_sha + "/status")
      .size(),
    1u);
  BOOST_CHECK_EQUAL(
    requests_to(github, "GET",
                "/repos/octo/app/compare/" + sha + "..." + next_sha)
      .size(),
    1u);
  auto posted = create().front();
  BOOST_CHECK_EQUAL(posted.header("authorization"),
                    std::string{"token "} + e2e_github_token);
  auto expected = json{
    {"ref", next_sha},
    {"environment", "production"},
    {"task", "deploy"},
    {"auto_merge", false},
    {"payload",
     {{"name", "app"},
      {"notify", {{"room", "ops"}, {"user", "alice"}}},
      {"config", {{"provider", "shell"}, {"deploy_script", "script/deploy"}}},
      {"actor", "carol"},
      {"sha", next_sha}}},
    {"description", "Heaven auto deploy triggered by a commit status change"}};
  BOOST_CHECK_EQUAL(json::parse(posted.body), expected);
  BOOST_CHECK(stderr_says(h, "created GitHub deployment 90001"));

  // Another green status for the same sha: no second deployment.
  BOOST_CHECK_EQUAL(h.post_event("status", "status-2", green.dump()).status,
                    201);
  BOOST_CHECK(stderr_says(h, "already auto-deployed"));
  BOOST_CHECK_EQUAL(create().size(), 1u);

  // A red combined status, a commit behind, another branch, a locked
  // environment: each says why, none deploys.
  answers->combined = "failure";
  h.post_event("status", "status-3",
               status_event(std::string(40, 'c'), "success").dump());
  BOOST_CHECK(stderr_says(h, "its combined status is failure, not success"));
  answers->combined = "success";
  answers->compare = "behind";
  h.post_event("status", "status-4",
               status_event(std::string(40, 'd'), "success").dump());
  BOOST_CHECK(stderr_says(h, "it is behind, not ahead"));
  answers->compare = "ahead";
  h.post_event("status", "status-5",
               status_event(std::string(40, 'e'), "success", "feature").dump());
  BOOST_CHECK(stderr_says(h, "Ignoring commit status (success) for "
                             "octo/app+feature@eeeeeeee: not on the default "
                             "branch main"));
  h.post_event("status", "status-6",
               status_event(std::string(40, 'f'), "failure").dump());
  BOOST_REQUIRE_EQUAL(deploy(h, event(142, "deploy:lock", "bob")).first,
                      "success");
  h.post_event("status", "status-7",
               status_event(std::string(40, 'a'), "success").dump());
  BOOST_CHECK(stderr_says(h, "Not auto-deploying octo/app@aaaaaaaa to "
                             "production: octo/app is locked on production "
                             "by bob"));
  BOOST_CHECK_EQUAL(create().size(), 1u);
  // The red and the failed status never reached GitHub's compare API.
  BOOST_CHECK_EQUAL(
    requests_to(github, "GET",
                "/repos/octo/app/compare/" + sha + "..." + std::string(40, 'c'))
      .size(),
    0u);
  BOOST_CHECK(
    requests_to(github, "GET",
                "/repos/octo/app/commits/" + std::string(40, 'f') + "/status")
      .empty());
}

namespace {

constexpr auto slack_path = "/services/T000/B000/SLACKe2eSECRETwebhook";
constexpr auto hook_secret = "e2e notify webhook secret";

/// A `deployment_status` event for deployment `id` in `state`.
json deployment_status_event(int64_t id, const std::string& state,
                             const std::string& sha,
                             const std::string& description) {
  return {
    {"action", "created"},
    {"deployment_status",
     {{"id", id * 10},
      {"state", state},
      {"description", description},
      {"environment", "production"},
      {"target_url", "https://heaven.example.test/deployments/1/log?token=t"},
      {"log_url", "https://heaven.example.test/deployments/1/log?token=t"},
      {"creator", {{"login", "heaven-bot"}}}}},
    {"deployment",
     {{"id", id},
      {"sha", sha},
      {"ref", "main"},
      {"task", "deploy"},
      {"environment", "production"},
      {"description", "Deploying from chat"},
      {"payload",
       {{"name", "app"},
        {"notify", {{"room", "ops"}, {"user", "alice"}}},
        {"config", {{"provider", "shell"}}}}},
      {"creator", {{"login", "alice"}}}}},
    {"repository",
     {{"name", "app"},
      {"full_name", "octo/app"},
      {"html_url", "https://github.com/octo/app"},
      {"default_branch", "main"}}},
    {"sender", {{"login", "heaven-bot"}}}};
}

} // namespace

BOOST_AUTO_TEST_CASE(
  every_chat_service_hears_of_deployments_and_one_down_delays_nothing) {
  http_stub slack;
  http_stub hook;
  uint16_t closed_port = 0;
  {
    http_stub gone;
    closed_port = gone.port();
  }
  heaven_server h{
    data,
    github.base_url(),
    {{"SLACK_WEBHOOK_URL", slack.base_url() + std::string{slack_path + 1}},
     {"SLACK_BOT_NAME", "deploybot"},
     {"HEAVEN_NOTIFY_WEBHOOK_URL", hook.base_url() + "hook"},
     {"HEAVEN_NOTIFY_WEBHOOK_SECRET", hook_secret},
     // HipChat is down for the whole test.
     {"HIPCHAT_TOKEN", "HIPCHATe2eSECRET"},
     {"HIPCHAT_SERVER", "http://127.0.0.1:" + std::to_string(closed_port)},
     {"HEAVEN_NOTIFIER_DISPLAY_COMMITS", "1"},
     {"HEAVEN_LOG_LEVEL", "debug"}}};
  BOOST_CHECK(stderr_says(h, "heaven tells slack, hipchat, webhook about "
                             "deployment statuses"));
  auto ev = deployment_status_event(501, "success", sha, "Deployed");
  BOOST_CHECK_EQUAL(h.post_event("deployment_status", "ds-1", ev.dump()).status,
                    201);
  BOOST_REQUIRE(slack.wait_for(1, 30000));
  auto got = slack.requests().front();
  BOOST_CHECK_EQUAL(got.method, "POST");
  BOOST_CHECK_EQUAL(got.target, slack_path);
  auto text = std::string{"<https://heaven.example.test/deployments/1/"
                          "log?token=t|#501> : <https://github.com/alice|"
                          "alice>'s production deployment of "
                          "<https://github.com/octo/app|app> is done! "};
  auto expected = json{
    {"channel", "#ops"},
    {"username", "deploybot"},
    {"icon_url", "https://octodex.github.com/images/labtocat.png"},
    {"attachments",
     json::array({{{"text", text},
                   {"color", "good"},
                   {"pretext", " "},
                   {"fallback", "alice's production deployment of app is "
                                "done! "},
                   {"mrkdwn_in", json::array({"text", "pretext"})}}})}};
  BOOST_CHECK_EQUAL(json::parse(got.body), expected);

  // The generic webhook: signed JSON.
  BOOST_REQUIRE(hook.wait_for(1, 30000));
  auto sent = hook.requests().front();
  BOOST_CHECK_EQUAL(sent.target, "/hook");
  BOOST_CHECK_EQUAL(sent.header("x-heaven-event"), "deployment_status");
  BOOST_CHECK_EQUAL(sent.header("x-heaven-signature-256"),
                    "sha256=" + hmac_sha256_hex(hook_secret, sent.body));
  auto body = json::parse(sent.body);
  BOOST_CHECK_EQUAL(body["state"], "success");
  BOOST_CHECK_EQUAL(body["repository"], "octo/app");
  BOOST_CHECK_EQUAL(body["deployment_id"], 501);
  BOOST_CHECK(body["changes"].is_null());

  // While HipChat is down, deployments go on as usual.
  auto deployed = deploy(h, event(151, "deploy", "alice"));
  BOOST_CHECK_EQUAL(deployed.first, "success");

  // The first success recorded the revision: the next one lists the
  // commits since, from GitHub's compare API.
  auto next = deployment_status_event(502, "success", next_sha, "Deployed");
  h.post_event("deployment_status", "ds-2", next.dump());
  BOOST_REQUIRE(eventually(
    [&] {
      return !requests_to(github, "GET",
                          "/repos/octo/app/compare/" + sha + "..." + next_sha)
                .empty();
    },
    30s));
  BOOST_REQUIRE(hook.wait_for(2, 30000));
  BOOST_CHECK(!json::parse(hook.requests()[1].body)["changes"].is_null());
  BOOST_CHECK(stderr_says(h, "hipchat"));
  auto log = read_text(h.stderr_file);
  for (auto secret :
       {std::string{"SLACKe2eSECRETwebhook"}, std::string{"HIPCHATe2eSECRET"},
        std::string{hook_secret}})
    BOOST_CHECK_MESSAGE(log.find(secret) == std::string::npos,
                        "heaven's log holds " + secret);
}

namespace {

/// A chat stand-in that is down (503) until `up`, and keeps what it
/// accepted while up, in order.
struct chat_stand_in {
  http_stub stub;
  std::shared_ptr<std::atomic<bool>> up = std::make_shared<std::atomic<bool>>(
    false);
  std::shared_ptr<std::mutex> mx = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<recorded_request>> accepted
    = std::make_shared<std::vector<recorded_request>>();

  chat_stand_in() {
    stub.respond_with(
      [up = up, mx = mx, accepted = accepted](const recorded_request& r) {
        if (!*up)
          return stub_response{503, {{"Content-Type", "text/plain"}}, "down"};
        std::lock_guard guard{*mx};
        accepted->push_back(r);
        return stub_response{200, {{"Content-Type", "text/plain"}}, "ok"};
      });
  }

  std::vector<recorded_request> got() const {
    std::lock_guard guard{*mx};
    return *accepted;
  }
};

} // namespace

BOOST_AUTO_TEST_CASE(
  a_killed_heaven_loses_no_chat_message_and_sends_none_twice) {
  chat_stand_in slack;
  chat_stand_in hook;
  heaven_server::env_list env = {
    {"SLACK_WEBHOOK_URL", slack.stub.base_url() + std::string{slack_path + 1}},
    {"HEAVEN_NOTIFY_WEBHOOK_URL", hook.stub.base_url() + "hook"},
    {"HEAVEN_NOTIFY_WEBHOOK_SECRET", hook_secret},
    {"HEAVEN_RETRY_BACKOFF_MS", "50"},
    {"HEAVEN_RETRY_MAX_BACKOFF_MS", "200"}};
  std::set<std::string> ids_while_down;
  {
    heaven_server h{data, github.base_url(), env};
    for (auto [delivery, ev] :
         {std::pair{"ds-k1", deployment_status_event(601, "in_progress", sha,
                                                     "Deploying")},
          std::pair{"ds-k2",
                    deployment_status_event(601, "success", sha, "Deployed")},
          std::pair{"ds-k3", deployment_status_event(602, "failure", next_sha,
                                                     "exit 3")}})
      BOOST_REQUIRE_EQUAL(
        h.post_event("deployment_status", delivery, ev.dump()).status, 201);
    // Both services are down; heaven keeps trying the first message.
    BOOST_REQUIRE(slack.stub.wait_for(2, 30000));
    BOOST_REQUIRE(hook.stub.wait_for(2, 30000));
    kill(h.pid, SIGKILL);
    waitpid(h.pid, nullptr, 0);
    h.pid = -1;
  }
  // What the killed heaven had in flight has arrived: it is gone, and the
  // stand-ins have read every connection it made to its end. Nothing was
  // accepted.
  BOOST_REQUIRE(slack.stub.wait_idle());
  BOOST_REQUIRE(hook.stub.wait_idle());
  for (auto& r : hook.stub.requests())
    ids_while_down.insert(r.header("x-heaven-delivery"));
  BOOST_CHECK_EQUAL(ids_while_down.size(), 1u);
  BOOST_CHECK(slack.got().empty());
  // The services are back, and so is heaven.
  *slack.up = true;
  *hook.up = true;
  heaven_server h{data, github.base_url(), env};
  BOOST_REQUIRE(eventually([&] { return slack.got().size() >= 3; }, 30s));
  BOOST_REQUIRE(eventually([&] { return hook.got().size() >= 3; }, 30s));
  // A later notice goes after whatever waited: once it is in, anything sent
  // twice would be too.
  BOOST_REQUIRE_EQUAL(
    h.post_event(
       "deployment_status", "ds-k4",
       deployment_status_event(603, "pending", next_sha, "Queued").dump())
      .status,
    201);
  BOOST_REQUIRE(eventually([&] { return slack.got().size() >= 4; }, 30s));
  BOOST_REQUIRE(eventually([&] { return hook.got().size() >= 4; }, 30s));
  auto said = slack.got();
  BOOST_REQUIRE_EQUAL(said.size(), 4u);
  std::vector<std::string> expected = {
    "#601> : <https://github.com/alice|alice> is deploying",
    "#601> : <https://github.com/alice|alice>'s production deployment of "
    "<https://github.com/octo/app|app> is done! ",
    "#602> : <https://github.com/alice|alice>'s production deployment of "
    "<https://github.com/octo/app|app> failed. ",
    "#603> : <https://github.com/alice|alice> is deploying"};
  for (std::size_t i = 0; i < said.size(); ++i) {
    BOOST_CHECK_EQUAL(said[i].target, slack_path);
    auto text
      = json::parse(said[i].body)["attachments"][0]["text"].get<std::string>();
    BOOST_CHECK_MESSAGE(text.find(expected[i]) != std::string::npos, text);
  }
  // The start messages in full: 601 had nothing deployed before it; 603
  // links the comparison with what 601 deployed.
  auto text_of = [&](std::size_t i) {
    return json::parse(said[i].body)["attachments"][0]["text"]
      .get<std::string>();
  };
  auto starting = std::string{"<https://heaven.example.test/deployments/1/"
                              "log?token=t|#60"};
  auto deploying = std::string{"> : <https://github.com/alice|alice> is "
                               "deploying <https://github.com/octo/app/tree/"
                               "main|app> to production"};
  BOOST_CHECK_EQUAL(text_of(0), starting + "1" + deploying);
  BOOST_CHECK_EQUAL(text_of(3), starting + "3" + deploying
                                  + " (<https://github.com/octo/app/compare/"
                                  + sha + "..." + next_sha + "|compare>)");
  // The generic webhook: every message once, each with a delivery id of its
  // own, the first with the id it had before heaven was killed.
  auto sent = hook.got();
  BOOST_REQUIRE_EQUAL(sent.size(), 4u);
  std::vector<std::string> states;
  std::set<std::string> ids;
  for (auto& r : sent) {
    states.push_back(json::parse(r.body)["state"]);
    ids.insert(r.header("x-heaven-delivery"));
    BOOST_CHECK_EQUAL(r.header("x-heaven-signature-256"),
                      "sha256=" + hmac_sha256_hex(hook_secret, r.body));
  }
  BOOST_CHECK((states
               == std::vector<std::string>{"in_progress", "success", "failure",
                                           "pending"}));
  BOOST_CHECK_EQUAL(ids.size(), 4u);
  BOOST_CHECK_EQUAL(sent[0].header("x-heaven-delivery"),
                    *ids_while_down.begin());
  auto log = read_text(h.stderr_file);
  BOOST_CHECK_MESSAGE(log.find("SLACKe2eSECRETwebhook") == std::string::npos,
                      "heaven's log holds the Slack URL");
}

BOOST_AUTO_TEST_SUITE_END()
