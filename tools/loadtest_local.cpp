#include "tools/loadtest_local.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/support/launch.hpp"

namespace heaven::loadtest {

namespace fs = std::filesystem;

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    auto b = rd() & 0xFF;
    out += hex[b >> 4];
    out += hex[b & 0xF];
  }
  return out;
}

namespace {

/// A fresh `<prefix>XXXXXX` under the temporary directory, its owner.pid
/// naming this process. A loadtest killed with kill -9 cannot remove what
/// it made: the next one to make a directory of that prefix first removes
/// every such directory of this user whose owner.pid names a process that
/// is gone. One without the file (still being made) or of another user is
/// left alone.
fs::path make_owned_dir(const std::string& prefix) {
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{fs::temp_directory_path(), ec}) {
    struct stat st {};
    if (!entry.path().filename().string().starts_with(prefix)
        || ::lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)
        || st.st_uid != ::getuid())
      continue;
    std::ifstream in{entry.path() / "owner.pid"};
    pid_t pid = 0;
    if ((in >> pid) && pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH)
      fs::remove_all(entry.path(), ec);
  }
  std::string tmpl = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("cannot make a temporary directory");
  std::ofstream{fs::path{tmpl} / "owner.pid"} << ::getpid() << "\n";
  return tmpl;
}

} // namespace

temp_dir::temp_dir(const std::string& prefix) : path{make_owned_dir(prefix)} {
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

local_heaven::local_heaven(const std::string& binary, const std::string& secret,
                           const std::vector<std::string>& extra_env) {
  data_ = make_owned_dir("heaven-loadtest-");
  auto path = std::getenv("PATH");
  std::vector<std::string> env = {
    "PATH=" + std::string{path ? path : "/usr/bin:/bin"},
    "HOME=" + data_.string(),
    "HEAVEN_LISTEN=127.0.0.1:0",
    "HEAVEN_CONFIG=/dev/null",
    "HEAVEN_DATA_DIR=" + (data_ / "data").string(),
    "GITHUB_WEBHOOK_SECRET=" + secret,
  };
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  // heaven goes when loadtest goes, however it ends (Ctrl-C, kill -9).
  auto started = test::launch_heaven(binary, env, data_ / "heaven.log", true);
  pid_ = started.pid;
  stdout_fd_ = started.stdout_fd;
  port_ = started.port;
  if (port_ == 0) {
    auto log = tail_of_log();
    stop();
    throw std::runtime_error("the local heaven did not start; its log "
                             "ends:\n"
                             + log);
  }
  draining_ = true;
  drain_ = std::thread{[this, fd = stdout_fd_] {
    char buf[4096];
    while (draining_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) > 0 && read(fd, buf, sizeof(buf)) <= 0)
        break;
    }
  }};
}

local_heaven::~local_heaven() {
  stop();
}

void local_heaven::stop() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 600 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (kill(pid_, 0) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  draining_ = false;
  if (drain_.joinable())
    drain_.join();
  if (stdout_fd_ >= 0)
    close(stdout_fd_);
  stdout_fd_ = -1;
  std::error_code ec;
  if (!data_.empty())
    fs::remove_all(data_, ec);
  data_.clear();
}

std::string local_heaven::tail_of_log() const {
  std::ifstream in{data_ / "heaven.log"};
  std::string text{std::istreambuf_iterator<char>(in), {}};
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

} // namespace heaven::loadtest
