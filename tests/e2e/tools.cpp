// End-to-end tests of the server-deploy providers through the real `heaven
// serve` binary: a real git repository (cloned by heaven over file://), a
// real OpenSSH server on 127.0.0.1 with ed25519 keys made for the test, the
// real cap (Capistrano 3) and fab (Fabric 2), and a recording stand-in for
// GitHub's API. heaven gets the deploy key only as DEPLOYMENT_PRIVATE_KEY
// (one line, `\n` escapes); its HOME (the data directory) holds a
// known_hosts with the server's host key and no private key at all.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"
#include "tools/support/sshd.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// The base64 lines of a private key file (what must never leak).
std::vector<std::string> key_body_lines(const std::string& key) {
  std::vector<std::string> result;
  std::istringstream in{key};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("-----", 0) != 0 && line.size() >= 16)
      result.push_back(line);
  return result;
}

/// True when `text` holds any of the key's base64 lines, or the one-line
/// form of the whole key.
bool shows_key(const std::string& text, const std::string& key) {
  if (text.find(one_line_key(key)) != std::string::npos)
    return true;
  for (auto& line : key_body_lines(key))
    if (text.find(line) != std::string::npos)
      return true;
  return false;
}

/// The argv of the live (not zombie) process whose /proc directory is
/// `proc_dir`, joined by spaces; "" for a zombie or a kernel thread.
std::string live_cmdline(const fs::path& proc_dir) {
  auto stat = read_text(proc_dir / "stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()
      || stat[paren + 2] == 'Z')
    return {};
  auto text = read_text(proc_dir / "cmdline");
  for (auto& c : text)
    if (c == '\0')
      c = ' ';
  while (!text.empty() && text.back() == ' ')
    text.pop_back();
  return text;
}

/// How many live processes have an argv (joined by spaces) for which
/// `match` holds.
int count_processes(const std::function<bool(const std::string&)>& match) {
  int count = 0;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto cmd = live_cmdline(it->path());
    if (!cmd.empty() && match(cmd))
      ++count;
  }
  return count;
}

/// How many live processes run exactly `command`.
int count_exact(const std::string& command) {
  return count_processes([&](const std::string& c) { return c == command; });
}

/// How many live processes have `part` somewhere in their argv.
int count_containing(const std::string& part) {
  return count_processes(
    [&](const std::string& c) { return c.find(part) != std::string::npos; });
}

/// The live (not zombie) processes that have `parent` as their parent.
std::vector<pid_t> live_children_of(pid_t parent) {
  std::vector<pid_t> result;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto stat = read_text(it->path() / "stat");
    auto paren = stat.rfind(')');
    if (paren == std::string::npos)
      continue;
    std::istringstream fields{stat.substr(paren + 1)};
    std::string state;
    long ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent && state != "Z")
      result.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return result;
}

/// How many live (not zombie) processes have `parent` as their parent.
int live_children(pid_t parent) {
  return static_cast<int>(live_children_of(parent).size());
}

/// The children of `parent` that have `part` somewhere in their argv.
std::vector<pid_t> children_containing(pid_t parent, const std::string& part) {
  std::vector<pid_t> result;
  for (auto pid : live_children_of(parent))
    if (live_cmdline("/proc/" + std::to_string(pid)).find(part)
        != std::string::npos)
      result.push_back(pid);
  return result;
}

/// The value after "sock=" in a line "key_in_env=... sock=<path>".
std::string observed_socket(const std::string& observed) {
  auto at = observed.find("sock=");
  if (at == std::string::npos)
    return {};
  auto end = observed.find('\n', at);
  return observed.substr(at + 5, end == std::string::npos ? end : end - at - 5);
}

