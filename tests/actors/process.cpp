#include "actors/process.hpp"

#include <csignal>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;

namespace {

struct process_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  recorder_actor sink = sys.spawn(recorder, rec);
  temp_dir tmp;

  process_fixture() {
    become_subreaper();
  }

  ~process_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  process_spec sh(std::string script) {
    return process_spec{{"sh", "-c", std::move(script)},
                        child_env(tmp.path),
                        tmp.path.string(),
                        {}};
  }

  /// Waits until the sink has `n` lines.
  bool wait_lines(size_t n) {
    return rec->wait([&] { return rec->lines.size() >= n; });
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(process, process_fixture)

BOOST_AUTO_TEST_CASE(lines_of_both_streams_arrive_in_order) {
  auto info = run_process(
    sh("echo one; echo uno >&2; echo two; echo dos >&2; printf three;"
       " printf tres >&2; exit 0"),
    sink, sink);
  BOOST_TEST(info.error == "");
  BOOST_TEST(info.code == 0);
  BOOST_TEST(info.signal == 0);
  BOOST_REQUIRE(wait_lines(6));
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{"one", "two", "three"}));
  BOOST_TEST(rec->texts(stream::err)
             == (std::vector<std::string>{"uno", "dos", "tres"}));
  BOOST_REQUIRE(rec->wait([&] { return rec->started.size() == 1; }));
}

BOOST_AUTO_TEST_CASE(runs_in_cwd_with_exactly_the_given_environment) {
  auto spec = sh("pwd; echo \"x=$HEAVEN_X\"; echo \"y=${HEAVEN_Y-unset}\"");
  spec.env.emplace_back("HEAVEN_X", "42");
  ::setenv("HEAVEN_Y", "leaked", 1);
  auto info = run_process(spec, sink, process_watcher{});
  ::unsetenv("HEAVEN_Y");
  BOOST_TEST(info.code == 0);
  BOOST_REQUIRE(wait_lines(3));
  BOOST_TEST(
    rec->texts(stream::out)
    == (std::vector<std::string>{tmp.path.string(), "x=42", "y=unset"}));
}

BOOST_AUTO_TEST_CASE(megabytes_on_stderr_while_stdout_writes_too) {
  // 40000 lines of 100 bytes on stderr (4 MB) interleaved with stdout: a
  // reader that blocks on one pipe would deadlock here.
  std::vector<std::string> out;
  size_t err_lines = 0;
  bool err_ok = true;
  auto on_line = [&](log_line line) {
    if (line.source == stream::out) {
      out.push_back(std::move(line.text));
    } else {
      ++err_lines;
      err_ok = err_ok && line.text == std::string(100, 'e');
    }
  };
  auto info = run_process(
    sh("yes $(printf 'e%.0s' $(seq 100)) | head -n 40000 >&2 &"
       " seq 1 5000; wait"),
    on_line, process_watcher{});
  BOOST_TEST(info.code == 0);
  BOOST_TEST(err_lines == 40000u);
  BOOST_TEST(err_ok);
  BOOST_REQUIRE_EQUAL(out.size(), 5000u);
  BOOST_TEST(out.front() == "1");
  BOOST_TEST(out.back() == "5000");
}

BOOST_AUTO_TEST_CASE(many_lines_through_the_actor_sink) {
  auto info = run_process(sh("seq 1 20000; seq 1 20000 >&2"), sink,
                          process_watcher{});
  BOOST_TEST(info.code == 0);
  BOOST_REQUIRE(wait_lines(40000));
  auto out = rec->texts(stream::out);
  auto err = rec->texts(stream::err);
  BOOST_REQUIRE_EQUAL(out.size(), 20000u);
  BOOST_REQUIRE_EQUAL(err.size(), 20000u);
  for (size_t i = 0; i < out.size(); ++i)
    BOOST_REQUIRE(out[i] == std::to_string(i + 1));
  BOOST_TEST(err.back() == "20000");
}

