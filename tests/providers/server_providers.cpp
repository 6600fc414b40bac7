// The tool modes of the server-deploy providers, end to end: real git
// checkouts in temp dirs, the real cap (Capistrano 3), fab (Fabric 2) and
// ansible-playbook.

#include "providers/ansible.hpp"
#include "providers/capistrano.hpp"
#include "providers/fabric.hpp"

#include <csignal>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/process.hpp"
#include "base/payload_config.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

/// A Capfile for Capistrano 3 with no SCM and no servers: tasks run locally.
constexpr auto capfile = "require \"capistrano/setup\"\n";

constexpr auto deploy_rb = "set :application, \"app\"\n"
                           "set :scm, nil\n"
                           "set :branch, ENV.fetch(\"BRANCH\", \"master\")\n";

/// The `production` stage: `deploy` reports what reached cap and writes a
/// marker through run_locally; `deploy:broken` fails; `deploy:slow` prints
/// cap's pid (its process group) and sleeps.
constexpr auto production_rb
  = "task :deploy do\n"
    "  puts \"branch=#{fetch(:branch)}\"\n"
    "  puts \"stage=#{fetch(:stage)}\"\n"
    "  run_locally do\n"
    "    execute \"echo \\\"$BRANCH $SHA $DEPLOY_ENV $DEPLOY_TASK\\\" > "
    "marker\"\n"
    "  end\n"
    "end\n"
    "namespace :deploy do\n"
    "  task :broken do\n"
    "    puts \"about to fail\"\n"
    "    run_locally do\n"
    "      execute :sh, \"-c\", \"'exit 3'\"\n"
    "    end\n"
    "  end\n"
    "  task :slow do\n"
    "    puts \"pid #{Process.pid}\"\n"
    "    $stdout.flush\n"
    "    run_locally do\n"
    "      execute :sleep, 1000\n"
    "    end\n"
    "  end\n"
    "end\n";

/// A Fabric 2 fabfile whose tasks print what reached them.
constexpr auto fabfile_py
  = "import os\n"
    "from fabric import task\n"
    "from invoke import Collection\n"
    "\n"
    "@task(default=True)\n"
    "def deploy(c, branch_name='none'):\n"
    "    print('deploy branch_name=' + branch_name)\n"
    "    for k in ('BRANCH', 'SHA', 'DEPLOY_ENV', 'DEPLOY_TASK'):\n"
    "        print(k + '=' + os.environ.get(k, '?'))\n"
    "\n"
    "@task\n"
    "def run_migrations(c, branch_name='none'):\n"
    "    print('migrations branch_name=' + branch_name)\n"
    "\n"
    "@task\n"
    "def broken(c, branch_name='none'):\n"
    "    c.run('exit 4')\n"
    "\n"
    "ns = Collection(Collection('deploy', deploy, run_migrations, broken))\n";

/// A playbook on localhost (local connection) that records what it got.
constexpr auto site_yml
  = "- hosts: localhost\n"
    "  connection: local\n"
    "  gather_facts: false\n"
    "  tasks:\n"
    "    - name: record the sha\n"
    "      copy:\n"
    "        dest: \"{{ playbook_dir }}/../../../deployed-sha\"\n"
    "        content: \"{{ heaven_deploy_sha }}\\n\"\n"
    "    - name: record the environment\n"
    "      copy:\n"
    "        dest: \"{{ playbook_dir }}/../../../observed\"\n"
    "        content: \"checking={{ lookup('env', "
    "'ANSIBLE_HOST_KEY_CHECKING') }} key_in_env={{ lookup('env', "
    "'DEPLOYMENT_PRIVATE_KEY') }} branch={{ lookup('env', 'BRANCH') }}\\n\"\n"
    "    - name: record the key file\n"
    "      when: ansible_ssh_private_key_file is defined\n"
    "      shell: >-\n"
    "        stat -c %a {{ ansible_ssh_private_key_file | quote }}"
    " > {{ playbook_dir }}/../../../key-mode &&\n"
    "        echo {{ ansible_ssh_private_key_file | quote }}"
    " > {{ playbook_dir }}/../../../key-path &&\n"
    "        cp {{ ansible_ssh_private_key_file | quote }}"
    " {{ playbook_dir }}/../../../key-copy\n"
    "    - name: say hello\n"
    "      debug:\n"
    "        msg: \"hello from {{ heaven_deploy_sha }}\"\n";

