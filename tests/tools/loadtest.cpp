// `heaven loadtest`, the real binary run as a child process: against a
// recording HTTP stand-in (what it sends, exactly how many, signed how),
// a stand-in that stalls, a port nobody listens on, a heaven of its own,
// and bad usage. Counts are asserted, never the rate or a time.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/delivery.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// A `heaven loadtest` child process; its stdout and stderr go to files.
/// One a test leaves running (a failed check) is killed and reaped.
struct loadtest_run {
  pid_t pid = -1;
  fs::path out, err;
  int status = -1;

  loadtest_run() = default;
  loadtest_run(loadtest_run&& other) noexcept
    : pid{std::exchange(other.pid, -1)}, out{std::move(other.out)},
      err{std::move(other.err)}, status{other.status} {
  }
  loadtest_run& operator=(loadtest_run&&) = delete;
  ~loadtest_run() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

  /// Waits for the exit; returns the exit status (-1 for a signal).
  int wait() {
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return status;
  }
  std::string stdout_text() const {
    return read_text(out);
  }
  std::string stderr_text() const {
    return read_text(err);
  }
  json summary() const {
    return json::parse(stdout_text());
  }
};

/// Starts `heaven loadtest args...` with this process's environment minus
/// GITHUB_WEBHOOK_SECRET, plus `env`.
loadtest_run start(const std::vector<std::string>& args,
                   const std::vector<std::string>& env = {}) {
  static int counter = 0;
  auto dir = make_temp_dir("loadtest");
  loadtest_run run;
  run.out = dir / ("out" + std::to_string(++counter));
  run.err = dir / ("err" + std::to_string(counter));
  std::vector<std::string> argv_s = {HEAVEN_BINARY, "loadtest"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (auto p = environ; p && *p; ++p)
    if (std::string{*p}.rfind("GITHUB_WEBHOOK_SECRET=", 0) != 0)
      env_s.emplace_back(*p);
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> argv, envp;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  auto out = run.out.string(), err = run.err.string();
  run.pid = fork();
  BOOST_REQUIRE(run.pid >= 0);
  if (run.pid == 0) {
    freopen(out.c_str(), "w", stdout);
    freopen(err.c_str(), "w", stderr);
    execve(HEAVEN_BINARY, argv.data(), envp.data());
    _exit(127);
  }
  return run;
}

loadtest_run run_to_end(const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {}) {
  auto run = start(args, env);
  run.wait();
  return run;
}

/// /proc/<pid>/<name> with NULs as spaces.
std::string proc_text(pid_t pid, const std::string& name) {
  auto text = read_text("/proc/" + std::to_string(pid) + "/" + name);
  for (auto& c : text)
    if (c == '\0')
      c = ' ';
  return text;
}

/// Waits until `pid` runs the heaven binary (it has exec'd) and its
/// arguments are in place: the kernel points /proc/<pid>/exe at the new
/// binary a moment before it lays out the new command line, so a cmdline
/// read in between is empty.
void wait_exec(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
    if (!ec && fs::equivalent(exe, HEAVEN_BINARY, ec)
        && proc_text(pid, "cmdline").find("loadtest") != std::string::npos)
      return;
    std::this_thread::sleep_for(10ms);
  }
  BOOST_FAIL("heaven loadtest did not start");
}

std::string write_secret(const std::string& secret) {
  auto path = make_temp_dir("loadtest-secret") / "secret";
  std::ofstream{path} << secret << "\n";
  return path.string();
}

/// The value of `name` in the NAME=value NUL-separated text of `environ`.
std::string environ_value(const std::string& environ_text,
                          const std::string& name) {
  std::string key = name + "=";
  std::size_t pos = 0;
  while (pos < environ_text.size()) {
    auto end = environ_text.find('\0', pos);
    if (end == std::string::npos)
      end = environ_text.size();
    auto entry = environ_text.substr(pos, end - pos);
    if (entry.rfind(key, 0) == 0)
      return entry.substr(key.size());
    pos = end + 1;
  }
  return {};
}

} // namespace

