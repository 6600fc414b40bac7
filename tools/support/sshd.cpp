#include "tools/support/sshd.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

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

/// The whole text of `path` ("" when it can't be read).
std::string slurp(const fs::path& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Writes `text` to `path` with mode `mode`.
void spit(const fs::path& path, const std::string& text,
          fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
  std::ofstream out{path, std::ios::trunc};
  out << text;
  out.close();
  if (!out)
    throw std::runtime_error("cannot write " + path.string());
  fs::permissions(path, mode);
}

/// `text` without trailing newlines.
std::string chomp(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  return text;
}

/// Spawns `argv` with stdin from /dev/null, stdout into a pipe (returned in
/// `out_fd`, or /dev/null when null) and stderr to /dev/null; `own_group`
/// puts the child in a process group of its own.
pid_t spawn(const std::vector<std::string>& argv, int* out_fd, bool own_group) {
  std::vector<char*> args;
  for (auto& x : argv)
    args.push_back(const_cast<char*>(x.c_str()));
  args.push_back(nullptr);
  int fds[2] = {-1, -1};
  if (out_fd != nullptr && ::pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (out_fd != nullptr)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  else
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (own_group) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
  }
  pid_t pid = -1;
  auto rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(),
                           environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (out_fd != nullptr) {
    ::close(fds[1]);
    *out_fd = fds[0];
  }
  if (rc != 0) {
    if (out_fd != nullptr)
      ::close(fds[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": "
                             + std::strerror(rc));
  }
  return pid;
}

/// Runs `argv` to its end and returns its stdout; throws unless it exits 0.
std::string run(const std::vector<std::string>& argv) {
  int fd = -1;
  auto pid = spawn(argv, &fd, false);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n > 0)
      out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  ::close(fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(argv[0] + " failed (" + argv.back() + ")");
  return out;
}

/// A fresh directory under the system's temporary directory.
fs::path fresh_dir(const std::string& tag) {
  auto base
    = (fs::temp_directory_path() / ("heaven-" + tag + "-XXXXXX")).string();
  if (::mkdtemp(base.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  return fs::canonical(base);
}

/// True when something accepts a TCP connection on 127.0.0.1:`port`.
bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  auto ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0;
  ::close(fd);
  return ok;
}

/// The processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> result;
  std::error_code ec;
  for (auto& entry : fs::directory_iterator("/proc", ec)) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto stat = slurp(entry.path() / "stat");
    auto paren = stat.rfind(')');
    if (paren == std::string::npos)
      continue;
    std::istringstream fields{stat.substr(paren + 1)};
    std::string state;
    long ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent)
      result.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return result;
}

/// Makes key files `path` and `path.pub` with ssh-keygen.
void keygen(const fs::path& path, const std::string& type, bool pem) {
  std::vector<std::string> argv{"ssh-keygen", "-q",         "-t", type,
                                "-N",         "",           "-C", "heaven-test",
                                "-f",         path.string()};
  if (pem) {
    argv.insert(argv.begin() + 1, "PEM");
    argv.insert(argv.begin() + 1, "-m");
  }
  run(argv);
}

} // namespace

