// The capistrano provider's native mode against real OpenSSH servers on
// 127.0.0.1, a real git repository, and Debian's real Capistrano 3.17: the
// layout heaven leaves is compared with the one `cap production deploy`
// leaves for the same repository, and each tool rolls back the other's
// releases.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "base/payload_config.hpp"
#include "providers/capistrano_native.hpp"
#include "providers/fabric.hpp"
#include "tests/support/logger.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/recorder.hpp"
#include "tools/support/sshd.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string sh(const std::string& cmd) {
  return run_checked(cmd);
}

/// What a deploy_to directory holds, with the parts that differ between two
/// runs (timestamps, the directory itself) made comparable.
struct layout {
  /// Release names, oldest first.
  std::vector<std::string> releases;
  /// The release `current` points to ("" when none).
  std::string current;
  /// revisions.log with release names replaced by r<index in all releases
  /// ever made> and the sha kept.
  std::vector<std::string> log;
  std::vector<std::string> archives;
};

layout read_layout(const fs::path& d) {
  layout l;
  if (fs::exists(d / "releases"))
    for (auto& e : fs::directory_iterator(d / "releases"))
      l.releases.push_back(e.path().filename());
  std::sort(l.releases.begin(), l.releases.end());
  if (fs::is_symlink(d / "current"))
    l.current = fs::read_symlink(d / "current").filename();
  std::ifstream in{d / "revisions.log"};
  for (std::string line; std::getline(in, line);)
    l.log.push_back(line);
  for (auto& e : fs::directory_iterator(d))
    if (e.path().filename().string().rfind("rolled-back-release-", 0) == 0)
      l.archives.push_back(e.path().filename());
  std::sort(l.archives.begin(), l.archives.end());
  return l;
}

/// A line of revisions.log with its 14-digit release names as "<ts>".
std::string without_timestamps(const std::string& line) {
  static const std::regex ts{"[0-9]{14}"};
  return std::regex_replace(line, ts, "<ts>");
}