BOOST_AUTO_TEST_SUITE(loadtest)

BOOST_AUTO_TEST_CASE(open_loop_sends_rate_times_duration_signed_events) {
  http_stub stub;
  const std::string secret = "loadtest secret 0f5e";
  auto file = write_secret(secret);
  auto run = start({"--target", stub.base_url() + "events", "--event",
                    "deployment_status", "--rate", "200/s", "--duration", "2s",
                    "--json", "--webhook-secret-file", file});
  wait_exec(run.pid);
  auto cmdline = proc_text(run.pid, "cmdline");
  BOOST_CHECK(cmdline.find("--webhook-secret-file") != std::string::npos);
  BOOST_CHECK(cmdline.find(secret) == std::string::npos);
  run.wait();
  BOOST_REQUIRE(stub.wait_idle());
  auto s = run.summary();
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  BOOST_CHECK_EQUAL(s["sent"], 400);
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 400}}));
  BOOST_CHECK_EQUAL(s["errors"], 0);
  BOOST_CHECK_EQUAL(s["answered"], 400);
  auto reqs = stub.requests();
  BOOST_REQUIRE_EQUAL(reqs.size(), 400u);
  std::set<std::string> deliveries;
  std::set<int64_t> deployments;
  for (auto& r : reqs) {
    BOOST_CHECK_EQUAL(r.method, "POST");
    BOOST_CHECK_EQUAL(r.target, "/events");
    BOOST_CHECK_EQUAL(r.header("x-github-event"), "deployment_status");
    BOOST_CHECK(
      signature_valid(secret, r.body, r.header("x-hub-signature-256")));
    BOOST_CHECK(!signature_valid("another secret", r.body,
                                 r.header("x-hub-signature-256")));
    deliveries.insert(r.header("x-github-delivery"));
    auto body = json::parse(r.body);
    deployments.insert(body["deployment"]["id"].get<int64_t>());
    BOOST_CHECK_EQUAL(body["deployment_status"]["state"], "success");
  }
  BOOST_CHECK_EQUAL(deliveries.size(), 400u);
  BOOST_CHECK_EQUAL(deployments.size(), 400u);
}

BOOST_AUTO_TEST_CASE(several_targets_share_the_connections_and_requests) {
  http_stub first, second, third;
  const std::string secret = "loadtest secret 7a21";
  auto file = write_secret(secret);
  auto run = run_to_end({"--target", first.base_url() + "events", "--target",
                         second.base_url() + "events", "--target",
                         third.base_url() + "events", "--rate", "300/s",
                         "--duration", "1s", "--connections", "30", "--json",
                         "--webhook-secret-file", file});
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  BOOST_REQUIRE_EQUAL(run.status, 0);
  auto s = run.summary();
  BOOST_CHECK_EQUAL(s["sent"], 300);
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 300}}));
  std::set<std::string> deliveries;
  std::size_t total = 0;
  for (auto* stub : {&first, &second, &third}) {
    BOOST_REQUIRE(stub->wait_idle());
    // Connection i goes to target i % 3: ten each, opened before the run.
    BOOST_CHECK_EQUAL(stub->connections(), 10u);
    auto reqs = stub->requests();
    // Requests go to each target in turn while it has an idle connection:
    // each gets some (how many depends on how fast each stub answers on a
    // shared machine, so no share is asserted).
    BOOST_CHECK_GT(reqs.size(), 0u);
    total += reqs.size();
    for (auto& r : reqs) {
      BOOST_CHECK(
        signature_valid(secret, r.body, r.header("x-hub-signature-256")));
      deliveries.insert(r.header("x-github-delivery"));
    }
  }
  BOOST_CHECK_EQUAL(total, 300u);
  BOOST_CHECK_EQUAL(deliveries.size(), 300u);
}

