// spawn_process and heaven's process reactor: many children without a
// thread each, output in batches, and a child that writes faster than its
// log is written held to the log's speed.
#include "actors/process.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;

namespace {

/// The threads of this process.
size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry :
       std::filesystem::directory_iterator{"/proc/self/task"})
    ++n;
  return n;
}

/// This process's resident memory in KiB (VmRSS).
size_t rss_kib() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoul(line.substr(6));
  return 0;
}

/// What the slow sink saw.
struct tally {
  std::mutex mx;
  size_t lines = 0;
  size_t batches = 0;
  /// Lines that were not the next number, or not 100 digits.
  size_t wrong = 0;
  size_t max_rss_kib = 0;
};

/// An output sink that takes its time over every batch (as a slow disk
/// would) and checks that lines n are the numbers 1..n, 100 digits each.
output_sink::behavior_type slow_sink(output_sink::pointer,
                                     std::shared_ptr<tally> t) {
  return {
    [t](log_atom, std::vector<log_line>& lines) {
      std::lock_guard guard{t->mx};
      for (auto& line : lines) {
        ++t->lines;
        if (line.source != stream::out || line.text.size() != 100
            || std::stoull(line.text) != t->lines)
          ++t->wrong;
      }
      if (++t->batches % 16 == 0)
        t->max_rss_kib = std::max(t->max_rss_kib, rss_kib());
      ::usleep(2000);
    },
  };
}

struct reactor_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  recorder_actor sink = sys.spawn(recorder, rec);
  temp_dir tmp;

  reactor_fixture() {
    become_subreaper();
  }

  ~reactor_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  process_spec sh(std::string script) {
    return process_spec{{"sh", "-c", std::move(script)},
                        child_env(tmp.path),
                        tmp.path.string(),
                        {}};
  }

  size_t exits() {
    std::lock_guard guard{rec->mx};
    return rec->exits.size();
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(reactor, reactor_fixture)

BOOST_AUTO_TEST_CASE(lines_of_both_streams_arrive_in_order_then_the_exit) {
  spawn_process(sys,
                sh("echo one; echo uno >&2; echo two; echo dos >&2;"
                   " printf three; printf tres >&2; exit 3"),
                sink, sink);
  BOOST_REQUIRE(rec->wait([&] { return !rec->exits.empty(); }));
  // The exit comes after every line was answered: nothing left to wait for.
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{"one", "two", "three"}));
  BOOST_TEST(rec->texts(stream::err)
             == (std::vector<std::string>{"uno", "dos", "tres"}));
  std::lock_guard guard{rec->mx};
  BOOST_TEST(rec->exits.front().code == 3);
  BOOST_TEST(rec->exits.front().error == "");
  BOOST_REQUIRE_EQUAL(rec->started.size(), 1u);
  BOOST_TEST(rec->started.front() > 0);
}

BOOST_AUTO_TEST_CASE(a_child_that_cannot_start_only_exits) {
  auto spec = sh("true");
  spec.argv = {"heaven-no-such-command"};
  spawn_process(sys, spec, sink, sink);
  BOOST_REQUIRE(rec->wait([&] { return !rec->exits.empty(); }));
  std::lock_guard guard{rec->mx};
  BOOST_TEST(rec->exits.front().error
             == "cannot run heaven-no-such-command: command not found");
  BOOST_TEST(rec->started.empty());
}

BOOST_AUTO_TEST_CASE(ten_thousand_lines_arrive_in_few_batches) {
  spawn_process(sys, sh("seq 1 10000"), sink, sink);
  BOOST_REQUIRE(rec->wait([&] { return !rec->exits.empty(); }));
  auto out = rec->texts(stream::out);
  BOOST_REQUIRE_EQUAL(out.size(), 10000u);
  for (size_t i = 0; i < out.size(); ++i)
    BOOST_REQUIRE(out[i] == std::to_string(i + 1));
  std::lock_guard guard{rec->mx};
  BOOST_TEST(rec->exits.front().code == 0);
  BOOST_TEST(rec->batches >= 1u);
  BOOST_TEST(rec->batches < 1000u, rec->batches << " batches");
}