BOOST_AUTO_TEST_CASE(very_long_lines_are_cut_at_64_kib) {
  std::vector<std::string> out;
  auto info = run_process(
    sh("head -c 200000 /dev/zero | tr '\\0' a; echo; echo short;"
       " head -c 70000 /dev/zero | tr '\\0' b"),
    [&](log_line line) { out.push_back(std::move(line.text)); },
    process_watcher{});
  BOOST_TEST(info.code == 0);
  BOOST_REQUIRE_EQUAL(out.size(), 7u);
  BOOST_TEST(out[0].size() == 65536u);
  BOOST_TEST(out[1].size() == 65536u);
  BOOST_TEST(out[2].size() == 65536u);
  BOOST_TEST(out[3].size() == 200000u - 3 * 65536u);
  BOOST_TEST(out[3].find_first_not_of('a') == std::string::npos);
  BOOST_TEST(out[4] == "short");
  BOOST_TEST(out[5].size() == 65536u);
  BOOST_TEST(out[6].size() == 70000u - 65536u);
  BOOST_TEST(out[6].find_first_not_of('b') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(exit_status_and_signal) {
  auto info = run_process(sh("exit 3"), sink, process_watcher{});
  BOOST_TEST(info.code == 3);
  BOOST_TEST(info.signal == 0);
  BOOST_TEST(info.error == "");
  info = run_process(sh("kill -TERM $$"), sink, process_watcher{});
  BOOST_TEST(info.signal == SIGTERM);
  BOOST_TEST(info.error == "");
}

BOOST_AUTO_TEST_CASE(exec_failures_are_reported_as_errors) {
  auto spec = sh("");
  spec.argv = {"/nonexistent/heaven-prog"};
  auto info = run_process(spec, sink, sink);
  BOOST_TEST(info.error.find("/nonexistent/heaven-prog") != std::string::npos,
             info.error);
  BOOST_TEST(info.error.find("No such file") != std::string::npos, info.error);
  spec.argv = {"heaven-no-such-command"};
  info = run_process(spec, sink, sink);
  BOOST_TEST(info.error
             == "cannot run heaven-no-such-command: command not "
                "found");
  // Found on the child's PATH only: our own PATH does not count.
  write_file(tmp.path / "bin" / "heaven-hello", "#!/bin/sh\necho hello\n",
             true);
  spec.env = {{"PATH", (tmp.path / "bin").string() + ":/usr/bin:/bin"}};
  spec.argv = {"heaven-hello"};
  info = run_process(spec, sink, sink);
  BOOST_TEST(info.error == "");
  BOOST_TEST(info.code == 0);
  BOOST_REQUIRE(wait_lines(1));
  BOOST_TEST(rec->texts(stream::out) == std::vector<std::string>{"hello"});
  write_file(tmp.path / "plain.sh", "#!/bin/sh\necho no\n");
  spec.argv = {(tmp.path / "plain.sh").string()};
  info = run_process(spec, sink, sink);
  BOOST_TEST(info.error.find("Permission denied") != std::string::npos,
             info.error);
  spec.argv = {"sh", "-c", "true"};
  spec.cwd = (tmp.path / "missing").string();
  info = run_process(spec, sink, sink);
  BOOST_TEST(info.error.find("missing") != std::string::npos, info.error);
}

BOOST_AUTO_TEST_CASE(killing_the_group_ends_children_and_the_run) {
  spawn_process(sys, sh("sleep 1000 & sleep 1000 & echo ready; wait"), sink,
                sink);
  BOOST_REQUIRE(rec->wait(
    [&] { return !rec->started.empty() && rec->has_line_locked("ready"); }));
  int32_t pid = 0;
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    pid = rec->started.front();
  }
  BOOST_TEST(::getpgid(pid) == pid);
  BOOST_TEST(::getsid(pid) == pid);
  BOOST_TEST(group_alive(pid));
  kill_group(pid, SIGTERM);
  BOOST_REQUIRE(rec->wait([&] { return !rec->exits.empty(); }));
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->exits.front().signal == SIGTERM);
  }
  BOOST_TEST(wait_group_gone(pid));
  // A group that is gone is no error.
  kill_group(pid, SIGKILL);
  BOOST_TEST(!group_alive(pid));
}

BOOST_AUTO_TEST_CASE(a_grandchild_holding_the_pipes_does_not_hold_the_run) {
  auto info = run_process(sh("sh -c 'sleep 1000' & echo done; exit 4"), sink,
                          sink);
  BOOST_TEST(info.code == 4);
  BOOST_REQUIRE(wait_lines(1));
  BOOST_TEST(rec->texts(stream::out) == std::vector<std::string>{"done"});
  int32_t pid = 0;
  BOOST_REQUIRE(rec->wait([&] { return !rec->started.empty(); }));
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    pid = rec->started.front();
  }
  BOOST_TEST(group_alive(pid));
  kill_group(pid, SIGKILL);
  BOOST_TEST(wait_group_gone(pid));
}

BOOST_AUTO_TEST_SUITE_END()
