#include "actors/scope.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/children.hpp"
#include "actors/process.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;
namespace bdata = boost::unit_test::data;

// Not an anonymous namespace: the data test cases below are templates with
// external linkage that capture these types.
namespace scope_test {

/// A process as /proc shows it, named by pid and start time (a pid alone
/// may be another process's by the time a test looks again).
struct proc_id {
  pid_t pid = 0;
  uint64_t start = 0;
};

/// The text of /proc/<pid>/<name>; "" when the process is gone, also while
/// it is read (libstdc++'s filebuf then throws from under the iterator).
std::string proc_text(int64_t pid, const std::string& name) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/" + name};
  try {
    return {std::istreambuf_iterator<char>{in},
            std::istreambuf_iterator<char>{}};
  } catch (const std::exception&) {
    return {};
  }
}

/// The state letter of `p` in /proc ('\0' when it is not there: reaped, or
/// its pid now names another process).
char state_of(const proc_id& p) {
  auto text = proc_text(p.pid, "stat");
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size())
    return '\0';
  if (process_start_time(p.pid) != p.start)
    return '\0';
  return text[close + 2];
}

/// Running (or sleeping): a zombie is not alive.
bool alive(const proc_id& p) {
  auto s = state_of(p);
  return s != '\0' && s != 'Z' && s != 'X';
}

/// Not in /proc at all: ended and reaped.
bool gone(const proc_id& p) {
  return state_of(p) == '\0';
}

/// The pids a script wrote to `path`, one a line.
std::vector<proc_id> read_pids(const fs::path& path) {
  std::vector<proc_id> result;
  std::ifstream in{path};
  long long pid;
  while (in >> pid) {
    proc_id p{static_cast<pid_t>(pid),
              process_start_time(static_cast<pid_t>(pid))};
    result.push_back(p);
  }
  return result;
}

/// Waits until `path` lists `n` pids and returns them.
std::vector<proc_id> wait_pids(const fs::path& path, size_t n) {
  std::vector<proc_id> result;
  BOOST_REQUIRE_MESSAGE(eventually([&] {
                          result = read_pids(path);
                          return result.size() >= n;
                        }),
                        "expected " << n << " pids in " << path);
  return result;
}

/// How many threads this process has (`Threads:` in /proc/self/status).
size_t threads_now() {
  auto text = proc_text(::getpid(), "status");
  auto at = text.find("\nThreads:");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no Threads: in " << text);
  return std::stoul(text.substr(at + 9));
}

std::string mode_name(bool cgroups) {
  return cgroups ? "cgroups" : "fallback";
}

/// A script starting what deploy scripts leave behind: a background job, a
/// `setsid` daemon, a double-forked `setsid` daemon and a job that ignores
/// SIGTERM, each writing its pid to `pids` (the last once it ignores
/// SIGTERM); then it exits.
constexpr auto leave_daemons = R"(exec >/dev/null 2>&1
sleep 1000 & echo $! >> pids
setsid sleep 1000 & echo $! >> pids
sh -c 'setsid sleep 1000 & echo $! >> pids' &
sh -c 'trap "" TERM; echo $$ >> pids; exec sleep 1000' &
)";

