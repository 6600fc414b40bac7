#include "tools/support/pg_cluster.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/support/heaven_process.hpp"

extern char** environ;

namespace heaven::test {

namespace {

namespace fs = std::filesystem;

constexpr const char* missing_hint
  = "PostgreSQL's server binaries are missing (initdb, pg_ctl, postgres): "
    "setup.sh installs postgresql";

std::string slurp(const fs::path& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// The uid and gid the cluster runs as: `nobody` when we are root (initdb
/// and postgres refuse root), else ourselves.
struct runner {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

runner pick_runner() {
  runner r;
  r.uid = ::geteuid();
  r.gid = ::getegid();
  if (r.uid != 0)
    return r;
  auto pw = ::getpwnam("nobody");
  if (pw == nullptr)
    throw std::runtime_error("pg_cluster: running as root, and there is no "
                             "user nobody to run PostgreSQL as");
  r.drop = true;
  r.uid = pw->pw_uid;
  r.gid = pw->pw_gid;
  return r;
}

/// `argv` prefixed so it runs as the runner's user (setpriv execs in place,
/// so the pid we get is the program's own).
std::vector<std::string> as_runner(const runner& r,
                                   std::vector<std::string> argv) {
  if (!r.drop)
    return argv;
  std::vector<std::string> out{"setpriv", "--reuid=" + std::to_string(r.uid),
                               "--regid=" + std::to_string(r.gid),
                               "--clear-groups", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

/// Starts `argv` in `cwd` with stdin from /dev/null and stdout and stderr
/// appended to `log`.
pid_t spawn_in(const std::vector<std::string>& argv, const fs::path& cwd,
               const fs::path& log) {
  std::vector<char*> args;
  for (auto& x : argv)
    args.push_back(const_cast<char*>(x.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_APPEND | O_CREAT, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  auto rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(),
                           environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw std::runtime_error("pg_cluster: cannot start " + argv[0] + ": "
                             + std::strerror(rc));
  return pid;
}

/// Waits for `pid`; its exit status (-1 when it was killed).
int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// Runs `argv` to its end; its exit status.
int run(const std::vector<std::string>& argv, const fs::path& cwd,
        const fs::path& log) {
  return reap(spawn_in(argv, cwd, log));
}

/// 24 random hex digits.
std::string random_password() {
  std::ifstream in{"/dev/urandom", std::ios::binary};
  unsigned char bytes[12] = {};
  in.read(reinterpret_cast<char*>(bytes), sizeof(bytes));
  if (!in)
    throw std::runtime_error("pg_cluster: cannot read /dev/urandom");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (auto b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

} // namespace

fs::path pg_bindir() {
  auto has_initdb = [](const fs::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "initdb", ec)
           && fs::is_regular_file(dir / "pg_ctl", ec)
           && fs::is_regular_file(dir / "postgres", ec);
  };
  // pg_config --bindir (libpq-dev's pg_config names the server's bindir).
  if (auto pipe = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512] = {};
    std::string out;
    while (::fgets(buf, sizeof(buf), pipe) != nullptr)
      out += buf;
    ::pclose(pipe);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
      out.pop_back();
    if (!out.empty() && has_initdb(out))
      return out;
  }
  // Debian: /usr/lib/postgresql/<major>/bin, the newest first.
  std::vector<std::pair<int, fs::path>> found;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != name.npos)
      continue;
    if (has_initdb(entry.path() / "bin"))
      found.emplace_back(std::stoi(name), entry.path() / "bin");
  }
  if (found.empty())
    throw std::runtime_error(missing_hint);
  std::sort(found.begin(), found.end());
  return found.back().second;
}

pg_cluster::pg_cluster() : bindir_(pg_bindir()), password_(random_password()) {
  auto r = pick_runner();
  auto base = (fs::temp_directory_path() / "heaven-pg-XXXXXX").string();
  if (::mkdtemp(base.data()) == nullptr)
    throw std::runtime_error("pg_cluster: mkdtemp failed");
  dir_ = fs::canonical(base);
  try {
    // The cluster's user owns its directory (and must reach it).
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec
                            | fs::perms::others_exec);
    fs::create_directory(dir_ / "sockets");
    {
      std::ofstream pw{dir_ / "pwfile"};
      pw << password_ << "\n";
    }
    for (auto& p : {dir_, dir_ / "sockets", dir_ / "pwfile"})
      if (::chown(p.c_str(), r.uid, r.gid) != 0)
        throw std::runtime_error("pg_cluster: cannot chown " + p.string());
    auto initdb = as_runner(r, {(bindir_ / "initdb").string(), "-D",
                                (dir_ / "data").string(), "-U", user(),
                                "--pwfile=" + (dir_ / "pwfile").string(), "-E",
                                "UTF8", "--locale=C", "--auth-local=trust",
                                "--auth-host=scram-sha-256", "--no-sync"});
    if (run(initdb, dir_, dir_ / "initdb.log") != 0)
      throw std::runtime_error("pg_cluster: initdb failed:\n"
                               + slurp(dir_ / "initdb.log"));
    fs::remove(dir_ / "pwfile");
    for (int attempt = 0; attempt < 10; ++attempt)
      if (start(free_port())) {
        auto createdb = as_runner(r, {(bindir_ / "createdb").string(), "-h",
                                      (dir_ / "sockets").string(), "-p",
                                      std::to_string(port_), "-U", user(),
                                      database()});
        if (run(createdb, dir_, dir_ / "createdb.log") != 0)
          throw std::runtime_error("pg_cluster: createdb failed:\n"
                                   + slurp(dir_ / "createdb.log"));
        return;
      }
    throw std::runtime_error("pg_cluster: postgres did not start:\n" + log());
  } catch (...) {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

bool pg_cluster::start(int port) {
  auto r = pick_runner();
  // postgres itself (not through pg_ctl start, which would leave it to
  // init): our child, reaped on stop. fsync off: a throwaway cluster need
  // not survive a power cut. synchronous_commit stays on: a commit heaven
  // was told of must survive `halt` (a server killed, not a machine), as
  // on any real PostgreSQL. HEAVEN_PG_CLUSTER_FSYNC=on (for benchmarks)
  // makes it write to disk as a real one does.
  const char* durable = std::getenv("HEAVEN_PG_CLUSTER_FSYNC");
  bool fsync = durable != nullptr && std::string_view{durable} == "on";
  auto argv = as_runner(
    r, {(bindir_ / "postgres").string(), "-D", (dir_ / "data").string(), "-p",
        std::to_string(port), "-k", (dir_ / "sockets").string(), "-c",
        "listen_addresses=127.0.0.1", "-c", fsync ? "fsync=on" : "fsync=off",
        "-c", fsync ? "full_page_writes=on" : "full_page_writes=off"});
  pid_ = spawn_in(argv, dir_, dir_ / "postgres.log");
  auto ready = std::vector<std::string>{(bindir_ / "pg_isready").string(),
                                        "-q",
                                        "-h",
                                        host(),
                                        "-p",
                                        std::to_string(port),
                                        "-U",
                                        user(),
                                        "-d",
                                        "postgres"};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      // It exited: the port was taken meanwhile, or worse (see the log).
      pid_ = -1;
      return false;
    }
    if (run(ready, dir_, dir_ / "pg_isready.log") == 0) {
      port_ = port;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  return false;
}

void pg_cluster::stop() {
  if (pid_ <= 0)
    return;
  auto argv = as_runner(pick_runner(), {(bindir_ / "pg_ctl").string(), "-D",
                                        (dir_ / "data").string(), "-m",
                                        "immediate", "-w", "stop"});
  if (run(argv, dir_, dir_ / "pg_ctl.log") != 0)
    ::kill(pid_, SIGQUIT);
  reap(pid_);
  pid_ = -1;
}

void pg_cluster::halt() {
  stop();
}

void pg_cluster::resume() {
  if (pid_ > 0)
    return;
  if (!start(port_))
    throw std::runtime_error("pg_cluster: postgres did not start again on "
                             "port "
                             + std::to_string(port_) + ":\n"
                             + slurp(dir_ / "postgres.log"));
}

pg_cluster::~pg_cluster() {
  try {
    stop();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string pg_cluster::host() const {
  return "127.0.0.1";
}

int pg_cluster::port() const {
  return port_;
}

std::string pg_cluster::user() const {
  return "heaven";
}

std::string pg_cluster::password() const {
  return password_;
}

std::string pg_cluster::database() const {
  return "heaven_test";
}

std::string pg_cluster::url() const {
  return url_with_password(password_);
}

std::string pg_cluster::url_with_password(const std::string& password) const {
  return "postgresql://" + user() + ":" + password + "@" + host() + ":"
         + std::to_string(port_) + "/" + database();
}

const fs::path& pg_cluster::dir() const {
  return dir_;
}

std::string pg_cluster::log() const {
  return slurp(dir_ / "postgres.log");
}

} // namespace heaven::test