struct tools_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  deployment_actor sink = sys.spawn(deployment_recorder, rec);
  temp_dir tmp;
  fs::path origin = tmp.path / "origin";
  fs::path workspaces = tmp.path / "workspaces";
  fs::path ws = workspaces / "17";
  std::string sha;
  std::vector<int32_t> groups;

  tools_fixture() {
    become_subreaper();
    fs::create_directories(origin);
    fs::create_directories(tmp.path / "home");
  }

  ~tools_fixture() {
    // Whatever a failed test left running must not outlive it.
    for (auto pgid : groups) {
      kill_group(pgid, SIGKILL);
      wait_group_gone(pgid, std::chrono::seconds(2));
    }
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  string_pairs env() {
    return child_env(tmp.path / "home");
  }

  /// Runs git in `dir` and returns its stdout's first line.
  std::string git(const fs::path& dir, std::vector<std::string> args) {
    process_spec spec{{"git", "-c", "user.name=t", "-c", "user.email=t@t"},
                      env(),
                      dir.string(),
                      {}};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    std::vector<std::string> out;
    std::string err;
    auto info = run_process(
      spec,
      [&](log_line line) {
        if (line.source == stream::out)
          out.push_back(line.text);
        else
          err += line.text + "\n";
      },
      process_watcher{});
    BOOST_REQUIRE_MESSAGE(info.code == 0, "git failed: " + err + info.error);
    return out.empty() ? std::string{} : out.front();
  }

  /// Commits `files` (path → text; names ending in ".sh" executable) to a
  /// fresh repository and checks the commit out at `ws`, as heaven's
  /// workspace does.
  void checkout(const std::map<std::string, std::string>& files) {
    git(origin, {"init", "--quiet", "--initial-branch=main"});
    for (auto& [path, text] : files)
      write_file(origin / path, text,
                 path.size() > 3 && path.substr(path.size() - 3) == ".sh");
    git(origin, {"add", "--all"});
    git(origin, {"commit", "--quiet", "-m", "app"});
    sha = git(origin, {"rev-parse", "HEAD"});
    fs::create_directories(workspaces);
    git(workspaces, {"clone", "--quiet", origin.string(), ws.string()});
    git(ws, {"checkout", "--quiet", "--detach", sha});
  }

  void capistrano_app() {
    checkout({{"Capfile", capfile},
              {"config/deploy.rb", deploy_rb},
              {"config/deploy/production.rb", production_rb}});
  }

  provider_job job(const std::string& provider, const std::string& task,
                   const std::string& config_extra = "") {
    provider_job j;
    j.id = 17;
    j.request.sha = sha;
    j.request.ref = "feature/x";
    j.request.environment = "production";
    j.request.task = task;
    j.request.payload_json = R"({"name":"app","config":{"provider":")"
                             + provider + "\"" + config_extra + "}}";
    j.workspace = ws.string();
    j.env = env();
    j.env.emplace_back("BRANCH", "not-this-one");
    j.kill_grace_ms = 200;
    return j;
  }

  provider_actor start(const provider_factory& factory, provider_job j) {
    j.config = read_payload_config(j.request);
    return factory(sys, std::move(j), sink).actor;
  }

  provider_outcome outcome() {
    BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); },
                            std::chrono::seconds(60)));
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  void forget_results() {
    std::lock_guard<std::mutex> guard{rec->mx};
    rec->results.clear();
    rec->lines.clear();
  }

  bool has_line(const std::string& text) {
    return rec->wait([&] { return rec->has_line_locked(text); },
                     std::chrono::seconds(10));
  }

  /// True when no line so far holds exactly `text`.
  bool lacks_line(const std::string& text) {
    std::lock_guard<std::mutex> guard{rec->mx};
    return !rec->has_line_locked(text);
  }

  /// The pid printed as "pid N" (the group leader's).
  int32_t printed_pgid() {
    int32_t result = 0;
    BOOST_REQUIRE(rec->wait(
      [&] {
        for (auto& x : rec->lines)
          if (x.text.rfind("pid ", 0) == 0) {
            result = std::stoi(x.text.substr(4));
            return true;
          }
        return false;
      },
      std::chrono::seconds(30)));
    groups.push_back(result);
    return result;
  }

  /// How many live processes run exactly `command` (argv joined by spaces).
  static int count_processes(const std::string& command) {
    int count = 0;
    for (auto& entry : fs::directory_iterator("/proc")) {
      auto name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos)
        continue;
      auto text = read_file(entry.path() / "cmdline");
      for (auto& c : text)
        if (c == '\0')
          c = ' ';
      if (!text.empty() && text.back() == ' ')
        text.pop_back();
      if (text == command)
        ++count;
    }
    return count;
  }

  /// The key files next to the checkout.
  std::vector<fs::path> key_files() {
    std::vector<fs::path> result;
    for (auto& entry : fs::directory_iterator(workspaces))
      if (entry.path().filename().string() == "17.key")
        result.push_back(entry.path());
    return result;
  }

  std::string short_sha() const {
    return sha.substr(0, 7);
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(capistrano_capfile_mode, tools_fixture)

BOOST_AUTO_TEST_CASE(runs_cap_stage_task_with_branch) {
  capistrano_app();
  start(capistrano_provider(), job("capistrano", "deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Deployed feature/x (" + short_sha()
                  + ") to production with cap");
  BOOST_TEST(has_line("Running cap production deploy"));
  BOOST_TEST(has_line("branch=feature/x"));
  BOOST_TEST(has_line("stage=production"));
  BOOST_TEST(read_file(ws / "marker")
             == "feature/x " + sha + " production deploy\n");
}

BOOST_AUTO_TEST_CASE(a_failing_cap_task_is_a_failure_with_its_status) {
  capistrano_app();
  start(capistrano_provider(), job("capistrano", "deploy:broken"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "cap production deploy:broken exited with status 1");
  BOOST_TEST(has_line("about to fail"));
  BOOST_TEST(has_line("cap aborted!"));
}

BOOST_AUTO_TEST_CASE(an_unreadable_deploy_key_fails_before_cap_runs) {
  capistrano_app();
  auto j = job("capistrano", "deploy");
  j.env.emplace_back(
    "DEPLOYMENT_PRIVATE_KEY",
    "-----BEGIN OPENSSH PRIVATE KEY-----\\nbm90LWEta2V5-garbled"
    "\\n-----END OPENSSH PRIVATE KEY-----");
  start(capistrano_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "ssh-add could not load DEPLOYMENT_PRIVATE_KEY (see the log): "
                "is it a whole private key without a passphrase?");
  // ssh-add says why (its words vary with the key's defect).
  BOOST_TEST(rec->wait([&] {
    for (auto& line : rec->lines)
      if (line.text.rfind("Error loading key \"(stdin)\": ", 0) == 0)
        return true;
    return false;
  }));
  BOOST_TEST(has_line("Loading DEPLOYMENT_PRIVATE_KEY into this deployment's "
                      "ssh-agent"));
  BOOST_TEST(lacks_line("Running cap production deploy"));
  BOOST_TEST(!fs::exists(ws / "marker"));
  std::lock_guard<std::mutex> guard{rec->mx};
  for (auto& line : rec->lines)
    BOOST_TEST(line.text.find("bm90LWEta2V5") == std::string::npos,
               "the key's text reached the log: " << line.text);
}

BOOST_AUTO_TEST_CASE(no_capfile_is_an_error) {
  checkout({{"README", "no cap here\n"}});
  start(capistrano_provider(), job("capistrano", "deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "no Capfile in the repository and payload.config names no "
                "hosts");
  BOOST_TEST(lacks_line("Running cap production deploy"));
}

BOOST_AUTO_TEST_CASE(hosts_choose_the_native_mode_and_servers_is_refused) {
  capistrano_app();
  // hosts: heaven runs Capistrano's flow itself, never the Capfile (its
  // config is checked first: deploy_to is missing here).
  start(capistrano_provider(),
        job("capistrano", "deploy", R"(,"hosts":{"production":["web1"]})"));
  auto native = outcome();
  BOOST_TEST(native.state == deploy_state::error);
  BOOST_TEST(native.description
             == "payload.config.deploy_to is missing: where on the servers?");
  forget_results();
  start(capistrano_provider(),
        job("capistrano", "deploy", R"(,"servers":["web1","web2"])"));
  auto servers = outcome();
  BOOST_TEST(servers.state == deploy_state::error);
  BOOST_TEST(servers.description
             == "payload.config.servers is not a capistrano setting of "
                "heaven: name the servers in payload.config.hosts");
  BOOST_TEST(!fs::exists(ws / "marker"));
  // An empty list names no hosts: the Capfile runs.
  forget_results();
  start(capistrano_provider(), job("capistrano", "deploy", R"(,"hosts":[])"));
  BOOST_TEST(outcome().state == deploy_state::success);
  BOOST_TEST(fs::exists(ws / "marker"));
}

BOOST_AUTO_TEST_CASE(an_environment_that_is_not_a_stage_word_is_refused) {
  capistrano_app();
  for (std::string env : {"-T", "prod uction", "prod;touch x", ""}) {
    forget_results();
    auto j = job("capistrano", "deploy");
    j.request.environment = env;
    start(capistrano_provider(), j);
    auto result = outcome();
    BOOST_TEST(result.state == deploy_state::error, env);
    BOOST_TEST(result.description
                 == "environment " + env
                      + " is not a Capistrano stage name ([A-Za-z0-9_.-]+)",
               env);
  }
  BOOST_TEST(!fs::exists(ws / "marker"));
}

BOOST_AUTO_TEST_CASE(a_task_that_is_not_a_deploy_task_is_refused) {
  capistrano_app();
  auto j = job("capistrano", "deploy");
  j.request.task = "deploy;touch " + (ws / "marker").string();
  start(capistrano_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "task " + j.request.task + " is not a deploy task");
  BOOST_TEST(!fs::exists(ws / "marker"));
}

BOOST_AUTO_TEST_CASE(cancel_kills_cap_and_its_children) {
  capistrano_app();
  auto provider = start(capistrano_provider(),
                        job("capistrano", "deploy:slow"));
  auto pgid = printed_pgid();
  BOOST_TEST(group_alive(pgid));
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(wait_group_gone(pgid));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(fabric_fabfile_mode, tools_fixture)

BOOST_AUTO_TEST_CASE(fabric_task_names_follow_fabric_2) {
  BOOST_TEST(fabric_task("deploy") == "deploy");
  BOOST_TEST(fabric_task("deploy:migrations") == "deploy.migrations");
  BOOST_TEST(fabric_task("deploy:run_migrations") == "deploy.run-migrations");
}

BOOST_AUTO_TEST_CASE(runs_fab_with_the_branch_name) {
  checkout({{"fabfile.py", fabfile_py}});
  start(fabric_provider(), job("fabric", "deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Deployed feature/x (" + short_sha()
                  + ") to production with fab");
  BOOST_TEST(has_line("Running fab deploy --branch-name=feature/x"));
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{
               "deploy branch_name=feature/x", "BRANCH=feature/x", "SHA=" + sha,
               "DEPLOY_ENV=production", "DEPLOY_TASK=deploy"}));
}

BOOST_AUTO_TEST_CASE(namespaced_tasks_and_a_fabfile_package) {
  checkout({{"fabfile/__init__.py", fabfile_py}});
  start(fabric_provider(), job("fabric", "deploy:run_migrations"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(has_line("Running fab deploy.run-migrations "
                      "--branch-name=feature/x"));
  BOOST_TEST(rec->texts(stream::out)
             == std::vector<std::string>{"migrations branch_name=feature/x"});
}

BOOST_AUTO_TEST_CASE(a_failing_fab_task_is_a_failure) {
  checkout({{"fabfile.py", fabfile_py}});
  start(fabric_provider(), job("fabric", "deploy:broken"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "fab deploy.broken exited with status 4");
}

BOOST_AUTO_TEST_CASE(no_fabfile_or_hosts_in_the_config_are_errors) {
  checkout({{"README", "no fab here\n"}});
  start(fabric_provider(), job("fabric", "deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "no fabfile.py (or fabfile/ package) in the repository and "
                "payload.config names no hosts");
  forget_results();
  start(fabric_provider(),
        job("fabric", "deploy", R"(,"hosts":{"production":["web1"]})"));
  result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  // hosts: the native mode, which needs the task's commands in the config.
  BOOST_TEST(result.description
             == "unknown fabric task deploy (payload.config.tasks names: "
                "none)");
}

BOOST_AUTO_TEST_CASE(without_a_format_the_task_must_be_a_deploy_task) {
  checkout({{"fabfile.py", fabfile_py}});
  auto j = job("fabric", "deploy");
  j.request.task = "--list";
  start(fabric_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description == "task --list is not a deploy task");
  BOOST_TEST(lacks_line("deploy.deploy (deploy)"));
}

BOOST_AUTO_TEST_CASE(command_format_quotes_every_value) {
  deployment_request req;
  req.environment = "production";
  req.task = "deploy";
  req.ref = "it's; rm -rf /";
  req.sha = "abc";
  std::string why;
  BOOST_TEST(
    expand_command_format(
      "fab -R %{environment} %{task}:branch_name=%{ref} # 100%% %d", req, why)
    == "fab -R 'production' 'deploy':branch_name='it'\\''s; rm -rf "
       "/' # 100% %d");
  BOOST_TEST(why.empty());
  BOOST_TEST(expand_command_format("x %{sha}", req, why) == "x 'abc'");
  BOOST_TEST(expand_command_format("x %{branch}", req, why).empty());
  BOOST_TEST(why
             == "DEPLOY_COMMAND_FORMAT names an unknown placeholder %{branch} "
                "(known: environment, task, ref, sha)");
  why.clear();
  BOOST_TEST(expand_command_format("x %{ref", req, why).empty());
  BOOST_TEST(why == "DEPLOY_COMMAND_FORMAT has an unclosed %{");
}

BOOST_AUTO_TEST_CASE(command_format_injection_runs_nothing_extra) {
  // The deployment rejects such refs before any provider runs; the provider
  // must be safe on its own all the same.
  checkout({{"fabfile.py", fabfile_py},
            {"show-args.sh",
             "#!/bin/sh\nfor a in \"$@\"; do echo \"arg=$a\"; done\n"}});
  auto j = job("fabric", "deploy");
  auto m = tmp.path.string();
  j.request.environment = "prod$(touch " + m + "/m1)";
  j.request.task = "deploy`touch " + m + "/m2`";
  j.request.ref = "x'; touch " + m + "/m3; echo '";
  j.env.emplace_back("DEPLOY_COMMAND_FORMAT",
                     "./show-args.sh %{environment} %{task} %{ref} %{sha} "
                     "&& touch intended");
  start(fabric_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(has_line("Running the DEPLOY_COMMAND_FORMAT command"));
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{
               "arg=" + j.request.environment, "arg=" + j.request.task,
               "arg=" + j.request.ref, "arg=" + sha}));
  BOOST_TEST(fs::exists(ws / "intended"));
  for (auto marker : {"m1", "m2", "m3"})
    BOOST_TEST(!fs::exists(tmp.path / marker), marker);
}

BOOST_AUTO_TEST_CASE(command_format_drives_the_real_fab) {
  checkout({{"fabfile.py", fabfile_py}});
  auto j = job("fabric", "deploy");
  j.request.ref = "main$(touch " + tmp.path.string() + "/m4)";
  j.env.emplace_back("DEPLOY_COMMAND_FORMAT",
                     "fab %{task} --branch-name=%{ref}");
  start(fabric_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(has_line("deploy branch_name=" + j.request.ref));
  BOOST_TEST(!fs::exists(tmp.path / "m4"));
  // Its failure is named without showing the operator's command.
  forget_results();
  j.request.task = "deploy:broken";
  j.env.back().second = "fab deploy.broken";
  start(fabric_provider(), j);
  result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "DEPLOY_COMMAND_FORMAT command exited with status 4");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(ansible_provider_suite, tools_fixture)

BOOST_AUTO_TEST_CASE(runs_the_playbook_with_the_sha_and_the_key_file) {
  checkout({{"ansible/hosts", "localhost ansible_connection=local\n"},
            {"ansible/site.yml", site_yml}});
  auto j = job("ansible", "deploy");
  std::string key = "-----BEGIN OPENSSH PRIVATE KEY-----\\nnot-a-real-key\\n"
                    "-----END OPENSSH PRIVATE KEY-----";
  j.env.emplace_back("DEPLOYMENT_PRIVATE_KEY", key);
  // A file a killed run left in the key's place (world-readable, another
  // key) is replaced, not written through.
  std::ofstream{workspaces / "17.key"} << "stale key\n";
  fs::permissions(workspaces / "17.key", fs::perms::owner_read
                                           | fs::perms::owner_write
                                           | fs::perms::others_read);
  start(ansible_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(result.description
             == "Deployed feature/x (" + short_sha()
                  + ") to production with ansible-playbook");
  BOOST_TEST(has_line("Running ansible-playbook -i ansible/hosts "
                      "ansible/site.yml"));
  BOOST_TEST(has_line("    \"msg\": \"hello from " + sha + "\""));
  BOOST_TEST(read_file(tmp.path / "deployed-sha") == sha + "\n");
  // Host key checking on by default; the key only through the file.
  BOOST_TEST(read_file(tmp.path / "observed")
             == "checking=True key_in_env= branch=feature/x\n");
  // The key file existed during the run: 0600, next to the checkout (not
  // in it), with the key's text; it is gone once the outcome is known.
  BOOST_TEST(read_file(tmp.path / "key-mode") == "600\n");
  auto path = read_file(tmp.path / "key-path");
  BOOST_REQUIRE(!path.empty());
  path.pop_back();
  BOOST_TEST(path == (workspaces / "17.key").string());
  BOOST_TEST(read_file(tmp.path / "key-copy")
             == "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n"
                "-----END OPENSSH PRIVATE KEY-----\n");
  BOOST_TEST(!fs::exists(path));
  // The key never reached the log.
  std::lock_guard<std::mutex> guard{rec->mx};
  for (auto& line : rec->lines)
    BOOST_TEST(line.text.find("not-a-real-key") == std::string::npos,
               line.text);
}

BOOST_AUTO_TEST_CASE(the_operator_may_turn_host_key_checking_off) {
  checkout({{"ansible/hosts", "localhost ansible_connection=local\n"},
            {"ansible/site.yml", site_yml}});
  auto j = job("ansible", "deploy");
  j.env.emplace_back("ANSIBLE_HOST_KEY_CHECKING", "False");
  start(ansible_provider(), j);
  BOOST_TEST(outcome().state == deploy_state::success);
  BOOST_TEST(read_file(tmp.path / "observed")
             == "checking=False key_in_env= branch=feature/x\n");
  // No key configured: no key file, no variable for it.
  BOOST_TEST(!fs::exists(tmp.path / "key-path"));
}

BOOST_AUTO_TEST_CASE(a_failing_playbook_is_a_failure_and_the_key_goes) {
  checkout({{"ansible/hosts", "localhost ansible_connection=local\n"},
            {"ansible/site.yml", "- hosts: localhost\n"
                                 "  connection: local\n"
                                 "  gather_facts: false\n"
                                 "  tasks:\n"
                                 "    - fail:\n"
                                 "        msg: no luck\n"}});
  auto j = job("ansible", "deploy");
  j.env.emplace_back("DEPLOYMENT_PRIVATE_KEY", "k\\ney");
  start(ansible_provider(), j);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "ansible-playbook exited with status 2");
  std::vector<fs::path> left;
  for (auto& entry : fs::directory_iterator(workspaces))
    left.push_back(entry.path());
  BOOST_TEST(left == std::vector<fs::path>{ws});
}

BOOST_AUTO_TEST_CASE(cancel_kills_ansible_and_its_workers_and_the_key_goes) {
  auto seconds = std::to_string(100000 + ::getpid() % 100000);
  checkout({{"ansible/hosts", "localhost ansible_connection=local\n"},
            {"ansible/site.yml", "- hosts: localhost\n"
                                 "  connection: local\n"
                                 "  gather_facts: false\n"
                                 "  tasks:\n"
                                 "    - name: wait forever\n"
                                 "      command: sleep "
                                   + seconds + "\n"}});
  auto j = job("ansible", "deploy");
  j.env.emplace_back("DEPLOYMENT_PRIVATE_KEY", "k\\ney");
  // A module killed mid-run leaves Ansible's payload directory in its
  // TMPDIR: here, the test's own, not the host's /tmp.
  fs::create_directories(tmp.path / "module-tmp");
  j.env.emplace_back("TMPDIR", (tmp.path / "module-tmp").string());
  auto provider = start(ansible_provider(), j);
  auto sleeper = "sleep " + seconds;
  BOOST_REQUIRE(eventually([&] { return count_processes(sleeper) == 1; },
                           std::chrono::seconds(60)));
  BOOST_TEST(key_files().size() == 1u);
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(eventually([&] {
    while (::waitpid(-1, nullptr, WNOHANG) > 0)
      ; // Reap what was reparented to this (subreaper) test.
    return count_processes(sleeper) == 0;
  }));
  BOOST_TEST(key_files().empty());
}

BOOST_AUTO_TEST_CASE(a_missing_inventory_or_playbook_is_an_error) {
  checkout({{"ansible/site.yml", site_yml}});
  start(ansible_provider(), job("ansible", "deploy"));
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description == "no ansible/hosts in the repository");
  fs::remove(ws / "ansible" / "site.yml");
  write_file(ws / "ansible" / "hosts", "localhost\n");
  forget_results();
  start(ansible_provider(), job("ansible", "deploy"));
  result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description == "no ansible/site.yml in the repository");
}

BOOST_AUTO_TEST_SUITE_END()