struct scope_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  recorder_actor sink = sys.spawn(recorder, rec);
  temp_dir tmp;
  fs::path data = tmp.path / "data";

  scope_fixture() {
    start_reaper();
  }

  /// The instances' cgroups the test made (heaven removes its own when it
  /// stops, with end_all).
  std::vector<std::string> cgroup_roots;

  ~scope_fixture() {
    for (auto& root : cgroup_roots)
      ::rmdir(root.c_str());
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  /// Scopes of `dir` (default: the fixture's data directory); says when a
  /// cgroup run had to fall back.
  process_scopes scopes(bool cgroups, const fs::path& dir = {}) {
    process_scopes result{(dir.empty() ? data : dir).string(), cgroups};
    if (result.uses_cgroups())
      cgroup_roots.push_back(result.cgroup_root());
    if (cgroups)
      BOOST_WARN_MESSAGE(result.uses_cgroups(),
                         "this machine gives heaven no cgroups ("
                           << result.without_cgroups()
                           << "): the cgroup run tests the fallback");
    return result;
  }

  /// `sh -c script` in `dir`, in `scope`.
  process_spec sh(std::string script, const process_scope& scope,
                  const fs::path& dir) {
    fs::create_directories(dir);
    return process_spec{{"sh", "-c", std::move(script)},
                        child_env(tmp.path),
                        dir.string(),
                        scope};
  }

  /// Runs `script` in `scope` until it exits.
  exit_info run(std::string script, const process_scope& scope,
                const fs::path& dir) {
    return run_process(sh(std::move(script), scope, dir),
                       std::function<void(log_line)>{}, process_watcher{});
  }
  /// Opens scopes 1 to `n` of `all`, each left with a `sleep 1000` that
  /// outlives the script that started it; their scopes, and the sleepers.
  std::pair<std::vector<process_scope>, std::vector<proc_id>>
  scopes_with_sleepers(process_scopes& all, size_t n) {
    std::vector<process_scope> opened;
    std::vector<proc_id> sleepers;
    for (int64_t id = 1; id <= static_cast<int64_t>(n); ++id) {
      auto dir = tmp.path / std::to_string(id);
      opened.push_back(all.open(id));
      BOOST_REQUIRE(
        run("sleep 1000 >/dev/null 2>&1 & echo $! > pids", opened.back(), dir)
          .code
        == 0);
      sleepers.push_back(wait_pids(dir / "pids", 1).front());
      BOOST_REQUIRE(alive(sleepers.back()));
    }
    return {std::move(opened), std::move(sleepers)};
  }
};

} // namespace scope_test

using namespace scope_test;

BOOST_FIXTURE_TEST_SUITE(scope, scope_fixture)

BOOST_DATA_TEST_CASE_F(scope_fixture,
                       ending_a_scope_ends_all_it_started_and_nothing_else,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  auto one = all.open(1);
  auto two = all.open(2);
  BOOST_TEST(fs::exists(one.record));
  BOOST_TEST(one.cookie == all.instance() + ":1");
  BOOST_TEST(one.cgroup.empty() == !all.uses_cgroups());
  auto info = run(leave_daemons, one, tmp.path / "one");
  BOOST_TEST(info.error == "");
  BOOST_TEST(info.code == 0);
  auto left = wait_pids(tmp.path / "one" / "pids", 4);
  BOOST_REQUIRE_EQUAL(left.size(), 4u);
  info = run("sleep 1000 >/dev/null 2>&1 & echo $! > pids", two,
             tmp.path / "two");
  BOOST_TEST(info.code == 0);
  auto other = wait_pids(tmp.path / "two" / "pids", 1);
  for (auto& p : left) {
    BOOST_TEST(alive(p), "pid " << p.pid);
    // The script exited: what it left was re-parented to the subreaper.
    if (cgroups && all.uses_cgroups()) {
      auto text = proc_text(p.pid, "cgroup");
      BOOST_TEST(text.find("/heaven-" + all.instance() + "/d1\n")
                   != std::string::npos,
                 text);
    }
  }
  auto ended = end_scope(one, std::chrono::milliseconds(300));
  // The four, perhaps with the double fork's first shell if it was slow.
  BOOST_TEST(ended.ended >= 4u);
  BOOST_TEST(ended.ended <= 5u);
  BOOST_TEST(ended.killed == 1u); // The one that ignores SIGTERM.
  BOOST_TEST(ended.left == 0u);
  for (auto& p : left)
    BOOST_TEST(!alive(p), "pid " << p.pid << " outlived its scope");
  // Reaped, not left as zombies: the reaper took the orphans.
  for (auto& p : left)
    BOOST_TEST(eventually([&] { return gone(p); }),
               "pid " << p.pid << " was not reaped");
  BOOST_TEST(alive(other.front()));
  BOOST_TEST(!fs::exists(one.record));
  BOOST_TEST(!fs::exists(one.record + ".ending"));
  if (!one.cgroup.empty())
    BOOST_TEST(!fs::exists(one.cgroup));
  // Nothing more starts in an ended scope.
  info = run("echo never > started", one, tmp.path / "one");
  BOOST_TEST(info.error.find("deployment 1 has ended") != std::string::npos,
             info.error);
  BOOST_TEST(!fs::exists(tmp.path / "one" / "started"));
  // Ending it again finds nothing.
  BOOST_TEST(end_scope(one, std::chrono::milliseconds(300)).ended == 0u);
  auto second = end_scope(two, std::chrono::milliseconds(300));
  BOOST_TEST(second.ended == 1u);
  BOOST_TEST(second.killed == 0u);
  BOOST_TEST(eventually([&] { return gone(other.front()); }));
  BOOST_TEST(all.end_all(std::chrono::milliseconds(300)).ended == 0u);
}