/// Two sshd's, a repository with three commits, a known_hosts file.
struct fixture {
  temp_dir tmp;
  sshd_server one;
  sshd_server two;
  fs::path repo = tmp.path / "repo";
  fs::path known_hosts = tmp.path / "known_hosts";
  std::vector<std::string> shas;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};

  fixture() {
    write_known_hosts(known_hosts, {one.host_key_line(), two.host_key_line()});
    // The same client key signs in to both.
    two.authorize(one.client_key().public_key);
    fs::create_directories(repo / "config");
    sh("git -C " + repo.string() + " init -q --initial-branch=main");
    for (int i = 1; i <= 3; ++i) {
      std::ofstream{repo / "VERSION"} << i << "\n";
      std::ofstream{repo / "config" / "app.rb"} << "# app " << i << "\n";
      sh("cd " + repo.string()
         + " && git add -A && git -c user.name=t -c user.email=t@t commit "
           "-q -m v"
         + std::to_string(i));
      shas.push_back(sh("git -C " + repo.string() + " rev-parse HEAD"));
      // Tagged: every commit stays reachable when main moves back.
      sh("git -C " + repo.string() + " tag v" + std::to_string(i));
    }
  }

  /// deploy_to directories with the shared files Capistrano expects.
  fs::path prepared(const std::string& name) {
    auto d = tmp.path / name;
    fs::create_directories(d / "shared" / "config");
    std::ofstream{d / "shared" / "config" / "database.yml"} << "db: " << name
                                                            << "\n";
    return d;
  }

  json config(const std::vector<json>& hosts) const {
    return {{"provider", "capistrano"},
            {"hosts", hosts},
            {"keep_releases", 2},
            {"linked_files", {"config/database.yml"}},
            {"linked_dirs", {"log", "tmp/pids"}},
            {"after_publish", {"echo restarted > tmp/pids/restart.txt"}},
            {"tasks", {{"migrate", {"echo migrating $(cat VERSION)"}}}}};
  }

  json host(const sshd_server& s, const fs::path& deploy_to) const {
    return {{"host",
             s.user() + "@" + s.host() + ":" + std::to_string(s.port())},
            {"deploy_to", deploy_to.string()}};
  }

  /// Runs the native provider to its outcome; the log lines go to `rec`.
  /// `extra` holds further payload fields (rollback_release).
  provider_outcome
  deploy(const json& cfg_json, const std::string& task, const std::string& sha,
         std::shared_ptr<record> rec = nullptr, std::string key = {},
         const json& extra = json::object()) {
    if (!rec)
      rec = std::make_shared<record>();
    deployment_actor sink = sys.spawn(deployment_recorder, rec);
    provider_job job;
    job.id = 1;
    job.request.repo = "octo/app";
    job.request.clone_url = "file://" + repo.string();
    job.request.sha = sha;
    job.request.ref = "main";
    job.request.environment = "production";
    job.request.task = task;
    job.request.actor = "alice";
    auto payload = json{{"config", cfg_json}};
    payload.update(extra);
    job.request.payload_json = payload.dump();
    job.config = read_payload_config(job.request);
    remote_config c;
    c.known_hosts = known_hosts.string();
    c.private_key = key.empty() ? one.client_key().private_key : key;
    auto p = sys.spawn(capistrano_native, job, sink, c);
    BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }, 120s));
    std::lock_guard<std::mutex> guard{rec->mx};
    return rec->results.front();
  }

  /// Capistrano's own project: the same settings, for `cap`.
  fs::path cap_project(const fs::path& deploy_to, int keep_releases = 2) {
    auto p = tmp.path / ("cap-" + deploy_to.filename().string());
    fs::create_directories(p / "config" / "deploy");
    std::ofstream{p / "Capfile"} << "require 'capistrano/setup'\n"
                                    "require 'capistrano/deploy'\n"
                                    "require 'capistrano/scm/git'\n"
                                    "install_plugin Capistrano::SCM::Git\n";
    auto key = p / "id_ed25519";
    std::ofstream{key} << one.client_key().private_key;
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    std::ofstream{p / "config" / "deploy.rb"}
      << "set :application, 'app'\n"
         "set :repo_url, 'file://"
      << repo.string() << "'\n"
      << "set :deploy_to, '" << deploy_to.string()
      << "'\n"
      // Capistrano leaves its git-ssh-*.sh wrapper in tmp_dir on the
      // server: here, inside the test's own directory, not the host's /tmp.
      << "set :tmp_dir, '" << (p / "server-tmp").string() << "'\n"
      << "set :branch, 'main'\n"
         "set :keep_releases, "
      << keep_releases
      << "\n"
         "set :local_user, 'alice'\n"
         "append :linked_files, 'config/database.yml'\n"
         "append :linked_dirs, 'log', 'tmp/pids'\n"
         "set :ssh_options, { keys: ['"
      << key.string() << "'], "
      << "auth_methods: %w(publickey), user_known_hosts_file: '"
      << known_hosts.string() << "', verify_host_key: :always }\n"
      << "namespace :deploy do\n"
         "  after :published, :restart_app do\n"
         "    on roles(:app) do\n"
         "      within current_path do\n"
         "        execute :sh, '-c', %q('echo restarted > "
         "tmp/pids/restart.txt')\n"
         "      end\n"
         "    end\n"
         "  end\n"
         "end\n";
    std::ofstream{p / "config" / "deploy" / "production.rb"}
      << "server '127.0.0.1', user: '" << one.user()
      << "', port: " << one.port() << ", roles: %w{app}\n";
    return p;
  }

  command_result cap(const fs::path& project, const std::string& task) {
    return run_command("cd " + project.string() + " && cap production " + task);
  }
};

/// Whether two layouts are the same (log lines, names and all).
bool same(const layout& a, const layout& b) {
  return a.releases == b.releases && a.current == b.current && a.log == b.log
         && a.archives == b.archives;
}