ssh_key_pair make_key(const std::string& type, bool pem) {
  auto dir = fresh_dir("key");
  ssh_key_pair result;
  try {
    keygen(dir / "id", type, pem);
    result.type = type;
    result.private_key = slurp(dir / "id");
    result.public_key = chomp(slurp(dir / "id.pub"));
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return result;
}

std::string one_line_key(const std::string& private_key) {
  std::string out;
  for (char c : private_key)
    if (c == '\n')
      out += "\\n";
    else
      out += c;
  return out;
}

std::string key_fingerprint(const std::string& public_key) {
  auto dir = fresh_dir("fp");
  std::string out;
  try {
    spit(dir / "key.pub", public_key + "\n");
    out = run(
      {"ssh-keygen", "-l", "-E", "sha256", "-f", (dir / "key.pub").string()});
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  // "256 SHA256:xxxx heaven-test (ED25519)"
  std::istringstream words{out};
  std::string bits;
  std::string fingerprint;
  words >> bits >> fingerprint;
  if (fingerprint.rfind("SHA256:", 0) != 0)
    throw std::runtime_error("unexpected ssh-keygen -l output: " + out);
  return fingerprint;
}

void write_known_hosts(const fs::path& file,
                       const std::vector<std::string>& lines) {
  std::string text;
  for (auto& x : lines)
    text += x + "\n";
  spit(file, text);
}

std::string current_user() {
  auto pw = ::getpwuid(::geteuid());
  if (pw == nullptr)
    throw std::runtime_error("this process's user has no name");
  return pw->pw_name;
}

sshd_server::sshd_server(const std::string& host_key_type)
  : dir_(fresh_dir("sshd")) {
  try {
    keygen(dir_ / "host_key", host_key_type, false);
    host_key_public_ = chomp(slurp(dir_ / "host_key.pub"));
    // Drop the comment: a known_hosts entry is "host type base64".
    auto second_space = host_key_public_.find(' ',
                                              host_key_public_.find(' ') + 1);
    if (second_space != std::string::npos)
      host_key_public_.resize(second_space);
    client_ = make_key("ed25519");
    spit(dir_ / "authorized_keys", client_.public_key + "\n");
    std::error_code ec;
    if (!fs::exists("/run/sshd")) {
      fs::create_directories("/run/sshd", ec);
      fs::permissions("/run/sshd",
                      fs::perms::owner_all | fs::perms::group_read
                        | fs::perms::group_exec | fs::perms::others_read
                        | fs::perms::others_exec,
                      ec);
    }
    for (int attempt = 0; attempt < 10; ++attempt)
      if (start(free_port()))
        return;
    throw std::runtime_error("sshd did not start; see " + log_path().string()
                             + ":\n" + log());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

bool sshd_server::start(int port) {
  auto config = dir_ / "sshd_config";
  std::ostringstream text;
  text << "ListenAddress 127.0.0.1\n"
       << "Port " << port << "\n"
       << "HostKey " << (dir_ / "host_key").string() << "\n"
       << "AuthorizedKeysFile " << (dir_ / "authorized_keys").string() << "\n"
       << "PidFile " << (dir_ / "sshd.pid").string() << "\n"
       << "StrictModes no\n"
       << "UsePAM no\n"
       << "PasswordAuthentication no\n"
       << "KbdInteractiveAuthentication no\n"
       << "PubkeyAuthentication yes\n"
       << "PermitRootLogin prohibit-password\n"
       << "LogLevel VERBOSE\n";
  spit(config, text.str());
  pid_ = spawn({"/usr/sbin/sshd", "-D", "-f", config.string(), "-E",
                log_path().string()},
               nullptr, true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (accepts(port)) {
      port_ = port;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return false;
}

sshd_server::~sshd_server() {
  if (pid_ > 0) {
    // Let the connections that are closing end first, so the listener reaps
    // them (orphans would stay zombies: the test machine's init does not
    // reap).
    auto quiet = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!children_of(pid_).empty()
           && std::chrono::steady_clock::now() < quiet)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (::waitpid(pid_, &status, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string sshd_server::host() const {
  return "127.0.0.1";
}

int sshd_server::port() const {
  return port_;
}

std::string sshd_server::user() const {
  return current_user();
}

std::string sshd_server::host_public_key() const {
  return host_key_public_;
}

std::string sshd_server::host_key_line() const {
  return "[127.0.0.1]:" + std::to_string(port_) + " " + host_key_public_;
}

std::string sshd_server::host_fingerprint() const {
  return key_fingerprint(host_key_public_);
}

const ssh_key_pair& sshd_server::client_key() const {
  return client_;
}

void sshd_server::authorize(const std::string& public_key) {
  std::ofstream out{dir_ / "authorized_keys", std::ios::app};
  out << public_key << "\n";
}

fs::path sshd_server::write_known_hosts() const {
  auto file = dir_ / "known_hosts";
  heaven::test::write_known_hosts(file, {host_key_line()});
  return file;
}

const fs::path& sshd_server::dir() const {
  return dir_;
}

fs::path sshd_server::log_path() const {
  return dir_ / "sshd.log";
}

std::string sshd_server::log() const {
  return slurp(log_path());
}

} // namespace heaven::test