BOOST_DATA_TEST_CASE_F(scope_fixture, ending_a_running_script_ends_its_tree,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  auto scope = all.open(3);
  auto dir = tmp.path / "three";
  // The script keeps running, with a child that clears its environment and
  // leaves the session (found as the script's descendant).
  spawn_process(sys,
                sh(std::string{leave_daemons}
                     + "env -i setsid sleep 1000 & echo $! >> pids\n"
                       "echo $$ >> pids\nwait\n",
                   scope, dir),
                sink, sink);
  auto pids = wait_pids(dir / "pids", 6);
  auto ended = end_scope(scope, std::chrono::milliseconds(300));
  BOOST_TEST(ended.ended >= 6u);
  BOOST_TEST(ended.killed == 1u);
  for (auto& p : pids)
    BOOST_TEST(!alive(p), "pid " << p.pid << " outlived its scope");
  // The script's runner saw it end by SIGTERM.
  BOOST_REQUIRE(rec->wait([&] { return !rec->exits.empty(); }));
  std::lock_guard<std::mutex> guard{rec->mx};
  BOOST_TEST(rec->exits.front().signal == SIGTERM);
}

BOOST_AUTO_TEST_CASE(with_cgroups_even_a_daemon_that_hides_is_ended) {
  auto all = scopes(true);
  if (!all.uses_cgroups()) {
    BOOST_TEST_MESSAGE("skipped: no cgroups here (" << all.without_cgroups()
                                                    << ")");
    return;
  }
  auto scope = all.open(4);
  // No cookie, a session of its own, and its parent gone before the end:
  // only the cgroup still knows it.
  auto info = run("env -i setsid sleep 1000 >/dev/null 2>&1 & "
                  "echo $! > pids",
                  scope, tmp.path / "four");
  BOOST_TEST(info.code == 0);
  auto pids = wait_pids(tmp.path / "four" / "pids", 1);
  BOOST_TEST(alive(pids.front()));
  auto ended = end_scope(scope, std::chrono::milliseconds(300));
  BOOST_TEST(ended.ended == 1u);
  BOOST_TEST(!alive(pids.front()));
}

BOOST_DATA_TEST_CASE_F(scope_fixture, an_empty_scope_ends_at_once,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  // Nothing ever started in it.
  auto idle = all.open(5);
  auto ended = end_scope(idle, std::chrono::seconds(60));
  BOOST_TEST(ended.ended == 0u);
  BOOST_TEST(ended.killed == 0u);
  BOOST_TEST(!fs::exists(idle.record));
  // Everything it started has exited: a minute of grace is not waited for.
  auto done = all.open(6);
  BOOST_TEST(run("true", done, tmp.path / "six").code == 0);
  BOOST_TEST(run("exit 3", done, tmp.path / "six").code == 3);
  ended = end_scope(done, std::chrono::seconds(60));
  BOOST_TEST(ended.ended == 0u);
  BOOST_TEST(ended.killed == 0u);
  BOOST_TEST(!fs::exists(done.record));
  if (!done.cgroup.empty())
    BOOST_TEST(!fs::exists(done.cgroup));
  // No scope at all: nothing to do.
  BOOST_TEST(end_scope(process_scope{}, std::chrono::seconds(60)).ended == 0u);
}

BOOST_AUTO_TEST_CASE(the_reaper_never_takes_an_exit_status) {
  auto all = scopes(false);
  auto scope = all.open(7);
  auto before = orphans_reaped();
  constexpr int threads = 8;
  constexpr int runs = 30;
  std::atomic<int> wrong{0};
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  fs::create_directories(tmp.path / "reap");
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < runs; ++i) {
        auto code = (t * runs + i) % 200 + 1;
        // Each leaves an orphan that exits while others start and end.
        auto info = run_process(
          sh("sleep 0.0" + std::to_string(i % 5) + " >/dev/null & exit "
               + std::to_string(code),
             t % 2 == 0 ? scope : process_scope{}, tmp.path / "reap"),
          std::function<void(log_line)>{}, process_watcher{});
        if (info.code != code || info.signal != 0 || !info.error.empty()) {
          ++wrong;
          errors[t] = "expected " + std::to_string(code) + ", got "
                      + std::to_string(info.code) + " " + info.error;
        }
      }
    });
  for (auto& th : pool)
    th.join();
  BOOST_TEST(wrong.load() == 0);
  for (auto& e : errors)
    BOOST_TEST(e == "");
  // Every orphan was reaped by the reaper (none is left a zombie).
  BOOST_TEST(eventually(
    [&] { return orphans_reaped() - before >= uint64_t{threads * runs}; }));
  BOOST_TEST(end_scope(scope, std::chrono::milliseconds(300)).ended == 0u);
}