/// `lines`, one a line, for a failing check's message.
std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (auto& l : lines)
    out += l + "\n";
  return out;
}

/// How many connections `s` has accepted so far.
std::size_t connections(const sshd_server& s) {
  auto log = s.log();
  std::size_t n = 0;
  for (auto at = log.find("Connection from "); at != std::string::npos;
       at = log.find("Connection from ", at + 1))
    ++n;
  return n;
}

void check_release(const fs::path& d, const std::string& release,
                   const std::string& sha, const std::string& version) {
  auto r = d / "releases" / release;
  BOOST_TEST(read_text(r / "REVISION") == sha + "\n");
  BOOST_TEST(read_text(r / "VERSION") == version + "\n");
  BOOST_TEST(fs::read_symlink(r / "config" / "database.yml")
             == d / "shared" / "config" / "database.yml");
  BOOST_TEST(fs::read_symlink(r / "log") == d / "shared" / "log");
  BOOST_TEST(fs::read_symlink(r / "tmp" / "pids")
             == d / "shared" / "tmp" / "pids");
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(capistrano_native_suite, fixture)

BOOST_AUTO_TEST_CASE(the_ssh_sessions_log_as_the_deployment) {
  // With the log context: the JSON log's deployment fields.
  heaven::test::captured_log log{1000, true};
  auto out = deploy(config({host(one, prepared("a"))}), "deploy", shas[0]);
  BOOST_TEST(out.state == deploy_state::success, out.description);
  BOOST_TEST(log.exactly("info ssh 127.0.0.1:" + std::to_string(one.port())
                         + ": signed in as " + one.user()
                         + " [deployment=1 repository=octo/app "
                           "environment=production]")
               == 1u,
             log.all());
}

BOOST_AUTO_TEST_CASE(deploys_to_two_hosts_in_parallel_with_capistranos_layout) {
  auto a = prepared("a");
  auto b = prepared("b");
  auto rec = std::make_shared<record>();
  auto out = deploy(config({host(one, a), host(two, b)}), "deploy", shas[0],
                    rec);
  BOOST_TEST(out.state == deploy_state::success, out.description);
  BOOST_TEST(out.description
             == "Deployed main (" + shas[0].substr(0, 7)
                  + ") to production on 2 hosts");
  for (auto& d : {a, b}) {
    auto l = read_layout(d);
    BOOST_REQUIRE(l.releases.size() == 1u);
    BOOST_TEST(std::regex_match(l.releases[0], std::regex{"[0-9]{14}"}));
    BOOST_TEST(l.current == l.releases[0]);
    BOOST_TEST(fs::read_symlink(d / "current")
               == d / "releases" / l.releases[0]);
    check_release(d, l.releases[0], shas[0], "1");
    BOOST_TEST(fs::exists(d / "repo" / "HEAD"));
    BOOST_TEST(read_text(d / "shared" / "tmp" / "pids" / "restart.txt")
               == "restarted\n");
    BOOST_REQUIRE(l.log.size() == 1u);
    BOOST_TEST(l.log[0]
               == "Branch main (at " + shas[0] + ") deployed as release "
                    + l.releases[0] + " by alice");
  }
  // Each host's own task: deploy:migrate in current, lines prefixed.
  rec = std::make_shared<record>();
  auto migrated = deploy(config({host(one, a), host(two, b)}), "deploy:migrate",
                         shas[0], rec);
  BOOST_TEST(migrated.state == deploy_state::success, migrated.description);
  auto lines = rec->texts(stream::out);
  std::set<std::string> got(lines.begin(), lines.end());
  BOOST_TEST(
    got.count("127.0.0.1:" + std::to_string(one.port()) + " migrating 1"));
  BOOST_TEST(
    got.count("127.0.0.1:" + std::to_string(two.port()) + " migrating 1"));
}

BOOST_AUTO_TEST_CASE(three_deploys_and_a_rollback_match_the_real_cap) {
  auto mine = prepared("heaven");
  auto theirs = prepared("cap");
  auto project = cap_project(theirs);
  auto cfg = config({host(one, mine)});
  for (int i = 0; i < 3; ++i) {
    // Releases are named by the second, as Capistrano names them.
    std::this_thread::sleep_for(1100ms);
    auto out = deploy(cfg, "deploy", shas[i]);
    BOOST_TEST(out.state == deploy_state::success, out.description);
    // cap deploys what `main` is: move it to the same commit.
    sh("git -C " + repo.string() + " reset -q --hard " + shas[i]);
    auto c = cap(project, "deploy");
    BOOST_TEST(c.status == 0, c.out);
  }
  auto h = read_layout(mine);
  auto c = read_layout(theirs);
  // keep_releases 2: the oldest is gone from both.
  BOOST_TEST(h.releases.size() == 2u);
  BOOST_TEST(c.releases.size() == 2u);
  BOOST_TEST(h.current == h.releases.back());
  BOOST_TEST(c.current == c.releases.back());
  check_release(mine, h.releases.back(), shas[2], "3");
  check_release(theirs, c.releases.back(), shas[2], "3");
  BOOST_REQUIRE(h.log.size() == c.log.size());
  for (size_t i = 0; i < h.log.size(); ++i)
    BOOST_TEST(without_timestamps(h.log[i]) == without_timestamps(c.log[i]));

  auto back = deploy(cfg, "deploy:rollback", shas[2]);
  BOOST_TEST(back.state == deploy_state::success, back.description);
  auto cr = cap(project, "deploy:rollback");
  BOOST_TEST(cr.status == 0, cr.out);
  h = read_layout(mine);
  c = read_layout(theirs);
  BOOST_TEST(h.releases.size() == 1u);
  BOOST_TEST(c.releases.size() == 1u);
  BOOST_TEST(h.current == h.releases.front());
  BOOST_TEST(c.current == c.releases.front());
  check_release(mine, h.current, shas[1], "2");
  check_release(theirs, c.current, shas[1], "2");
  BOOST_TEST(h.archives.size() == 1u);
  BOOST_TEST(c.archives.size() == 1u);
  BOOST_REQUIRE(h.log.size() == c.log.size());
  for (size_t i = 0; i < h.log.size(); ++i)
    BOOST_TEST(without_timestamps(h.log[i]) == without_timestamps(c.log[i]));
  BOOST_TEST(h.log.back() == "alice rolled back to release " + h.current);

  // A second rollback has nothing older to go to, in both tools.
  auto none = deploy(cfg, "deploy:rollback", shas[2]);
  BOOST_TEST(none.state == deploy_state::failure);
  BOOST_TEST(none.description.find("rollback failed on 127.0.0.1:") == 0u,
             none.description);
  BOOST_TEST(cap(project, "deploy:rollback").status != 0);
}

BOOST_AUTO_TEST_CASE(each_tool_rolls_back_the_others_release) {
  auto shared_dir = prepared("both");
  auto project = cap_project(shared_dir);
  auto cfg = config({host(one, shared_dir)});
  // cap makes release 1, heaven release 2; cap rolls heaven's back.
  sh("git -C " + repo.string() + " reset -q --hard " + shas[0]);
  auto c1 = cap(project, "deploy");
  BOOST_TEST(c1.status == 0, c1.out);
  std::this_thread::sleep_for(1100ms);
  auto after_cap = deploy(cfg, "deploy", shas[1]);
  BOOST_TEST(after_cap.state == deploy_state::success, after_cap.description);
  auto cr = cap(project, "deploy:rollback");
  BOOST_TEST(cr.status == 0, cr.out);
  auto l = read_layout(shared_dir);
  BOOST_REQUIRE(l.releases.size() == 1u);
  check_release(shared_dir, l.current, shas[0], "1");
  // heaven makes a release, cap one after it, and heaven rolls cap's back.
  std::this_thread::sleep_for(1100ms);
  BOOST_TEST(deploy(cfg, "deploy", shas[1]).state == deploy_state::success);
  std::this_thread::sleep_for(1100ms);
  sh("git -C " + repo.string() + " reset -q --hard " + shas[2]);
  auto c2 = cap(project, "deploy");
  BOOST_TEST(c2.status == 0, c2.out);
  BOOST_TEST(deploy(cfg, "deploy:rollback", shas[2]).state
             == deploy_state::success);
  l = read_layout(shared_dir);
  check_release(shared_dir, l.current, shas[1], "2");
  BOOST_TEST(l.log.back() == "alice rolled back to release " + l.current);
}

BOOST_AUTO_TEST_CASE(a_named_rollback_matches_cap_and_cap_carries_on_from_it) {
  auto mine = prepared("heaven");
  auto theirs = prepared("cap");
  auto project = cap_project(theirs, 5);
  auto cfg = config({host(one, mine)});
  cfg["keep_releases"] = 5;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1100ms);
    auto out = deploy(cfg, "deploy", shas[i]);
    BOOST_TEST(out.state == deploy_state::success, out.description);
    sh("git -C " + repo.string() + " reset -q --hard " + shas[i]);
    auto c = cap(project, "deploy");
    BOOST_TEST(c.status == 0, c.out);
  }
  auto h0 = read_layout(mine);
  auto c0 = read_layout(theirs);
  BOOST_REQUIRE(h0.releases.size() == 3u);
  BOOST_REQUIRE(c0.releases.size() == 3u);
  // The restart hook runs again on the way back, in both tools.
  auto restarted = fs::path{"shared"} / "tmp" / "pids" / "restart.txt";
  fs::remove(mine / restarted);
  fs::remove(theirs / restarted);

  // Back to the oldest, past the release before the newest.
  auto rec = std::make_shared<record>();
  auto back = deploy(cfg, "deploy:rollback", shas[2], rec, {},
                     {{"rollback_release", h0.releases[0]}});
  BOOST_TEST(back.state == deploy_state::success, back.description);
  auto said = rec->texts(stream::out);
  BOOST_TEST(std::count(said.begin(), said.end(),
                        "127.0.0.1:" + std::to_string(one.port())
                          + " rolled back to release " + h0.releases[0])
             == 1);
  auto cr = cap(project, "deploy:rollback ROLLBACK_RELEASE=" + c0.releases[0]);
  BOOST_TEST(cr.status == 0, cr.out);
  auto h = read_layout(mine);
  auto c = read_layout(theirs);
  // `current` is the named release; the newest is archived and removed, the
  // one between them stays: in both.
  BOOST_TEST(h.current == h0.releases[0]);
  BOOST_TEST(c.current == c0.releases[0]);
  BOOST_TEST(h.releases
             == (std::vector<std::string>{h0.releases[0], h0.releases[1]}));
  BOOST_TEST(c.releases
             == (std::vector<std::string>{c0.releases[0], c0.releases[1]}));
  BOOST_TEST(h.archives
             == std::vector<std::string>{"rolled-back-release-" + h0.releases[2]
                                         + ".tar.gz"});
  BOOST_TEST(c.archives
             == std::vector<std::string>{"rolled-back-release-" + c0.releases[2]
                                         + ".tar.gz"});
  check_release(mine, h.current, shas[0], "1");
  check_release(theirs, c.current, shas[0], "1");
  BOOST_TEST(read_text(mine / restarted) == "restarted\n");
  BOOST_TEST(read_text(theirs / restarted) == "restarted\n");
  BOOST_REQUIRE(h.log.size() == c.log.size());
  for (size_t i = 0; i < h.log.size(); ++i)
    BOOST_TEST(without_timestamps(h.log[i]) == without_timestamps(c.log[i]));
  BOOST_TEST(h.log.back() == "alice rolled back to release " + h0.releases[0]);

  // The real cap carries on from what heaven left: a named rollback to the
  // release heaven kept (the newest now, so nothing is archived), then a
  // deploy.
  auto on_mine = cap_project(mine, 5);
  auto again = cap(on_mine,
                   "deploy:rollback ROLLBACK_RELEASE=" + h0.releases[1]);
  BOOST_TEST(again.status == 0, again.out);
  h = read_layout(mine);
  BOOST_TEST(h.current == h0.releases[1]);
  BOOST_TEST(h.releases
             == (std::vector<std::string>{h0.releases[0], h0.releases[1]}));
  BOOST_TEST(h.archives.size() == 1u);
  check_release(mine, h.current, shas[1], "2");
  BOOST_TEST(h.log.back() == "alice rolled back to release " + h0.releases[1]);
  std::this_thread::sleep_for(1100ms);
  auto next = cap(on_mine, "deploy");
  BOOST_TEST(next.status == 0, next.out);
  h = read_layout(mine);
  BOOST_REQUIRE(h.releases.size() == 3u);
  BOOST_TEST(h.current == h.releases.back());
  check_release(mine, h.current, shas[2], "3");
  // And heaven's named rollback from cap's deploy: back to the first.
  BOOST_TEST(deploy(cfg, "deploy:rollback", shas[2], nullptr, {},
                    {{"rollback_release", h0.releases[0]}})
               .state
             == deploy_state::success);
  h = read_layout(mine);
  BOOST_TEST(h.current == h0.releases[0]);
  BOOST_TEST(h.releases
             == (std::vector<std::string>{h0.releases[0], h0.releases[1]}));
  BOOST_TEST(h.archives.size() == 2u);
}

