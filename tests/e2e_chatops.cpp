// End-to-end tests of heaven's chat-ops rules through the real `heaven serve`
// binary: environment locks (tasks, the store, a restart, the command line
// and GET /locks), repository switches, auto-deployment on green commit
// statuses, and chat notifications on deployment statuses. GitHub and the
// chat services are local stand-ins over real sockets that record every
// request; deployments run real scripts from a real git repository.

#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "actors/log_book.hpp"
#include "tests/support/heaven_process.hpp"
#include "tests/support/http_call.hpp"
#include "tests/support/http_stub.hpp"
#include "tests/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// What a command printed and how it ended.
struct command_result {
  int status = -1;
  std::string out;
};

/// Runs `cmd` with a shell, stdout and stderr together.
command_result run(const std::string& cmd) {
  command_result result;
  auto pipe = popen((cmd + " 2>&1").c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
    result.out.append(buf, n);
  auto rc = pclose(pipe);
  result.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return result;
}

std::string sh(const std::string& cmd) {
  auto r = run(cmd);
  BOOST_REQUIRE_MESSAGE(r.status == 0, "command failed: " + cmd + "\n" + r.out);
  while (!r.out.empty() && r.out.back() == '\n')
    r.out.pop_back();
  return r.out;
}

/// The heaven command line on data directory `data` (no config file).
command_result heaven_cli(const fs::path& data, const std::string& args) {
  return run("HEAVEN_CONFIG=/dev/null " + std::string{HEAVEN_BINARY} + " "
             + args + " --data-dir " + data.string());
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
        return stub_response{200, {{"Content-Type", "application/json"}},
                             json{{"state", a->combined},
                                  {"total_count", 1}}.dump()};
      if (r.method == "GET" && r.target.find("/compare/") != std::string::npos)
        return stub_response{200, {{"Content-Type", "application/json"}},
                             json{{"status", a->compare},
                                  {"ahead_by", a->compare == "ahead" ? 1 : 0},
                                  {"behind_by", a->compare == "behind" ? 1 : 0},
                                  {"total_commits", 1},
                                  {"commits", json::array()},
                                  {"files", json::array()}}.dump()};
      if (r.method == "POST" && r.target == "/repos/octo/app/deployments")
        return stub_response{201, {{"Content-Type", "application/json"}},
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
                    {{"provider", "shell"}, {"deploy_script", "script/deploy"}}}},
       .environment = environment,
       .description = description,
       .login = login});
    ev["deployment"]["task"] = task;
    return ev;
  }

  /// Posts deployment `id` and waits for its terminal status; returns
  /// (state, description) of the last status.
  std::pair<std::string, std::string>
  deploy(const heaven_server& h, const json& ev) const {
    auto id = ev["deployment"]["id"].get<int64_t>();
    auto res = h.post_event("deployment", "delivery-" + std::to_string(id),
                            ev.dump());
    BOOST_REQUIRE_EQUAL(res.status, 201);
    h.wait_finished(id_of(h, id));
    std::vector<recorded_request> posted;
    BOOST_REQUIRE(eventually([&] {
      posted = statuses(github, id);
      if (posted.empty())
        return false;
      auto s = json::parse(posted.back().body).at("state");
      return s == "success" || s == "failure" || s == "error";
    }, 30s));
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

BOOST_AUTO_TEST_CASE(a_lock_refuses_deployments_naming_the_locker_until_unlocked) {
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

  // Another environment of the same repository is not locked.
  auto staging = deploy(h, event(103, "deploy", "alice", "staging"));
  BOOST_CHECK_EQUAL(staging.first, "success");
  BOOST_CHECK(ran("staging"));

  // The lock is on the HTTP side, with its token only.
  auto page = locks_page(h, locks_token_of(h));
  BOOST_REQUIRE_EQUAL(page.status, 200);
  auto locks = json::parse(page.body);
  BOOST_REQUIRE_EQUAL(locks.size(), 1u);
  BOOST_CHECK_EQUAL(locks[0]["repo"], "octo/app");
  BOOST_CHECK_EQUAL(locks[0]["environment"], "production");
  BOOST_CHECK_EQUAL(locks[0]["actor"], "bob");
  BOOST_CHECK_EQUAL(locks[0]["reason"], "incident 42: db failover");
  BOOST_CHECK_EQUAL(locks[0]["deployment_id"], id_of(h, 101));
  BOOST_CHECK_EQUAL(locks_page(h, "").status, 404);
  BOOST_CHECK_EQUAL(locks_page(h, log_token(h.log_key(), 1)).status, 404);

  // Someone else's lock is not taken over.
  auto stolen = deploy(h, event(104, "deploy:lock", "carol"));
  BOOST_CHECK_EQUAL(stolen.first, "error");
  BOOST_CHECK_EQUAL(stolen.second,
                    "octo/app is already locked on production by bob: ask "
                    "them, or unlock it first");
  BOOST_CHECK_EQUAL(json::parse(locks_page(h, locks_token_of(h)).body)[0]
                      ["actor"],
                    "bob");

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
  BOOST_CHECK_EQUAL(heaven_cli(data, "locks").out.rfind(
                      "No environment is locked.\n", 0),
                    0u);

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
  BOOST_CHECK_MESSAGE(listed.out.rfind("octo/app\tdisabled\tfirst seen ", 0)
                        == 0,
                      listed.out);
  BOOST_CHECK_EQUAL(heaven_cli(data, "repos disable not-a-repo").status, 2);

  BOOST_CHECK_EQUAL(heaven_cli(data, "repos enable octo/app").status, 0);
  auto allowed = deploy(h, event(132, "deploy"));
  BOOST_CHECK_EQUAL(allowed.first, "success");
  // The ignored deployment got no status at all, ever.
  BOOST_CHECK(statuses(github, 131).empty());
  BOOST_CHECK(heaven_cli(data, "repos").out.rfind("octo/app\tactive\t", 0)
              == 0);
}

BOOST_AUTO_TEST_SUITE_END()
