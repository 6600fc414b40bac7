// heaven under systemd: conf/heaven.service passes `systemd-analyze verify`
// without a word, and the real `heaven serve`, started the way systemd
// starts a Type=notify service (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID),
// tells a unix datagram socket the test binds that it is ready once its
// port answers, feeds the watchdog only while its store answers, says
// STOPPING=1 on SIGTERM, and keeps those variables from its deploy scripts.
// Counts and contents are asserted, never a time.

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

/// What a program printed on stdout and on stderr, apart, and its exit
/// status (-1 when a signal ended it).
struct split_result {
  int status = -1;
  std::string out, err;
};

/// Runs `argv` (no shell) with stdout and stderr in files of `dir`.
split_result run_split(const std::vector<std::string>& argv,
                       const fs::path& dir) {
  auto out = dir / "stdout", err = dir / "stderr";
  std::vector<std::string> args = argv;
  std::vector<char*> ptrs;
  for (auto& a : args)
    ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (out_fd < 0 || err_fd < 0)
    throw std::runtime_error("cannot open the output files in " + dir.string());
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    close_range(3, ~0U, 0);
    execvp(ptrs[0], ptrs.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  split_result r;
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

/// The unit file with ExecStart's /usr/local/bin/heaven (where the README
/// installs it) replaced by the binary just built, which verify needs to
/// exist; throws when the unit has not exactly one such line.
std::string unit_with_built_binary() {
  auto text = read_text(fs::path{HEAVEN_SOURCE_DIR} / "conf/heaven.service");
  const std::string line = "\nExecStart=/usr/local/bin/heaven serve\n";
  auto at = text.find(line);
  if (at == std::string::npos || text.find(line, at + 1) != std::string::npos)
    throw std::runtime_error("conf/heaven.service has not exactly one line '"
                             + line.substr(1, line.size() - 2) + "'");
  return text.replace(at, line.size(),
                      "\nExecStart=" + std::string{HEAVEN_BINARY} + " serve\n");
}

/// A message sent to the notify socket, and who sent it.
struct notice {
  std::string text;
  pid_t sender = 0;
};

/// systemd's end of sd_notify: a unix datagram socket bound in `dir`,
/// with SO_PASSCRED, so that each message carries its sender's pid (as
/// systemd checks it for NotifyAccess=main).
class notify_socket {
public:
  explicit notify_socket(const fs::path& dir) : path_(dir / "notify") {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.string().size() >= sizeof(addr.sun_path))
      throw std::runtime_error("cannot make a socket at " + path_.string());
    std::strcpy(addr.sun_path, path_.c_str());
    int on = 1;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
        || setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0)
      throw std::runtime_error("cannot bind " + path_.string() + ": "
                               + std::strerror(errno));
  }
  ~notify_socket() {
    close(fd_);
  }
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;

  const fs::path& path() const {
    return path_;
  }

  /// The next message; nothing when none came within `seconds` (a
  /// generous wait, not a measured time).
  std::optional<notice> next(int seconds = 60) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, seconds * 1000) != 1)
      return std::nullopt;
    char buf[4096];
    iovec iov{buf, sizeof(buf)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    auto n = recvmsg(fd_, &msg, 0);
    if (n < 0)
      throw std::runtime_error(std::string{"recvmsg: "} + std::strerror(errno));
    notice got{std::string(buf, static_cast<size_t>(n)), 0};
    for (auto c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred{};
        std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        got.sender = cred.pid;
      }
    return got;
  }

  /// The next message that is not a watchdog ping; counts the pings
  /// passed over in `pings`.
  std::optional<notice> next_besides_pings(int& pings, pid_t from) {
    while (auto n = next()) {
      if (n->text != "WATCHDOG=1")
        return n;
      BOOST_TEST(n->sender == from);
      ++pings;
    }
    return std::nullopt;
  }

private:
  fs::path path_;
  int fd_ = -1;
};

/// `heaven serve` started as systemd starts the unit: with NOTIFY_SOCKET,
/// and with the watchdog's WATCHDOG_USEC and WATCHDOG_PID (heaven's own
/// pid: a shell sets it to its own and execs heaven). Its stdout and stderr
/// go to files in `dir`; SIGKILLed if the test leaves it running.
struct service_run {
  pid_t pid = -1;
  fs::path dir;