BOOST_AUTO_TEST_CASE(each_kind_and_the_mix_send_their_events) {
  http_stub stub;
  const std::string secret = "mix secret";
  auto run = run_to_end({"--target", stub.base_url() + "events", "--event",
                         "mix", "--rate", "100/s", "--duration", "1s",
                         "--json"},
                        {"GITHUB_WEBHOOK_SECRET=" + secret});
  BOOST_REQUIRE(stub.wait_idle());
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  BOOST_CHECK_EQUAL(run.summary()["sent"], 100);
  std::map<std::string, int> kinds;
  for (auto& r : stub.requests()) {
    ++kinds[r.header("x-github-event")];
    BOOST_CHECK(
      signature_valid(secret, r.body, r.header("x-hub-signature-256")));
  }
  BOOST_CHECK((kinds
               == std::map<std::string, int>{{"deployment", 25},
                                             {"deployment_status", 25},
                                             {"ping", 25},
                                             {"status", 25}}));
}

BOOST_AUTO_TEST_CASE(stalled_answers_show_in_the_top_percentiles) {
  http_stub stub;
  std::atomic<int> seen{0};
  // Every tenth request is answered after a second.
  stub.respond_with([&](const recorded_request&) {
    if (++seen % 10 == 0)
      std::this_thread::sleep_for(1s);
    return stub_response{};
  });
  auto run = run_to_end({"--target", stub.base_url() + "events", "--rate",
                         "50/s", "--duration", "2s", "--json"},
                        {"GITHUB_WEBHOOK_SECRET=s"});
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  auto s = run.summary();
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 100}}));
  BOOST_CHECK_GE(s["latency_ms"]["max"].get<double>(), 1000.0);
  BOOST_CHECK_GE(s["latency_ms"]["p99"].get<double>(), 1000.0);
  BOOST_CHECK_GE(s["latency_ms"]["p9999"].get<double>(), 1000.0);
}

BOOST_AUTO_TEST_CASE(chunked_answers_are_read_to_their_end) {
  http_stub stub;
  stub.respond_with([](const recorded_request&) {
    stub_response res;
    res.stream = [](const chunk_writer& write) {
      write("{\"status\":");
      write("\"ok\"}");
    };
    return res;
  });
  auto run = run_to_end({"--target", stub.base_url() + "events", "--rate",
                         "50/s", "--duration", "1s", "--connections", "4",
                         "--json"},
                        {"GITHUB_WEBHOOK_SECRET=s"});
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  auto s = run.summary();
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 50}}));
  BOOST_CHECK_EQUAL(s["errors"], 0);
  BOOST_REQUIRE(stub.wait_idle());
  BOOST_CHECK_EQUAL(stub.requests().size(), 50u);
}

BOOST_AUTO_TEST_CASE(a_target_that_is_down_fails_the_run) {
  // Bound and not listening: the port refuses, and nobody else takes it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE_EQUAL(
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto port = std::to_string(ntohs(addr.sin_port));
  auto run = run_to_end({"--target", "http://127.0.0.1:" + port + "/events",
                         "--rate", "10/s", "--duration", "1s", "--json"},
                        {"GITHUB_WEBHOOK_SECRET=s"});
  close(fd);
  BOOST_CHECK_EQUAL(run.status, 1);
  auto err = run.stderr_text();
  BOOST_CHECK_MESSAGE(
    err.find("cannot connect to 127.0.0.1:" + port + ": Connection refused")
      != std::string::npos,
    err);
  BOOST_CHECK_EQUAL(run.stdout_text(), "");
}

