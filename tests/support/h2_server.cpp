#include "tests/support/h2_server.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
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

/// A fresh directory under the system's temporary directory.
fs::path fresh_dir() {
  auto base = (fs::temp_directory_path() / "heaven-h2-XXXXXX").string();
  if (::mkdtemp(base.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  return fs::canonical(base);
}

/// Starts `argv` in a process group of its own, stdin from /dev/null,
/// stdout and stderr appended to `log`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (auto& x : argv)
    args.push_back(const_cast<char*>(x.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  auto rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(),
                           environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw std::runtime_error("cannot start " + argv[0] + ": "
                             + std::strerror(rc));
  return pid;
}

/// Runs `argv` to its end (output to `log`); throws unless it exits 0.
void run(const std::vector<std::string>& argv, const fs::path& log) {
  auto pid = spawn(argv, log);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(argv[0] + " failed:\n" + slurp(log));
}

/// Writes all of `data` to `fd`; false when the peer is gone.
bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    auto n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

} // namespace

// -- h2_server ----------------------------------------------------------------

h2_server::h2_server() : dir_(fresh_dir()) {
  try {
    fs::create_directories(dir_ / "htdocs");
    run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-days", "2", "-keyout",
         (dir_ / "key.pem").string(), "-out", (dir_ / "cert.pem").string()},
        dir_ / "openssl.log");
    // The port is probed, then taken by nghttpd: someone else may take it
    // in between, so a server that cannot listen tries another.
    for (int attempt = 0; attempt < 10; ++attempt)
      if (start(free_port()))
        return;
    throw std::runtime_error("nghttpd did not start:\n" + log());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw;
  }
}

bool h2_server::start(int port) {
  fs::remove(dir_ / "nghttpd.log");
  pid_ = spawn({"nghttpd", "-v", "--echo-upload", "-a", "127.0.0.1", "-d",
                (dir_ / "htdocs").string(), std::to_string(port),
                (dir_ / "key.pem").string(), (dir_ / "cert.pem").string()},
               dir_ / "nghttpd.log");
  // nghttpd says "IPv4: listen 127.0.0.1:PORT" once it listens.
  auto ready = "listen 127.0.0.1:" + std::to_string(port) + "\n";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (log().find(ready) != std::string::npos) {
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

h2_server::~h2_server() {
  if (pid_ > 0)
    stop_process(pid_, 5, 10);
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

int h2_server::port() const {
  return port_;
}

fs::path h2_server::cert_file() const {
  return dir_ / "cert.pem";
}

void h2_server::serve(const std::string& name, const std::string& body) const {
  std::ofstream out{dir_ / "htdocs" / name, std::ios::binary | std::ios::trunc};
  out << body;
  out.close();
  if (!out)
    throw std::runtime_error("cannot write " + name);
}

std::string h2_server::log() const {
  return slurp(dir_ / "nghttpd.log");
}

size_t h2_server::requests() const {
  // "[id=1] [  0.001] recv (stream_id=3) :method: GET"
  std::istringstream lines{log()};
  size_t n = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.find("] recv (stream_id=") != std::string::npos
        && line.find(") :method: ") != std::string::npos)
      ++n;
  return n;
}

std::vector<std::string> h2_server::negotiated() const {
  constexpr std::string_view said = "The negotiated protocol: ";
  std::istringstream lines{log()};
  std::vector<std::string> result;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(said, 0) == 0)
      result.push_back(line.substr(said.size()));
  return result;
}

// -- tcp_relay ----------------------------------------------------------------

tcp_relay::tcp_relay(int target_port) : target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener_ < 0 || wake_fd_ < 0
      || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
           != 0
      || ::listen(listener_, 64) != 0
      || ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len)
           != 0) {
    if (listener_ >= 0)
      ::close(listener_);
    if (wake_fd_ >= 0)
      ::close(wake_fd_);
    throw std::runtime_error("the relay cannot listen");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

tcp_relay::~tcp_relay() {
  stop_ = true;
  wake();
  thread_.join();
  ::close(listener_);
  ::close(wake_fd_);
}

int tcp_relay::port() const {
  return port_;
}

size_t tcp_relay::accepted() const {
  return accepted_;
}

void tcp_relay::hold() {
  held_ = true;
  wake();
}

void tcp_relay::release() {
  held_ = false;
  wake();
}

void tcp_relay::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof(one));
}

void tcp_relay::run() {
  // Each pair: the client's socket and the target's.
  std::vector<std::pair<int, int>> pairs;
  auto drop = [&](size_t i) {
    ::close(pairs[i].first);
    ::close(pairs[i].second);
    pairs.erase(pairs.begin() + static_cast<std::ptrdiff_t>(i));
  };
  char buf[65536];
  while (!stop_) {
    std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}, {listener_, POLLIN, 0}};
    bool held = held_;
    for (auto& [client, target] : pairs) {
      fds.push_back({client, POLLIN, 0});
      // While held, the target's bytes stay unread.
      fds.push_back({target, static_cast<short>(held ? 0 : POLLIN), 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[0].revents != 0) {
      uint64_t n = 0;
      [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof(n));
    }
    // Newest pairs last: walk back so that dropping one keeps the indices
    // of those before it.
    for (size_t i = pairs.size(); i-- > 0;) {
      auto& from_client = fds[2 + 2 * i];
      auto& from_target = fds[2 + 2 * i + 1];
      bool gone = false;
      for (auto* side : {&from_client, &from_target}) {
        // A held target's hang-up waits too: reading it would pass on
        // what came before.
        if (gone || side->revents == 0 || (held && side == &from_target))
          continue;
        auto n = ::recv(side->fd, buf, sizeof(buf), 0);
        int to = side == &from_client ? pairs[i].second : pairs[i].first;
        if (n <= 0 || !write_all(to, buf, static_cast<size_t>(n)))
          gone = true;
      }
      if (gone)
        drop(i);
    }
    if (fds[1].revents != 0) {
      int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0)
        continue;
      ++accepted_;
      int target = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (target < 0
          || ::connect(target, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
               != 0) {
        ::close(client);
        if (target >= 0)
          ::close(target);
        continue;
      }
      pairs.emplace_back(client, target);
    }
  }
  for (auto& [client, target] : pairs) {
    ::close(client);
    ::close(target);
  }
}

} // namespace heaven::test