BOOST_DATA_TEST_CASE_F(scope_fixture,
                       leftovers_of_a_killed_heaven_are_ended_at_start,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto mode = std::string{cgroups ? "on" : "off"};
  // Two heavens with their own data directories, the same deployment id.
  auto data_b = tmp.path / "data-b";
  auto dir_a = tmp.path / "a";
  auto dir_b = tmp.path / "b";
  fs::create_directories(dir_a);
  fs::create_directories(dir_b);
  auto script = std::string{leave_daemons} + "echo $$ > script\nwait\n";
  auto start = [&](const fs::path& dir, const fs::path& cwd) {
    child_options opts;
    opts.exe = HEAVEN_SCOPE_HELPER;
    opts.argv = {opts.exe, dir.string(), "8", mode, cwd.string(), script};
    opts.env = child_env(tmp.path);
    std::string why;
    auto helper = start_child(opts, why);
    BOOST_REQUIRE_MESSAGE(helper, why);
    return helper;
  };
  auto helper_a = start(data, dir_a);
  auto helper_b = start(data_b, dir_b);
  auto pids_a = wait_pids(dir_a / "pids", 4);
  auto pids_b = wait_pids(dir_b / "pids", 4);
  auto script_a = wait_pids(dir_a / "script", 1).front();
  BOOST_TEST(alive(script_a));
  // heaven A is killed: its script dies with it (the parent death signal),
  // what the script left does not.
  ::kill(helper_a->pid(), SIGKILL);
  BOOST_TEST(WTERMSIG(helper_a->wait()) == SIGKILL);
  BOOST_TEST(eventually([&] { return !alive(script_a); }));
  for (auto& p : pids_a)
    BOOST_TEST(alive(p), "pid " << p.pid);
  // The next heaven of A's data directory ends them, and says whose they
  // were.
  auto fresh = scopes(cgroups);
  auto ended = fresh.end_leftovers(std::chrono::milliseconds(300));
  BOOST_REQUIRE(ended.count(8) == 1);
  BOOST_TEST(ended[8].ended >= 4u);
  BOOST_TEST(ended[8].killed == 1u);
  BOOST_TEST(ended.size() == 1u);
  for (auto& p : pids_a)
    BOOST_TEST(!alive(p), "pid " << p.pid << " outlived its heaven");
  BOOST_TEST(fs::is_empty(data / "scopes"));
  // B's heaven runs on, untouched.
  for (auto& p : pids_b)
    BOOST_TEST(alive(p), "pid " << p.pid << " of another heaven");
  // Nothing is left for a second start.
  BOOST_TEST(fresh.end_leftovers(std::chrono::milliseconds(300))[8].ended
             == 0u);
  // B is killed too and its leftovers ended by its own next start.
  ::kill(helper_b->pid(), SIGKILL);
  helper_b->wait();
  auto ended_b
    = scopes(cgroups, data_b).end_leftovers(std::chrono::milliseconds(300));
  BOOST_TEST(ended_b[8].ended >= 4u);
  for (auto& p : pids_b)
    BOOST_TEST(!alive(p), "pid " << p.pid);
  BOOST_TEST(fresh.end_all(std::chrono::milliseconds(300)).ended == 0u);
}