/// The `heaven serve` child of loadtest `parent` (0 when none shows within
/// 10 s).
pid_t local_heaven_of(pid_t parent) {
  for (int i = 0; i < 1000; ++i) {
    auto kids = proc_text(parent,
                          "task/" + std::to_string(parent) + "/children");
    for (auto pos = kids.find_first_of("0123456789"); pos != std::string::npos;
         pos = kids.find_first_of("0123456789", kids.find(' ', pos))) {
      pid_t k = std::atoi(kids.c_str() + pos);
      auto cmd = proc_text(k, "cmdline");
      if (cmd.size() > 7 && cmd.substr(cmd.size() - 7) == " serve ")
        return k;
    }
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
bool exited(pid_t pid) {
  auto stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return stat.empty() || paren == std::string::npos
         || stat.compare(paren + 2, 1, "Z") == 0;
}

BOOST_AUTO_TEST_CASE(without_a_target_it_starts_a_heaven_of_its_own) {
  auto run = start({"--event", "deployment_status", "--rate", "100/s",
                    "--duration", "2s", "--json"});
  // Its heaven: a child running `heaven serve`, the secret in its
  // environment and on no command line.
  pid_t child = local_heaven_of(run.pid);
  BOOST_REQUIRE(child > 0);
  auto env = read_text("/proc/" + std::to_string(child) + "/environ");
  auto secret = environ_value(env, "GITHUB_WEBHOOK_SECRET");
  auto data = environ_value(env, "HEAVEN_DATA_DIR");
  BOOST_CHECK_EQUAL(environ_value(env, "HEAVEN_LISTEN"), "127.0.0.1:0");
  BOOST_CHECK_EQUAL(environ_value(env, "HEAVEN_CONFIG"), "/dev/null");
  BOOST_CHECK_EQUAL(secret.size(), 64u);
  BOOST_CHECK(proc_text(child, "cmdline").find(secret) == std::string::npos);
  BOOST_CHECK(proc_text(run.pid, "cmdline").find(secret) == std::string::npos);
  BOOST_CHECK_EQUAL(run.wait(), 0);
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  auto s = run.summary();
  BOOST_CHECK_EQUAL(s["sent"], 200);
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 200}}));
  BOOST_CHECK_EQUAL(s["errors"], 0);
  // Its heaven is gone, and so is its data.
  BOOST_CHECK(kill(child, 0) != 0);
  BOOST_CHECK(!data.empty());
  BOOST_CHECK(!fs::exists(data));
}

BOOST_AUTO_TEST_CASE(its_own_heaven_goes_when_loadtest_is_killed) {
  auto run = start({"--event", "ping", "--rate", "10/s", "--duration", "120s"});
  pid_t child = local_heaven_of(run.pid);
  BOOST_REQUIRE(child > 0);
  BOOST_REQUIRE(!exited(child));
  // kill -9: no destructor of loadtest's runs; the kernel's parent-death
  // signal stops its heaven.
  kill(run.pid, SIGKILL);
  run.wait();
  bool gone = false;
  for (int i = 0; i < 3000 && !gone; ++i) {
    gone = exited(child);
    if (!gone)
      std::this_thread::sleep_for(10ms);
  }
  BOOST_CHECK_MESSAGE(gone, "heaven " << child << " outlived its loadtest");
  if (!gone)
    kill(child, SIGKILL);
}

/// The directories under the temporary directory whose owner.pid names
/// `pid`.
std::vector<fs::path> owned_by(pid_t pid) {
  std::vector<fs::path> found;
  for (auto& entry : fs::directory_iterator{fs::temp_directory_path()})
    if (read_text(entry.path() / "owner.pid") == std::to_string(pid) + "\n")
      found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  return found;
}

BOOST_AUTO_TEST_CASE(a_killed_loadtests_directories_are_removed_by_the_next) {
  auto killed = start(
    {"--github-stand-in", "--rate", "2/s", "--duration", "120s"});
  pid_t child = local_heaven_of(killed.pid);
  BOOST_REQUIRE(child > 0);
  auto env = read_text("/proc/" + std::to_string(child) + "/environ");
  auto data = fs::path{environ_value(env, "HEAVEN_DATA_DIR")}.parent_path();
  // Its heaven's data, and the stand-in's repository.
  auto left = owned_by(killed.pid);
  BOOST_REQUIRE_EQUAL(left.size(), 2u);
  BOOST_CHECK(std::find(left.begin(), left.end(), data) != left.end());
  auto quick = std::vector<std::string>{"--event",    "ping", "--rate", "10/s",
                                        "--duration", "1s",   "--json"};
  // Another loadtest leaves a running one's directories alone.
  auto beside = run_to_end(quick);
  BOOST_TEST_INFO("stderr: " << beside.stderr_text());
  BOOST_CHECK_EQUAL(beside.status, 0);
  BOOST_CHECK(owned_by(killed.pid) == left);
  // kill -9 runs no destructor: they stay until the next loadtest.
  kill(killed.pid, SIGKILL);
  killed.wait();
  for (int i = 0; i < 3000 && !exited(child); ++i)
    std::this_thread::sleep_for(10ms);
  BOOST_REQUIRE(exited(child));
  for (auto& dir : left)
    BOOST_REQUIRE(fs::exists(dir));
  auto next = run_to_end(quick);
  BOOST_TEST_INFO("stderr: " << next.stderr_text());
  BOOST_CHECK_EQUAL(next.status, 0);
  for (auto& dir : left)
    BOOST_CHECK_MESSAGE(!fs::exists(dir), dir << " is still there");
}

