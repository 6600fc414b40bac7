#include "providers/shell.hpp"

#include <csignal>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/process.hpp"
#include "actors/scope.hpp"
#include "base/payload_config.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto sha = "0123456789abcdef0123456789abcdef01234567";

struct shell_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  deployment_actor sink = sys.spawn(deployment_recorder, rec);
  temp_dir tmp;
  fs::path ws = tmp.path / "checkout";
  std::vector<int32_t> groups;

  shell_fixture() {
    become_subreaper();
    fs::create_directories(ws);
  }

  ~shell_fixture() {
    // Whatever a failed test left running must not outlive it.
    for (auto pgid : groups) {
      kill_group(pgid, SIGKILL);
      wait_group_gone(pgid, std::chrono::seconds(2));
    }
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  provider_job job(const std::string& script) {
    provider_job j;
    j.id = 17;
    j.request.sha = sha;
    j.request.ref = "main";
    j.request.environment = "production";
    j.request.task = "deploy:migrations";
    j.request.payload_json = R"({"name":"app","config":{"provider":"shell",)"
                             R"("deploy_script":")"
                             + script + R"("}})";
    j.workspace = ws.string();
    j.env = child_env(tmp.path);
    j.env.emplace_back("BRANCH", "not-this-one");
    j.env.emplace_back("HEAVEN_FROM_JOB", "yes");
    j.kill_grace_ms = 200;
    return j;
  }

  provider_actor start(provider_job j) {
    j.config = read_payload_config(j.request);
    return sys.spawn(shell, std::move(j), sink);
  }

  provider_outcome outcome() {
    BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }));
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  bool has_line(const std::string& text) {
    return rec->wait([&] { return rec->has_line_locked(text); },
                     std::chrono::seconds(10));
  }

  /// The pid the script printed as "pid N" (its group, as it leads it).
  int32_t script_pgid() {
    int32_t result = 0;
    BOOST_REQUIRE(rec->wait([&] {
      for (auto& x : rec->lines)
        if (x.text.rfind("pid ", 0) == 0) {
          result = std::stoi(x.text.substr(4));
          return true;
        }
      return false;
    }));
    groups.push_back(result);
    return result;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(shell_provider, shell_fixture)

BOOST_AUTO_TEST_CASE(runs_the_script_with_the_deployment_environment) {
  write_file(ws / "deploy" / "run.sh",
             "#!/bin/sh\n"
             "echo \"BRANCH=$BRANCH\"\n"
             "echo \"SHA=$SHA\"\n"
             "echo \"DEPLOY_ENV=$DEPLOY_ENV\"\n"
             "echo \"DEPLOY_TASK=$DEPLOY_TASK\"\n"
             "echo \"HEAVEN_FROM_JOB=$HEAVEN_FROM_JOB\"\n"
             "echo \"cwd=$(pwd)\"\n"
             "echo warming up >&2\n",
             true);
  start(job("deploy/run.sh"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Deployed main (0123456) to production with deploy/run.sh");
  BOOST_TEST(has_line("Running deploy/run.sh"));
  BOOST_TEST(has_line("BRANCH=main"));
  BOOST_TEST(has_line(std::string{"SHA="} + sha));
  BOOST_TEST(has_line("DEPLOY_ENV=production"));
  BOOST_TEST(has_line("DEPLOY_TASK=deploy:migrations"));
  BOOST_TEST(has_line("HEAVEN_FROM_JOB=yes"));
  BOOST_TEST(has_line("cwd=" + ws.string()));
  BOOST_TEST(rec->texts(stream::err) == std::vector<std::string>{"warming up"});
}

BOOST_AUTO_TEST_CASE(a_failing_script_is_a_failure_with_its_status) {
  write_file(ws / "script" / "deploy", "#!/bin/sh\necho trying\nexit 3\n",
             true);
  start(job("script/deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "script/deploy exited with status 3");
  BOOST_TEST(has_line("trying"));
}

BOOST_AUTO_TEST_CASE(a_script_killed_by_a_signal_says_so) {
  write_file(ws / "deploy.sh", "#!/bin/sh\nkill -KILL $$\n", true);
  start(job("deploy.sh"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "deploy.sh was killed by signal 9");
}

BOOST_AUTO_TEST_CASE(a_missing_deploy_script_setting_is_an_error) {
  auto j = job("x");
  j.request.payload_json = R"({"config":{"provider":"shell"}})";
  start(j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description == "payload.config.deploy_script is missing");
  j.request.payload_json = "{}";
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    rec->results.clear();
  }
  start(j);
  BOOST_TEST(outcome().description
             == "payload.config.deploy_script is missing");
}

BOOST_AUTO_TEST_CASE(a_script_not_in_the_checkout_is_an_error) {
  start(job("deploy/nope.sh"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "deploy script deploy/nope.sh not found at 0123456");
  std::lock_guard<std::mutex> guard{rec->mx};
  BOOST_TEST(!rec->has_line_locked("Running deploy/nope.sh"));
}

BOOST_AUTO_TEST_CASE(a_script_that_is_not_executable_is_an_error) {
  write_file(ws / "deploy.sh", "#!/bin/sh\necho hi\n");
  start(job("deploy.sh"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description == "deploy script deploy.sh is not executable");
}

BOOST_AUTO_TEST_CASE(paths_out_of_the_repository_are_refused) {
  write_file(tmp.path / "outside.sh", "#!/bin/sh\necho escaped\n", true);
  fs::create_directories(ws / "deploy");
  fs::create_symlink(tmp.path / "outside.sh", ws / "deploy" / "link.sh");
  fs::create_directory_symlink(tmp.path, ws / "up");
  for (std::string path :
       {"../../etc/passwd", "/etc/passwd", "deploy/../../outside.sh",
        "deploy/link.sh", "up/outside.sh"}) {
    {
      std::lock_guard<std::mutex> guard{rec->mx};
      rec->results.clear();
    }
    start(job(path));
    auto result = outcome();
    BOOST_TEST(result.state == deploy_state::error, path);
    BOOST_TEST(result.description
                 == "deploy script " + path + " is outside the repository",
               path);
  }
  std::lock_guard<std::mutex> guard{rec->mx};
  BOOST_TEST(!rec->has_line_locked("escaped"));
}

BOOST_AUTO_TEST_CASE(cancel_kills_the_whole_group_and_reports) {
  write_file(ws / "deploy" / "long.sh",
             "#!/bin/sh\n"
             "sleep 1000 &\n"
             "sleep 1000 &\n"
             "echo \"pid $$\"\n"
             "wait\n",
             true);
  auto provider = start(job("deploy/long.sh"));
  auto pgid = script_pgid();
  BOOST_TEST(group_alive(pgid));
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(wait_group_gone(pgid));
}

BOOST_AUTO_TEST_CASE(cancel_escalates_to_sigkill_after_the_grace_period) {
  // The whole group ignores SIGTERM: only SIGKILL ends it.
  write_file(ws / "deploy" / "stubborn.sh",
             "#!/bin/sh\n"
             "trap '' TERM\n"
             "sleep 1000 &\n"
             "echo \"pid $$\"\n"
             "wait\n",
             true);
  auto provider = start(job("deploy/stubborn.sh"));
  auto pgid = script_pgid();
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(wait_group_gone(pgid));
}

BOOST_AUTO_TEST_CASE(cancel_without_terminating_children_leaves_them) {
  write_file(ws / "deploy" / "long.sh",
             "#!/bin/sh\necho \"pid $$\"\nsleep 1000\n", true);
  auto j = job("deploy/long.sh");
  j.terminate_children = false;
  auto provider = start(j);
  auto pgid = script_pgid();
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(group_alive(pgid));
  kill_group(pgid, SIGKILL); // The fixture reaps it.
}

BOOST_AUTO_TEST_CASE(the_script_runs_in_the_deployments_scope) {
  write_file(ws / "deploy" / "scoped.sh",
             "#!/bin/sh\necho \"scope=$HEAVEN_SCOPE\"\n", true);
  process_scopes scopes{(tmp.path / "data").string(), false};
  auto j = job("deploy/scoped.sh");
  j.scope = scopes.open(17);
  start(j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(has_line("scope=" + j.scope.cookie));
  BOOST_TEST(read_file(j.scope.record).find("\ngroup ") != std::string::npos);
  end_scope(j.scope, std::chrono::seconds(5));
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    rec->results.clear();
  }
  // An ended scope starts nothing.
  start(j);
  result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description.find("deployment 17 has ended")
               != std::string::npos,
             result.description);
}

BOOST_AUTO_TEST_CASE(the_ssh_agent_runs_in_the_deployments_scope) {
  process_scopes scopes{(tmp.path / "data").string(), false};
  command_plan plan;
  plan.env = child_env(tmp.path);
  plan.env.emplace_back("DEPLOYMENT_PRIVATE_KEY", "not\\na key");
  plan.scope = scopes.open(18);
  BOOST_REQUIRE(!use_deploy_key_agent(plan));
  // The agent's keeper was recorded in the scope and carries its cookie.
  std::istringstream in{read_file(plan.scope.record)};
  int32_t keeper = 0;
  for (std::string word; in >> word;)
    if (word == "group")
      in >> keeper;
  BOOST_REQUIRE(keeper > 0);
  // (Right after the exec the kernel may still be filling it in.)
  auto cookie = "HEAVEN_SCOPE=" + plan.scope.cookie + std::string(1, '\0');
  BOOST_TEST(eventually([&] {
    return read_file("/proc/" + std::to_string(keeper) + "/environ")
             .find(cookie)
           != std::string::npos;
  }));
  plan.cleanup(); // Stops the agent and reaps the keeper.
  BOOST_TEST(wait_group_gone(keeper));
  BOOST_TEST(end_scope(plan.scope, std::chrono::seconds(5)).ended == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