/// One test's world: an sshd, a GitHub stand-in, heaven's data directory
/// (its HOME) with ~/.ssh/known_hosts naming the sshd, and one repository
/// holding a Capistrano 3 project and a Fabric 2 fabfile that both sign in
/// to the sshd.
struct fixture {
  fs::path tmp = make_temp_dir("tools");
  fs::path data = tmp / "data";
  fs::path app = tmp / "app";
  /// Where the remote commands leave their markers (the "server" is this
  /// machine).
  fs::path markers = tmp / "markers";
  /// What cap and fab saw of their environment.
  fs::path cap_observed = tmp / "cap-observed";
  fs::path fab_observed = tmp / "fab-observed";
  sshd_server sshd;
  http_stub github;
  std::string key = sshd.client_key().private_key;
  std::string sha;
  /// How long `cap production deploy:slow` sleeps: a number no other
  /// process sleeps for.
  std::string slow_seconds = std::to_string(300000 + ::getpid() % 100000);

  fixture() {
    fs::create_directories(data / ".ssh");
    fs::create_directories(markers);
    write_known_hosts(data / ".ssh" / "known_hosts", {sshd.host_key_line()});
    make_repository();
  }

  ~fixture() {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  void make_repository() {
    auto port = std::to_string(sshd.port());
    auto user = sshd.user();
    std::map<std::string, std::string> files{
      {"README", "an app deployed by cap and fab\n"},
      {"Capfile", "require \"capistrano/setup\"\n"},
      {"config/deploy.rb",
       "set :application, \"app\"\n"
       // No SCM: this project deploys nothing but its own task.
       "set :scm, nil\n"
       "set :branch, ENV[\"BRANCH\"]\n"
       "set :ssh_options, { auth_methods: %w(publickey), "
       "verify_host_key: :always }\n"
       "task :deploy do\n"
       "  File.write(\""
         + cap_observed.string()
         + "\", "
           "\"key_in_env=#{ENV.key?(\"DEPLOYMENT_PRIVATE_KEY\")} "
           "sock=#{ENV[\"SSH_AUTH_SOCK\"]}\\n\")\n"
           "  on roles(:app) do\n"
           "    execute :touch, \""
         + markers.string()
         + "/cap-deployed-#{fetch(:branch)}\"\n"
           "  end\n"
           "  puts \"cap deployed #{fetch(:branch)}\"\n"
           "end\n"
           "namespace :deploy do\n"
           "  task :slow do\n"
           "    File.write(\""
         + cap_observed.string()
         + "\", "
           "\"key_in_env=#{ENV.key?(\"DEPLOYMENT_PRIVATE_KEY\")} "
           "sock=#{ENV[\"SSH_AUTH_SOCK\"]}\\n\")\n"
           "    run_locally do\n"
           "      execute :sleep, "
         + slow_seconds
         + "\n"
           "    end\n"
           "  end\n"
           "end\n"},
      {"config/deploy/production.rb", "server \"127.0.0.1\", port: " + port
                                        + ", user: \"" + user
                                        + "\", roles: %w[app]\n"},
      {"fabfile.py",
       "import os\n"
       "import shlex\n"
       "import paramiko\n"
       "from fabric import Connection, task\n"
       "\n"
       "@task\n"
       "def deploy(c, branch_name='none'):\n"
       "    with open('"
         + fab_observed.string()
         + "', 'w') as f:\n"
           "        f.write('key_in_env=%s sock=%s\\n' % (\n"
           "            'DEPLOYMENT_PRIVATE_KEY' in os.environ,\n"
           "            os.environ.get('SSH_AUTH_SOCK', '')))\n"
           "    conn = Connection('127.0.0.1', port="
         + port + ", user='" + user
         + "')\n"
           "    conn.client.load_system_host_keys()\n"
           "    "
           "conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())\n"
           "    conn.run('echo ' + shlex.quote(branch_name) + ' > "
         + markers.string()
         + "/fab-deployed && echo fab remote done')\n"
           "    print('fab deployed ' + branch_name)\n"},
    };
    fs::create_directories(app);
    run_checked("git -C " + app.string() + " init -q --initial-branch=main");
    for (auto& [path, text] : files)
      write_file(app / path, text);
    run_checked("cd " + app.string()
                + " && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m app");
    sha = run_checked("git -C " + app.string() + " rev-parse HEAD");
  }

  /// heaven with the deploy key (and `extra`) in its environment.
  std::unique_ptr<heaven_server>
  start_heaven(heaven_server::env_list extra = {},
               const std::string& dir = "data") {
    extra.emplace_back("DEPLOYMENT_PRIVATE_KEY", one_line_key(key));
    extra.emplace_back("HEAVEN_KILL_GRACE", "1");
    return std::make_unique<heaven_server>(tmp / dir, github.base_url(),
                                           std::move(extra));
  }

  /// A deployment event of this repository's commit.
  json event(int64_t github_id, const json& config,
             const std::string& ref = "e2e-topic",
             const std::string& task = "deploy") const {
    auto e = deployment_event(
      {.id = github_id,
       .sha = sha,
       .clone_url = "file://" + app.string(),
       .payload = {{"name", "app"}, {"config", config}}});
    e["deployment"]["ref"] = ref;
    e["deployment"]["task"] = task;
    return e;
  }

  /// Posts `e` (expecting 201) and returns heaven's id for it.
  int64_t post(const heaven_server& h, const json& e) const {
    auto github_id = e["deployment"]["id"].get<int64_t>();
    auto res = h.post_event("deployment",
                            "delivery-" + std::to_string(github_id), e.dump());
    BOOST_TEST(res.status == 201, res.body);
    return id_of(h, github_id);
  }

  /// The states GitHub was sent for `github_id`, once `count` arrived and
  /// `h` has nothing left to send (so a status after the terminal one, a
  /// defect, would be among them).
  std::vector<std::string> states_of(const heaven_server& h, int64_t github_id,
                                     std::size_t count) {
    BOOST_TEST(eventually(
      [&] { return statuses(github, github_id).size() >= count; }, 20s));
    h.wait_quiet();
    return states(statuses(github, github_id));
  }

  /// The description of the last status posted for `github_id`.
  std::string last_description(int64_t github_id) {
    auto posted = statuses(github, github_id);
    if (posted.empty())
      return {};
    return json::parse(posted.back().body).at("description");
  }

  /// Checks that the agent whose socket `observed` names is gone.
  void expect_agent_gone(const std::string& observed) {
    auto socket = observed_socket(observed);
    BOOST_REQUIRE_MESSAGE(!socket.empty(), "no SSH_AUTH_SOCK: " + observed);
    BOOST_TEST(eventually([&] { return !fs::exists(socket); }, 10s),
               socket << " outlived the deployment");
    BOOST_TEST(eventually([&] { return count_containing(socket) == 0; }, 10s),
               "an ssh-agent for " << socket << " outlived the deployment");
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(e2e_tools, fixture)

BOOST_AUTO_TEST_CASE(capfile_mode_deploys_over_ssh_with_an_agent_held_key) {
  auto h = start_heaven();
  auto id = post(*h, event(5101, {{"provider", "capistrano"}}));
  auto row = h->wait_finished(id, 120);
  auto log = h->log(id);
  BOOST_TEST(row.at("state") == "success", log);
  BOOST_TEST(row.at("description")
             == "Deployed e2e-topic (" + sha.substr(0, 7)
                  + ") to production with cap");
  BOOST_TEST(states_of(*h, 5101, 3)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  // The remote command ran on the server with the ref cap got as BRANCH.
  BOOST_TEST(fs::exists(markers / "cap-deployed-e2e-topic"));
  // cap's own output is in the log, after heaven's announcements.
  auto loading = log.find("Loading DEPLOYMENT_PRIVATE_KEY into this "
                          "deployment's ssh-agent\n");
  auto running = log.find("Running cap production deploy\n");
  auto touched = log.find("touch " + markers.string()
                          + "/cap-deployed-e2e-topic");
  auto said = log.find("cap deployed e2e-topic\n");
  BOOST_TEST(loading != std::string::npos, log);
  BOOST_TEST(running != std::string::npos, log);
  BOOST_TEST(touched != std::string::npos, log);
  BOOST_TEST(said != std::string::npos, log);
  BOOST_TEST((loading < running && running < touched), log);
  // cap signed in through the agent: the key was not in its environment.
  auto observed = read_text(cap_observed);
  BOOST_TEST(observed.rfind("key_in_env=false sock=/", 0) == 0u, observed);
  expect_agent_gone(observed);
  // The key is in no log.
  BOOST_TEST(!shows_key(log, key));
  h->stop();
  auto own = read_text(h->stderr_file);
  BOOST_TEST(!shows_key(own, key));
  BOOST_TEST(own.find("deployment " + std::to_string(id)
                      + " of octo/app to production ended: success")
               != std::string::npos,
             own);
}

BOOST_AUTO_TEST_CASE(fabfile_mode_deploys_over_ssh_and_honours_the_format) {
  {
    auto h = start_heaven();
    auto id = post(*h, event(5201, {{"provider", "fabric"}}));
    auto row = h->wait_finished(id, 120);
    auto log = h->log(id);
    BOOST_TEST(row.at("state") == "success", log);
    BOOST_TEST(row.at("description")
               == "Deployed e2e-topic (" + sha.substr(0, 7)
                    + ") to production with fab");
    BOOST_TEST(
      states_of(*h, 5201, 3)
      == (std::vector<std::string>{"queued", "in_progress", "success"}));
    BOOST_TEST(read_text(markers / "fab-deployed") == "e2e-topic\n");
    BOOST_TEST(log.find("Running fab deploy --branch-name=e2e-topic\n")
                 != std::string::npos,
               log);
    BOOST_TEST(log.find("fab remote done\n") != std::string::npos, log);
    BOOST_TEST(log.find("fab deployed e2e-topic\n") != std::string::npos, log);
    auto observed = read_text(fab_observed);
    BOOST_TEST(observed.rfind("key_in_env=False sock=/", 0) == 0u, observed);
    expect_agent_gone(observed);
    BOOST_TEST(!shows_key(log, key));
    h->stop();
    BOOST_TEST(!shows_key(read_text(h->stderr_file), key));
  }
  // DEPLOY_COMMAND_FORMAT replaces the command; the ref (shell
  // metacharacters git allows in a ref name) reaches fab as one word.
  fs::remove(markers / "fab-deployed");
  fs::remove(fab_observed);
  auto pwned = tmp / "pwned-by-format";
  auto ref = "fmt;touch${IFS}" + pwned.string();
  fs::create_directories(tmp / "data2" / ".ssh");
  write_known_hosts(tmp / "data2" / ".ssh" / "known_hosts",
                    {sshd.host_key_line()});
  auto h = start_heaven(
    {{"DEPLOY_COMMAND_FORMAT", "fab deploy --branch-name=%{ref}"}}, "data2");
  auto id = post(*h, event(5202, {{"provider", "fabric"}}, ref));
  auto row = h->wait_finished(id, 120);
  auto log = h->log(id);
  BOOST_TEST(row.at("state") == "success", log);
  BOOST_TEST(states_of(*h, 5202, 3)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(log.find("Running the DEPLOY_COMMAND_FORMAT command\n")
               != std::string::npos,
             log);
  BOOST_TEST(log.find("Running fab deploy --branch-name") == std::string::npos,
             log);
  BOOST_TEST(read_text(markers / "fab-deployed") == ref + "\n");
  BOOST_TEST(log.find("fab deployed " + ref + "\n") != std::string::npos, log);
  BOOST_TEST(!fs::exists(pwned));
  auto observed = read_text(fab_observed);
  BOOST_TEST(observed.rfind("key_in_env=False sock=/", 0) == 0u, observed);
  expect_agent_gone(observed);
  BOOST_TEST(!shows_key(log, key));
  h->stop();
  BOOST_TEST(!shows_key(read_text(h->stderr_file), key));
}

BOOST_AUTO_TEST_CASE(a_timeout_mid_command_ends_the_remote_command) {
  // A number no other process sleeps for.
  auto seconds = std::to_string(200000 + ::getpid() % 100000);
  auto sleeper = "sleep " + seconds;
  auto deploy_to = tmp / "srv";
  auto h = start_heaven({{"DEPLOYMENT_TIMEOUT", "10"}});
  json config = {{"provider", "capistrano"},
                 {"hosts",
                  {sshd.user() + "@127.0.0.1:" + std::to_string(sshd.port())}},
                 {"deploy_to", deploy_to.string()},
                 {"before_publish", {sleeper}}};
  std::istringstream pid_file{read_text(sshd.dir() / "sshd.pid")};
  pid_t listener = 0;
  BOOST_REQUIRE(pid_file >> listener);
  auto id = post(*h, event(5301, config));
  // The remote command runs (the timeout must catch it mid-command), in a
  // session of the sshd's...
  BOOST_TEST(eventually([&] { return count_exact(sleeper) == 1; }, 30s));
  BOOST_TEST(live_children(listener) >= 1);
  auto row = h->wait_finished(id, 60);
  auto log = h->log(id);
  BOOST_TEST(row.at("state") == "failure", log);
  BOOST_TEST(row.at("description") == "Deployment timed out after 10 seconds");
  BOOST_TEST(states_of(*h, 5301, 3)
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  BOOST_TEST(last_description(5301) == "Deployment timed out after 10 seconds");
  // It timed out in the update phase (where before_publish runs): the SSH
  // sessions were closed, and nothing was published.
  BOOST_TEST(
    log.find("heaven: capistrano update (release ") != std::string::npos, log);
  BOOST_TEST(log.find("heaven: capistrano publish") == std::string::npos, log);
  std::string tail = "heaven: Closing the SSH sessions\n"
                     "heaven: DEPLOYMENT TIMED OUT AFTER 10 SECONDS\n";
  BOOST_REQUIRE(log.size() >= tail.size());
  BOOST_TEST(log.substr(log.size() - tail.size()) == tail, log);
  // ...and is gone: nothing on the server still waits on heaven.
  BOOST_TEST(eventually([&] { return count_exact(sleeper) == 0; }, 15s),
             sleeper << " survived the timeout");
  // The server's session for heaven's connection ended as well: the sshd
  // listener has no connection process left.
  BOOST_TEST(eventually([&] { return live_children(listener) == 0; }, 15s));
  // The release was made but never published.
  BOOST_TEST(fs::is_directory(deploy_to / "releases"));
  BOOST_TEST(!fs::exists(fs::symlink_status(deploy_to / "current")));
  BOOST_TEST(!shows_key(log, key));
  h->stop();
  BOOST_TEST(!shows_key(read_text(h->stderr_file), key));
}

BOOST_AUTO_TEST_CASE(an_injecting_ref_or_task_runs_nothing) {
  auto h = start_heaven();
  auto by_ref = tmp / "pwned-by-ref";
  auto by_task = tmp / "pwned-by-task";
  auto bad_ref = "x;touch " + by_ref.string();
  auto bad_task = "deploy;touch " + by_task.string();
  auto ref_id = post(*h, event(5401, {{"provider", "capistrano"}}, bad_ref));
  auto task_id = post(*h, event(5402, {{"provider", "fabric"}}, "e2e-topic",
                                bad_task));
  auto ref_row = h->wait_finished(ref_id);
  auto task_row = h->wait_finished(task_id);
  BOOST_TEST(ref_row.at("state") == "error");
  BOOST_TEST(ref_row.at("description") == "invalid ref '" + bad_ref + "'");
  BOOST_TEST(task_row.at("state") == "error");
  BOOST_TEST(task_row.at("description")
             == "invalid task '" + bad_task + "': use deploy or deploy:<name>");
  BOOST_TEST(states_of(*h, 5401, 1) == std::vector<std::string>{"error"});
  BOOST_TEST(states_of(*h, 5402, 1) == std::vector<std::string>{"error"});
  BOOST_TEST(last_description(5401) == "invalid ref '" + bad_ref + "'");
  // Neither tool ran: no marker, no file the injection would have made.
  BOOST_TEST(!fs::exists(by_ref));
  BOOST_TEST(!fs::exists(by_task));
  BOOST_TEST(!fs::exists(cap_observed));
  BOOST_TEST(!fs::exists(fab_observed));
  BOOST_TEST(fs::is_empty(markers));
  h->stop();
}

BOOST_AUTO_TEST_CASE(stopping_heaven_mid_deployment_stops_the_agent_too) {
  auto h = start_heaven();
  auto sleeper = "sleep " + slow_seconds;
  post(*h,
       event(5501, {{"provider", "capistrano"}}, "e2e-topic", "deploy:slow"));
  BOOST_REQUIRE(eventually([&] { return count_exact(sleeper) == 1; }, 60s));
  auto observed = read_text(cap_observed);
  BOOST_TEST(observed.rfind("key_in_env=false sock=/", 0) == 0u, observed);
  BOOST_TEST(fs::exists(observed_socket(observed)));
  BOOST_TEST(h->stop() == 0);
  BOOST_TEST(eventually([&] { return count_exact(sleeper) == 0; }, 10s));
  expect_agent_gone(observed);
  BOOST_TEST(last_description(5501)
             == "heaven was stopped during the deployment");
  BOOST_TEST(states(statuses(github, 5501)).back() == "error");
}

BOOST_AUTO_TEST_CASE(a_killed_heaven_takes_the_agent_and_its_key_along) {
  auto h = start_heaven();
  auto sleeper = "sleep " + slow_seconds;
  post(*h,
       event(5601, {{"provider", "capistrano"}}, "e2e-topic", "deploy:slow"));
  BOOST_REQUIRE(eventually([&] { return count_exact(sleeper) == 1; }, 60s));
  auto observed = read_text(cap_observed);
  auto socket = observed_socket(observed);
  BOOST_REQUIRE(fs::exists(socket));
  // This test's own cap (heaven's child, the leader of the process group
  // heaven started it in), found now: once heaven is gone, only its pid tells
  // it apart from the cap of another test binary running on this machine at the
  // same time.
  auto caps = children_containing(h->pid, "cap production deploy:slow");
  BOOST_REQUIRE_EQUAL(caps.size(), 1u);
  // SIGKILL: no cleanup runs in heaven. The agent still goes (its parent
  // death signal), so the decrypted key does not stay usable.
  ::kill(h->pid, SIGKILL);
  ::waitpid(h->pid, nullptr, 0);
  h->pid = -1;
  expect_agent_gone(observed);
  BOOST_TEST(eventually(
    [&] { return !fs::exists(fs::path{socket}.parent_path()); }, 10s));
  // What a SIGKILLed heaven cannot stop (cap's own process group) is the
  // operator's to clean up; the test does it, for its own processes only: a
  // `pkill -f 'cap production deploy:slow'` here also killed the cap of a
  // test_e2e running at the same time, whose stopping_heaven_mid_deployment_
  // stops_the_agent_too then saw its deployment fail ("cap production
  // deploy:slow was killed by signal 9") before heaven stopped it.
  ::kill(-caps.front(), SIGKILL);
  run_command("pkill -KILL -f -x '" + sleeper + "'");
  BOOST_TEST(eventually([&] { return count_exact(sleeper) == 0; }, 10s));
}

BOOST_AUTO_TEST_SUITE_END()