BOOST_AUTO_TEST_CASE(a_recorded_group_whose_pid_was_reused_is_not_killed) {
  auto all = scopes(false);
  // An unrelated process now holds the number a record names (a session
  // and process group of its own, no cookie).
  child_options opts;
  opts.exe = "/bin/sleep";
  opts.argv = {"sleep", "1000"};
  opts.env = child_env(tmp.path);
  std::string why;
  auto unrelated = start_child(opts, why);
  BOOST_REQUIRE_MESSAGE(unrelated, why);
  proc_id p{unrelated->pid(), unrelated->start_time()};
  auto write_record = [&](uint64_t start) {
    write_file(data / "scopes" / "9", "scope " + all.instance() + ":9\ngroup "
                                        + std::to_string(p.pid) + " "
                                        + std::to_string(start) + "\n");
  };
  write_record(p.start + 1);
  auto ended = all.end_leftovers(std::chrono::milliseconds(300));
  BOOST_TEST(ended[9].ended == 0u);
  BOOST_TEST(alive(p));
  BOOST_TEST(!fs::exists(data / "scopes" / "9"));
  // The same record with the right start time: the group is the scope's.
  write_record(p.start);
  ended = all.end_leftovers(std::chrono::milliseconds(300));
  BOOST_TEST(ended[9].ended == 1u);
  BOOST_TEST(!alive(p));
  BOOST_TEST(WTERMSIG(unrelated->wait()) == SIGTERM);
  // A recorded session whose leader is gone (so its number could have been
  // reused meanwhile): a member without the scope's cookie is not taken.
  opts.exe = "/bin/sh";
  opts.argv = {"sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $! > member"};
  opts.cwd = tmp.path.string();
  auto leader = start_child(opts, why);
  BOOST_REQUIRE_MESSAGE(leader, why);
  proc_id gone_leader{leader->pid(), leader->start_time()};
  BOOST_TEST(leader->wait() == 0);
  auto member = wait_pids(tmp.path / "member", 1).front();
  p = gone_leader;
  write_record(gone_leader.start);
  ended = all.end_leftovers(std::chrono::milliseconds(300));
  BOOST_TEST(ended[9].ended == 0u);
  BOOST_TEST(alive(member));
  ::kill(member.pid, SIGKILL);
  BOOST_TEST(eventually([&] { return gone(member); }));
}

BOOST_DATA_TEST_CASE_F(scope_fixture, stopping_ends_every_open_scope,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  std::vector<proc_id> pids;
  for (int64_t id : {10, 11}) {
    auto dir = tmp.path / std::to_string(id);
    auto scope = all.open(id);
    BOOST_TEST(run(leave_daemons, scope, dir).code == 0);
    for (auto& p : wait_pids(dir / "pids", 4))
      pids.push_back(p);
  }
  auto idle = all.open(12);
  auto total = all.end_all(std::chrono::milliseconds(300));
  BOOST_TEST(total.ended >= 8u);
  BOOST_TEST(total.killed == 2u);
  for (auto& p : pids)
    BOOST_TEST(!alive(p), "pid " << p.pid);
  BOOST_TEST(fs::is_empty(data / "scopes"));
  if (all.uses_cgroups())
    BOOST_TEST(!fs::exists(all.cgroup_root()));
  // A scope opened after a stop still works (its cgroup is made again).
  auto again = all.open(13);
  BOOST_TEST(run("true", again, tmp.path / "13").code == 0);
  std::promise<scope_ending> done;
  end_scope_async(sys, again, std::chrono::milliseconds(300),
                  [&](scope_ending e) { done.set_value(e); });
  auto future = done.get_future();
  BOOST_REQUIRE(future.wait_for(std::chrono::seconds(30))
                == std::future_status::ready);
  BOOST_TEST(future.get().ended == 0u);
  BOOST_TEST(!fs::exists(again.record));
  (void)idle;
}

BOOST_DATA_TEST_CASE_F(scope_fixture,
                       scopes_nothing_ran_in_end_without_a_thread,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  constexpr size_t n = 200;
  std::vector<process_scope> opened;
  for (int64_t id = 1; id <= static_cast<int64_t>(n); ++id)
    opened.push_back(all.open(id));
  auto before = threads_now();
  auto peak = before;
  std::atomic<size_t> done{0};
  std::atomic<size_t> counted{0};
  for (auto& s : opened) {
    // A grace period an ending that waited would not sit out in a test.
    end_scope_async(sys, s, std::chrono::seconds(600), [&](scope_ending e) {
      counted += e.ended + e.killed + e.left;
      ++done;
    });
    peak = std::max(peak, threads_now());
  }
  // Ended here and now: every callback ran before end_scope_async returned.
  BOOST_TEST(done.load() == n);
  BOOST_TEST(counted.load() == 0u);
  BOOST_TEST(peak <= before + scope_ending_threads(),
             "threads: " << before << " before, " << peak << " at most");
  BOOST_TEST(fs::is_empty(data / "scopes"));
  for (auto& s : opened)
    if (!s.cgroup.empty())
      BOOST_TEST(!fs::exists(s.cgroup), s.cgroup);
}