BOOST_AUTO_TEST_CASE(an_unknown_rollback_release_changes_nothing_anywhere) {
  auto a = prepared("a");
  auto b = prepared("b");
  auto cfg = config({host(one, a), host(two, b)});
  cfg["keep_releases"] = 5;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1100ms);
    auto out = deploy(cfg, "deploy", shas[i]);
    BOOST_TEST(out.state == deploy_state::success, out.description);
  }
  auto a0 = read_layout(a);
  BOOST_REQUIRE(a0.releases.size() == 3u);
  auto& r = a0.releases;
  auto label_one = "127.0.0.1:" + std::to_string(one.port());
  auto label_two = "127.0.0.1:" + std::to_string(two.port());
  // b lost the oldest release: a rollback to it fails there, and a, which
  // has it, does not move either.
  fs::remove_all(b / "releases" / r[0]);
  auto b0 = read_layout(b);
  auto rec = std::make_shared<record>();
  auto out = deploy(cfg, "deploy:rollback", shas[2], rec, {},
                    {{"rollback_release", r[0]}});
  BOOST_TEST(out.state == deploy_state::failure);
  BOOST_TEST(out.description
             == "rollback failed on " + label_two + ": exit status 1");
  auto errors = rec->texts(stream::err);
  BOOST_TEST(std::count(errors.begin(), errors.end(),
                        label_two + " Cannot rollback because release " + r[0]
                          + " does not exist (releases, newest first: " + r[2]
                          + ", " + r[1] + ")")
               == 1,
             joined(errors));
  BOOST_TEST(same(read_layout(a), a0));
  BOOST_TEST(same(read_layout(b), b0));

  // A release no host has: each says which it has.
  rec = std::make_shared<record>();
  out = deploy(cfg, "deploy:rollback", shas[2], rec, {},
               {{"rollback_release", "20200101000000"}});
  BOOST_TEST(out.state == deploy_state::failure);
  BOOST_TEST(out.description.find("rollback failed on 127.0.0.1:") == 0u,
             out.description);
  errors = rec->texts(stream::err);
  BOOST_TEST(std::count(errors.begin(), errors.end(),
                        label_one
                          + " Cannot rollback because release 20200101000000 "
                            "does not exist (releases, newest first: "
                          + r[2] + ", " + r[1] + ", " + r[0] + ")")
               == 1,
             joined(errors));
  BOOST_TEST(std::count(errors.begin(), errors.end(),
                        label_two
                          + " Cannot rollback because release 20200101000000 "
                            "does not exist (releases, newest first: "
                          + r[2] + ", " + r[1] + ")")
               == 1,
             joined(errors));
  BOOST_TEST(same(read_layout(a), a0));
  BOOST_TEST(same(read_layout(b), b0));
  // The real cap refuses it too, in its own words, and changes nothing.
  auto project = cap_project(a, 5);
  auto c = cap(project, "deploy:rollback ROLLBACK_RELEASE=20200101000000");
  BOOST_TEST(c.status != 0);
  BOOST_TEST(c.out.find("Cannot rollback because release 20200101000000 does "
                        "not exist")
               != std::string::npos,
             c.out);
  BOOST_TEST(same(read_layout(a), a0));
}