  service_run(const fs::path& dir_, const fs::path& notify,
              const std::string& watchdog_usec, const std::string& watchdog_pid)
    : dir(dir_) {
    auto path = std::getenv("PATH");
    std::vector<std::string> env = {
      "PATH=" + std::string{path ? path : "/usr/bin:/bin"},
      "HOME=" + dir.string(),
      "HEAVEN_LISTEN=127.0.0.1:0",
      "HEAVEN_DATA_DIR=" + (dir / "data").string(),
      "GITHUB_WEBHOOK_SECRET=" + std::string{e2e_webhook_secret},
      "HEAVEN_CONFIG=/dev/null",
      "NOTIFY_SOCKET=" + notify.string(),
    };
    if (!watchdog_usec.empty())
      env.push_back("WATCHDOG_USEC=" + watchdog_usec);
    std::string script = "exec \"$0\" serve";
    if (watchdog_pid == "self")
      script = "WATCHDOG_PID=$$ " + script;
    else if (!watchdog_pid.empty())
      env.push_back("WATCHDOG_PID=" + watchdog_pid);
    std::vector<std::string> args = {"sh", "-c", script, HEAVEN_BINARY};
    std::vector<char*> argv, envp;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    auto out = (dir / "stdout").string(), err = (dir / "stderr").string();
    pid = fork();
    if (pid == 0) {
      dup2(open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
      dup2(open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
      close_range(3, ~0U, 0);
      execve("/bin/sh", argv.data(), envp.data());
      _exit(127);
    }
    if (pid < 0)
      throw std::runtime_error("fork failed");
  }

  ~service_run() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

  /// Sends SIGTERM (as `systemctl stop` does with KillMode=mixed).
  void terminate() const {
    kill(pid, SIGTERM);
  }

  /// Waits for the exit; its exit status (-1 for a signal).
  int wait() {
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

  std::string log() const {
    return read_text(dir / "stderr");
  }
};

/// The port in READY=1's status line, "heaven listens on port N (...".
int port_in(const std::string& ready) {
  std::smatch m;
  static const std::regex re{"STATUS=heaven listens on port ([0-9]+) "};
  if (!std::regex_search(ready, m, re))
    return 0;
  return std::stoi(m[1]);
}

} // namespace

BOOST_AUTO_TEST_SUITE(service)

// The unit as shipped, its binary where the built one is: not a warning.
BOOST_AUTO_TEST_CASE(unit_file_passes_systemd_analyze_verify) {
  auto dir = make_temp_dir("unit");
  auto unit = dir / "heaven.service";
  std::ofstream{unit} << unit_with_built_binary();
  auto r = run_split({"systemd-analyze", "verify", unit.string()}, dir);
  BOOST_TEST(r.status == 0);
  BOOST_TEST(r.err == "");
  BOOST_TEST(r.out == "");
  fs::remove_all(dir);
}

// The check above can fail: a unit with an unknown setting is reported on
// stderr (systemd-analyze still exits 0, hence the test of stderr).
BOOST_AUTO_TEST_CASE(verify_reports_a_unit_with_an_unknown_setting) {
  auto dir = make_temp_dir("unit-bad");
  auto unit = dir / "heaven.service";
  auto text = unit_with_built_binary();
  text.replace(text.find("[Service]\n"), 10, "[Service]\nKillMood=mixed\n");
  std::ofstream{unit} << text;
  auto r = run_split({"systemd-analyze", "verify", unit.string()}, dir);
  BOOST_TEST(r.err.find("Unknown key 'KillMood'") != std::string::npos, r.err);
  fs::remove_all(dir);
}

// Started like a Type=notify service with a watchdog: a status while it
// starts, READY=1 once its port answers, WATCHDOG=1 again and again from
// heaven's own pid, STOPPING=1 on SIGTERM, and exit status 0.
BOOST_AUTO_TEST_CASE(ready_watchdog_and_stopping_reach_the_notify_socket) {
  auto dir = make_temp_dir("notify");
  notify_socket sock{dir};
  auto data = (dir / "data").string();
  // 0.4 s: a ping every 0.2 s, so a few come while the test looks.
  service_run heaven{dir, sock.path(), "400000", "self"};
  int pings = 0;
  auto starting = sock.next_besides_pings(pings, heaven.pid);
  BOOST_REQUIRE_MESSAGE(starting, "no message; heaven's log: " + heaven.log());
  BOOST_TEST(starting->text == "STATUS=heaven is starting, data in " + data);
  BOOST_TEST(starting->sender == heaven.pid);
  auto ready = sock.next_besides_pings(pings, heaven.pid);
  BOOST_REQUIRE_MESSAGE(ready, "no READY=1; heaven's log: " + heaven.log());
  auto port = port_in(ready->text);
  BOOST_TEST(ready->text
             == "READY=1\nSTATUS=heaven listens on port " + std::to_string(port)
                  + " (POST /events), data in " + data);
  BOOST_TEST(ready->sender == heaven.pid);
  // Ready means ready: the port it names answers at once.
  auto health = http_call("GET", "http://127.0.0.1:" + std::to_string(port)
                                   + "/healthz");
  BOOST_TEST(health.status == 200);
  BOOST_TEST(health.body
             == R"({"database":{"kind":"sqlite","reachable":true},)"
                R"("problems":[],"status":"ok"})");
  // The watchdog is fed while heaven runs: three pings more, all its own.
  for (int i = 0; i < 3; ++i) {
    auto ping = sock.next();
    BOOST_REQUIRE_MESSAGE(ping,
                          "no watchdog ping; heaven's log: " + heaven.log());
    BOOST_TEST(ping->text == "WATCHDOG=1");
    BOOST_TEST(ping->sender == heaven.pid);
  }
  heaven.terminate();
  auto stopping = sock.next_besides_pings(pings, heaven.pid);
  BOOST_REQUIRE_MESSAGE(stopping,
                        "no STOPPING=1; heaven's log: " + heaven.log());
  BOOST_TEST(stopping->text
             == "STOPPING=1\nSTATUS=heaven stops: running deployments may "
                "finish within 30 s");
  BOOST_TEST(stopping->sender == heaven.pid);
  BOOST_TEST(heaven.wait() == 0);
  // After STOPPING=1 nothing but pings (heaven feeds the watchdog until
  // its store is ended).
  while (auto n = sock.next(0))
    BOOST_TEST(n->text == "WATCHDOG=1");
  fs::remove_all(dir);
}

/// How often heaven's log says that it did not feed the watchdog.
size_t unfed_rounds(const service_run& heaven) {
  auto log = heaven.log();
  size_t n = 0;
  for (auto at = log.find("the systemd watchdog is not fed");
       at != std::string::npos;
       at = log.find("the systemd watchdog is not fed", at + 1))
    ++n;
  return n;
}

/// Waits (generously) until heaven's log says `n` times that it did not
/// feed the watchdog; false if it never does.
bool wait_unfed(const service_run& heaven, size_t n) {
  for (int i = 0; i < 6000 && unfed_rounds(heaven) < n; ++i)
    usleep(10 * 1000);
  return unfed_rounds(heaven) >= n;
}

// The watchdog is fed by the store's answers, not by a timer: while another
// connection holds the database's write lock, every batch of the store
// waits for it (its busy timeout is 5 s, longer than heaven waits for an
// answer), no ping goes out and heaven says so; once the lock is gone the
// pings come again.
BOOST_AUTO_TEST_CASE(a_store_that_does_not_answer_stops_the_pings) {
  auto dir = make_temp_dir("notify-hung");
  notify_socket sock{dir};
  // 2 s: heaven asks its store every second and waits a second for it.
  service_run heaven{dir, sock.path(), "2000000", "self"};
  int pings = 0;
  BOOST_REQUIRE(sock.next_besides_pings(pings, heaven.pid));
  BOOST_REQUIRE_MESSAGE(sock.next_besides_pings(pings, heaven.pid),
                        "no READY=1; heaven's log: " + heaven.log());
  auto first = sock.next();
  BOOST_REQUIRE(first);
  BOOST_TEST(first->text == "WATCHDOG=1");
  auto marker = dir / "locked";
  auto db = dir / "data" / "heaven.db";
  auto holder = popen(("python3 -c \"import sqlite3, sys, pathlib; "
                       "c = sqlite3.connect(sys.argv[1], "
                       "isolation_level=None); c.execute('BEGIN IMMEDIATE'); "
                       "pathlib.Path(sys.argv[2]).touch(); sys.stdin.read()\" "
                       + db.string() + " " + marker.string())
                        .c_str(),
                      "w");
  BOOST_REQUIRE(holder);
  for (int i = 0; i < 6000 && !fs::exists(marker); ++i)
    usleep(10 * 1000);
  BOOST_REQUIRE_MESSAGE(fs::exists(marker), "the lock was not taken");
  // Three rounds without an answer (counted from now: a busy machine may
  // have made one earlier); none of them fed the watchdog.
  auto before = unfed_rounds(heaven);
  BOOST_REQUIRE_MESSAGE(wait_unfed(heaven, before + 1), heaven.log());
  while (auto n = sock.next(0))
    BOOST_TEST(n->text == "WATCHDOG=1");
  BOOST_REQUIRE_MESSAGE(wait_unfed(heaven, before + 3), heaven.log());
  int while_hung = 0;
  while (auto n = sock.next(0))
    ++while_hung;
  BOOST_TEST(while_hung == 0);
  // The lock goes: the store answers and the pings come again.
  pclose(holder);
  auto again = sock.next();
  BOOST_REQUIRE_MESSAGE(again, "no ping after the lock went; heaven's log: "
                                 + heaven.log());
  BOOST_TEST(again->text == "WATCHDOG=1");
  BOOST_TEST(again->sender == heaven.pid);
  heaven.terminate();
  BOOST_TEST(heaven.wait() == 0);
  fs::remove_all(dir);
}

// WATCHDOG_PID names another process (a watchdog meant for heaven's
// parent): heaven says READY=1 and STOPPING=1 but feeds no watchdog.
BOOST_AUTO_TEST_CASE(a_watchdog_for_another_pid_is_not_fed) {
  auto dir = make_temp_dir("notify-other");
  notify_socket sock{dir};
  service_run heaven{dir, sock.path(), "400000", std::to_string(getpid())};
  std::vector<std::string> got;
  while (got.size() < 2) {
    auto n = sock.next();
    BOOST_REQUIRE_MESSAGE(n,
                          "heaven said too little; its log: " + heaven.log());
    got.push_back(n->text);
  }
  BOOST_TEST(got[0].rfind("STATUS=heaven is starting", 0) == 0);
  BOOST_TEST(got[1].rfind("READY=1\n", 0) == 0);
  // Five of the would-be intervals pass while heaven answers requests.
  auto port = port_in(got[1]);
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(
      http_call("GET", "http://127.0.0.1:" + std::to_string(port) + "/healthz")
        .status
      == 200);
    usleep(200 * 1000);
  }
  heaven.terminate();
  BOOST_TEST(heaven.wait() == 0);
  while (auto n = sock.next(0))
    got.push_back(n->text);
  BOOST_TEST_REQUIRE(got.size() == 3u);
  BOOST_TEST(got[2].rfind("STOPPING=1\n", 0) == 0);
  BOOST_TEST(heaven.log().find("watchdog") == std::string::npos);
  fs::remove_all(dir);
}

// NOTIFY_SOCKET and the watchdog's variables are heaven's: a deploy
// script does not get them (it could otherwise speak to systemd in
// heaven's name), though heaven itself keeps using them.
BOOST_AUTO_TEST_CASE(deploy_scripts_do_not_get_the_service_variables) {
  auto dir = make_temp_dir("notify-script");
  notify_socket sock{dir};
  auto app = dir / "app";
  fs::create_directories(app / "script");
  std::ofstream{app / "script/deploy"}
    << "#!/bin/sh\necho \"notify=[$NOTIFY_SOCKET] usec=[$WATCHDOG_USEC] "
       "pid=[$WATCHDOG_PID]\"\n";
  fs::permissions(app / "script/deploy", fs::perms::owner_all);
  auto sha = run_checked(
    "cd " + app.string()
    + " && git init -q --initial-branch=main && git add -A && git -c "
      "user.name=t -c user.email=t@t commit -q -m first && git rev-parse "
      "HEAD");
  http_stub github;
  heaven_server h{dir / "data",
                  github.base_url(),
                  {{"NOTIFY_SOCKET", sock.path().string()},
                   {"WATCHDOG_USEC", "400000"},
                   {"WATCHDOG_PID", "1"}}};
  auto event = deployment_event(
    {.id = 7001,
     .sha = sha,
     .clone_url = "file://" + app.string(),
     .payload = {
       {"name", "app"},
       {"config",
        {{"provider", "shell"}, {"deploy_script", "script/deploy"}}}}});
  BOOST_TEST(h.post_event("deployment", "delivery-7001", event.dump()).status
             == 201);
  auto id = id_of(h, 7001);
  BOOST_TEST(h.wait_finished(id).at("state") == "success");
  auto log = h.log(id);
  BOOST_TEST(log.find("notify=[] usec=[] pid=[]\n") != std::string::npos, log);
  BOOST_TEST(h.stop() == 0);
  // heaven itself still spoke to the socket.
  auto first = sock.next(0);
  BOOST_REQUIRE(first);
  BOOST_TEST(first->text.rfind("STATUS=heaven is starting", 0) == 0);
  fs::remove_all(dir);
}

BOOST_AUTO_TEST_SUITE_END()