BOOST_DATA_TEST_CASE_F(scope_fixture,
                       scopes_with_processes_end_on_a_bounded_pool,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  constexpr size_t n = 50;
  auto [opened, sleepers] = scopes_with_sleepers(all, n);
  auto before = threads_now();
  auto peak = before;
  std::mutex mx;
  std::vector<scope_ending> endings(n + 1);
  std::vector<int> calls(n + 1, 0);
  std::atomic<size_t> done{0};
  for (auto& s : opened) {
    end_scope_async(sys, s, std::chrono::seconds(600),
                    [&, id = s.id](scope_ending e) {
                      {
                        std::lock_guard guard{mx};
                        endings[id] = e;
                        ++calls[id];
                      }
                      ++done;
                    });
    peak = std::max(peak, threads_now());
  }
  BOOST_REQUIRE_MESSAGE(eventually(
                          [&] {
                            peak = std::max(peak, threads_now());
                            return done.load() == n;
                          },
                          std::chrono::seconds(120)),
                        done.load() << " of " << n << " scopes ended");
  BOOST_TEST(peak <= before + scope_ending_threads(),
             "threads: " << before << " before, " << peak << " at most");
  std::lock_guard guard{mx};
  for (size_t id = 1; id <= n; ++id) {
    BOOST_TEST(calls[id] == 1, "scope " << id);
    // Its sleep, ended by SIGTERM.
    BOOST_TEST(endings[id].ended == 1u, "scope " << id);
    BOOST_TEST(endings[id].killed == 0u, "scope " << id);
    BOOST_TEST(endings[id].left == 0u, "scope " << id);
  }
  for (auto& p : sleepers)
    BOOST_TEST(!alive(p), "pid " << p.pid);
  BOOST_TEST(fs::is_empty(data / "scopes"));
  for (auto& s : opened)
    if (!s.cgroup.empty())
      BOOST_TEST(!fs::exists(s.cgroup), s.cgroup);
}

BOOST_DATA_TEST_CASE_F(scope_fixture, an_ending_waits_for_a_start_on_the_pool,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  auto scope = all.open(1);
  // A start under way holds the record shared until it is recorded.
  int fd = ::open(scope.record.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  BOOST_REQUIRE(fd >= 0);
  BOOST_REQUIRE(::flock(fd, LOCK_SH) == 0);
  std::promise<scope_ending> done;
  end_scope_async(sys, scope, std::chrono::seconds(600),
                  [&](scope_ending e) { done.set_value(e); });
  // Not ended here: the caller never waits for the start.
  auto future = done.get_future();
  BOOST_TEST(
    (future.wait_for(std::chrono::seconds(0)) == std::future_status::timeout));
  BOOST_TEST(fs::exists(scope.record));
  ::close(fd);
  BOOST_REQUIRE(future.wait_for(std::chrono::seconds(30))
                == std::future_status::ready);
  BOOST_TEST(future.get().ended == 0u);
  BOOST_TEST(fs::is_empty(data / "scopes"));
  if (!scope.cgroup.empty())
    BOOST_TEST(!fs::exists(scope.cgroup));
}

BOOST_DATA_TEST_CASE_F(scope_fixture, the_systems_end_waits_for_queued_endings,
                       bdata::make({true, false}), cgroups) {
  BOOST_TEST_MESSAGE("mode: " << mode_name(cgroups));
  auto all = scopes(cgroups);
  constexpr size_t n = 10;
  auto [opened, sleepers] = scopes_with_sleepers(all, n);
  std::atomic<size_t> done{0};
  std::atomic<size_t> ended{0};
  {
    caf::actor_system_config own_cfg;
    caf::actor_system own{own_cfg};
    for (auto& s : opened)
      end_scope_async(own, s, std::chrono::seconds(600), [&](scope_ending e) {
        ended += e.ended;
        ++done;
      });
  }
  // The system is gone: it waited for every ending.
  BOOST_TEST(done.load() == n);
  BOOST_TEST(ended.load() == n);
  for (auto& p : sleepers)
    BOOST_TEST(!alive(p), "pid " << p.pid);
  BOOST_TEST(fs::is_empty(data / "scopes"));
}

BOOST_AUTO_TEST_SUITE_END()