BOOST_AUTO_TEST_CASE(two_hundred_children_do_not_cost_a_thread_each) {
  constexpr size_t n = 200;
  // The reactor's thread and CAF's exist before the count.
  spawn_process(sys, sh("exit 0"), sink, sink);
  BOOST_REQUIRE(rec->wait([&] { return rec->exits.size() == 1; }));
  auto before = thread_count();
  for (size_t i = 0; i < n; ++i)
    spawn_process(sys, sh("exec sleep 1000"), sink, sink);
  BOOST_REQUIRE(rec->wait([&] { return rec->started.size() == n + 1; },
                          std::chrono::seconds(120)));
  auto during = thread_count();
  BOOST_TEST_MESSAGE(n << " children running: " << during << " threads, "
                       << before << " before");
  BOOST_TEST(during <= before + 16);
  std::vector<int32_t> pids;
  {
    std::lock_guard guard{rec->mx};
    pids.assign(rec->started.begin() + 1, rec->started.end());
  }
  for (auto pid : pids) {
    BOOST_TEST(group_alive(pid));
    kill_group(pid, SIGTERM);
  }
  BOOST_REQUIRE(rec->wait([&] { return rec->exits.size() == n + 1; },
                          std::chrono::seconds(120)));
  std::lock_guard guard{rec->mx};
  size_t terminated = 0;
  for (auto& x : rec->exits)
    terminated += x.signal == SIGTERM ? 1 : 0;
  BOOST_TEST(terminated == n);
}

BOOST_AUTO_TEST_CASE(a_fast_writer_runs_at_the_speed_of_a_slow_log) {
  // 2,000,000 lines of 100 digits: 202 MB, written as fast as seq can, to
  // a sink that sleeps over every batch.
  constexpr size_t n = 2000000;
  auto t = std::make_shared<tally>();
  auto slow = sys.spawn(slow_sink, t);
  auto base = rss_kib();
  spawn_process(sys, sh("seq -f '%0100.0f' 1 " + std::to_string(n)), slow,
                sink);
  BOOST_REQUIRE(
    rec->wait([&] { return !rec->exits.empty(); }, std::chrono::minutes(5)));
  {
    std::lock_guard guard{rec->mx};
    BOOST_TEST(rec->exits.front().code == 0);
    BOOST_TEST(rec->lines.empty());
  }
  // The owner hears the exit only once every batch is answered.
  std::lock_guard guard{t->mx};
  BOOST_TEST(t->lines == n);
  BOOST_TEST(t->wrong == 0u);
  BOOST_TEST_MESSAGE("RSS " << base << " KiB before, at most " << t->max_rss_kib
                            << " KiB while writing, " << t->batches
                            << " batches");
  BOOST_TEST(t->max_rss_kib > 0u);
  BOOST_TEST(t->max_rss_kib < base + 64 * 1024);
  caf::anon_send_exit(slow, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(output_to_a_sink_that_is_gone_does_not_stop_the_child) {
  // 10 MB, far more than the window and the pipe: the child finishes only
  // if the batches the dead sink never answers free it all the same.
  auto t = std::make_shared<tally>();
  auto gone = sys.spawn(slow_sink, t);
  caf::anon_send_exit(gone, caf::exit_reason::user_shutdown);
  spawn_process(sys, sh("seq -f '%0100.0f' 1 100000"), gone, sink);
  BOOST_REQUIRE(
    rec->wait([&] { return !rec->exits.empty(); }, std::chrono::minutes(2)));
  std::lock_guard guard{rec->mx};
  BOOST_TEST(rec->exits.front().code == 0);
  BOOST_TEST(rec->exits.front().signal == 0);
}

BOOST_AUTO_TEST_SUITE_END()