BOOST_AUTO_TEST_CASE(a_hostile_rollback_release_is_refused_before_connecting) {
  auto a = prepared("a");
  auto cfg = config({host(one, a)});
  cfg["keep_releases"] = 5;
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(1100ms);
    auto out = deploy(cfg, "deploy", shas[i]);
    BOOST_TEST(out.state == deploy_state::success, out.description);
  }
  auto a0 = read_layout(a);
  BOOST_REQUIRE(a0.releases.size() == 2u);
  auto pwned = tmp.path / "pwned";
  auto seen = connections(one);
  BOOST_REQUIRE(seen > 0u);
  for (const json& name :
       {json("../" + a0.releases[0]), json("releases/" + a0.releases[0]),
        json(".."), json("."), json(""), json("-rf"),
        json("$(touch " + pwned.string() + ")"),
        json(a0.releases[0] + "; touch " + pwned.string()),
        json("`touch " + pwned.string() + "`"), json(a0.releases[0] + "'"),
        json(a0.releases[0] + "\n"), json(a0.releases[0] + " x"),
        json(20200101000000), json::array({a0.releases[0]})}) {
    auto out = deploy(cfg, "deploy:rollback", shas[1], nullptr, {},
                      {{"rollback_release", name}});
    BOOST_TEST(out.state == deploy_state::error, name.dump());
    BOOST_TEST(out.description
                 == "payload.rollback_release must name a release in "
                    "releases/ (letters, digits, '.', '_' and '-', not "
                    "starting with '.' or '-')",
               name.dump());
  }
  // No connection was made, nothing ran, nothing changed.
  BOOST_TEST(connections(one) == seen);
  BOOST_TEST(!fs::exists(pwned));
  BOOST_TEST(same(read_layout(a), a0));
  // null names no release: the one before the newest, as without it.
  BOOST_TEST(deploy(cfg, "deploy:rollback", shas[1], nullptr, {},
                    {{"rollback_release", nullptr}})
               .state
             == deploy_state::success);
  BOOST_TEST(read_layout(a).current == a0.releases[0]);
}