BOOST_AUTO_TEST_CASE(the_github_stand_in_times_each_providers_statuses) {
  auto run = run_to_end(
    {"--github-stand-in", "--rate", "5/s", "--duration", "2s", "--json"});
  BOOST_TEST_INFO("stderr: " << run.stderr_text());
  BOOST_CHECK_EQUAL(run.status, 0);
  auto s = run.summary();
  BOOST_CHECK_EQUAL(s["event"], "deployment");
  BOOST_CHECK_EQUAL(s["answers"], (json{{"201", 10}}));
  // The deployments alternate: shell, heroku, shell, ...; each ends in
  // success, and each status is timed from its webhook.
  for (auto provider : {"shell", "heroku"}) {
    BOOST_TEST_CONTEXT(provider) {
      auto& p = s["deployments"][provider];
      BOOST_CHECK_EQUAL(p["accepted"], 5);
      BOOST_CHECK_EQUAL(p["endings"], (json{{"success", 5}}));
      BOOST_CHECK_EQUAL(p["to_terminal_ms"]["count"], 5);
      BOOST_CHECK_EQUAL(p["to_status_ms"]["success"]["count"], 5);
      BOOST_CHECK_GT(p["to_terminal_ms"]["max"].get<double>(), 0.0);
      BOOST_CHECK_GE(p["to_terminal_ms"]["max"].get<double>(),
                     p["to_terminal_ms"]["p50"].get<double>());
    }
  }
  BOOST_CHECK_EQUAL(s["deployments"].size(), 2u);
}

BOOST_AUTO_TEST_CASE(bad_usage_exits_2_with_a_message) {
  struct bad {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<bad> cases = {
    {{"--event", "push"}, "unknown --event 'push'"},
    {{"--rate", "fast"}, "bad --rate 'fast'"},
    {{"--rate", "0/s"}, "bad --rate '0/s'"},
    {{"--duration", "forever"}, "bad --duration 'forever'"},
    {{"--connections", "0"}, "bad --connections '0'"},
    {{"--webhook-secret", "x"}, "secrets are never read from the command"},
    {{"--target", "http://127.0.0.1:9/events"}, "no webhook secret"},
    {{"--target", "https://example.com/events"}, "must be an http:// URL"},
    {{"--frobnicate"}, "unknown argument '--frobnicate'"},
    {{"--target", "http://127.0.0.1:9/events", "--target",
      "http://127.0.0.1:10/other"},
     "every --target must have the same path"},
    {{"--github-stand-in", "--target", "http://127.0.0.1:9/events"},
     "cannot go with --target"},
    {{"--github-stand-in", "--event", "ping"}, "--event deployment or mix"},
    {{"--providers", "shell,capistrano"}, "unknown provider 'capistrano'"},
  };
  for (auto& c : cases) {
    auto run = run_to_end(c.args);
    BOOST_TEST_CONTEXT(c.args.front()) {
      BOOST_CHECK_EQUAL(run.status, 2);
      BOOST_CHECK_MESSAGE(run.stderr_text().find(c.says) != std::string::npos,
                          run.stderr_text());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