BOOST_AUTO_TEST_CASE(a_wrong_host_key_fails_naming_the_host) {
  auto a = prepared("a");
  sshd_server other;
  // known_hosts has `other`'s key for `one`'s address: a changed key.
  write_known_hosts(known_hosts, {"[127.0.0.1]:" + std::to_string(one.port())
                                  + " " + other.host_public_key()});
  auto out = deploy(config({host(one, a)}), "deploy", shas[0]);
  BOOST_TEST(out.state == deploy_state::failure);
  BOOST_TEST(out.description.find("check failed on 127.0.0.1:"
                                  + std::to_string(one.port()))
               == 0u,
             out.description);
  BOOST_TEST(out.description.find(one.host_fingerprint()) != std::string::npos,
             out.description);
  BOOST_TEST(!fs::exists(a / "releases"));
}

BOOST_AUTO_TEST_CASE(an_rsa_key_and_bad_config_are_errors_before_connecting) {
  auto a = prepared("a");
  auto rsa = make_key("rsa");
  auto out = deploy(config({host(one, a)}), "deploy", shas[0], nullptr,
                    rsa.private_key);
  BOOST_TEST(out.state == deploy_state::error);
  BOOST_TEST(out.description == std::string{rsa_key_error});
  auto bad = config({host(one, a)});
  bad["linked_files"] = {"../etc/passwd"};
  BOOST_TEST(deploy(bad, "deploy", shas[0]).description
             == "payload.config.linked_files: '../etc/passwd' must be a "
                "relative path without ..");
  auto unknown = deploy(config({host(one, a)}), "deploy:nope", shas[0]);
  BOOST_TEST(unknown.state == deploy_state::error);
  BOOST_TEST(unknown.description
             == "unknown task deploy:nope (payload.config.tasks names: "
                "deploy:migrate; deploy and deploy:rollback are built in)");
  auto missing = prepared("m");
  fs::remove(missing / "shared" / "config" / "database.yml");
  auto lost = deploy(config({host(one, missing)}), "deploy", shas[0]);
  BOOST_TEST(lost.state == deploy_state::failure);
  BOOST_TEST(!fs::exists(missing / "releases" / "current"));
}

BOOST_AUTO_TEST_CASE(fabric_runs_the_named_commands_on_every_host_safely) {
  auto marks = tmp.path / "marks";
  fs::create_directories(marks);
  json cfg = {{"provider", "fabric"},
              {"hosts",
               {{"production",
                 {one.user() + "@127.0.0.1:" + std::to_string(one.port()),
                  two.user() + "@127.0.0.1:" + std::to_string(two.port())}}}},
              {"tasks",
               {{"deploy",
                 {"printf 'ref=[%s] task=[%s]\\n' %{ref} %{task}",
                  "printf 'env=[%s]\\n' \"$DEPLOY_ENV\"",
                  "touch " + marks.string() + "/$(hostname)-ran"}}}}};
  auto rec = std::make_shared<record>();
  deployment_actor sink = sys.spawn(deployment_recorder, rec);
  provider_job job;
  job.id = 2;
  job.request.sha = shas[0];
  // A ref that would run a command if it were pasted into a shell.
  job.request.ref = "x; touch " + marks.string() + "/pwned; $(touch "
                    + marks.string() + "/pwned2)";
  job.request.environment = "production";
  job.request.task = "deploy";
  job.request.payload_json = json{{"config", cfg}}.dump();
  job.config = read_payload_config(job.request);
  remote_config c;
  c.known_hosts = known_hosts.string();
  c.private_key = one.client_key().private_key;
  auto factory = fabric_provider(c);
  auto p = factory(sys, job, sink);
  BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }, 120s));
  BOOST_TEST(rec->results.front().state == deploy_state::success,
             rec->results.front().description);
  auto lines = rec->texts(stream::out);
  std::set<std::string> got(lines.begin(), lines.end());
  for (auto* s : {&one, &two}) {
    auto label = "127.0.0.1:" + std::to_string(s->port());
    BOOST_TEST(
      got.count(label + " ref=[" + job.request.ref + "] task=[deploy]"));
    BOOST_TEST(got.count(label + " env=[production]"));
  }
  BOOST_TEST(!fs::exists(marks / "pwned"));
  BOOST_TEST(!fs::exists(marks / "pwned2"));
  // A task the config doesn't name runs nothing.
  rec = std::make_shared<record>();
  sink = sys.spawn(deployment_recorder, rec);
  job.request.task = "deploy:nope";
  factory(sys, job, sink);
  BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }, 60s));
  BOOST_TEST(rec->results.front().description
             == "unknown fabric task nope (payload.config.tasks names: "
                "deploy)");
}

BOOST_AUTO_TEST_SUITE_END()
