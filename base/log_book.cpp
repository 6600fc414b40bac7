#include "base/log_book.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven {

log_book::log_book(std::string dir, std::vector<std::string> secrets,
                   std::size_t max_open_files)
  : dir_(std::move(dir)), max_open_(max_open_files),
    redact_(std::move(secrets)) {
  if (max_open_ == 0) {
    rlimit lim{};
    auto limit = getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 1024;
    max_open_ = std::clamp<std::size_t>(limit / 8, 16, 2048);
  }
  std::filesystem::create_directories(dir_);
}

log_book::~log_book() {
  std::lock_guard guard{mtx_};
  for (auto& kvp : files_)
    ::close(kvp.second.fd);
}

int log_book::file_for(int64_t id) {
  if (auto i = files_.find(id); i != files_.end()) {
    recent_.splice(recent_.begin(), recent_, i->second.place);
    return i->second.fd;
  }
  if (files_.size() >= max_open_) {
    auto oldest = files_.find(recent_.back());
    ::close(oldest->second.fd);
    files_.erase(oldest);
    recent_.pop_back();
  }
  auto fd = ::open(path(id).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                   0666);
  if (fd < 0)
    return -1;
  recent_.push_front(id);
  files_.emplace(id, handle{fd, recent_.begin()});
  return fd;
}

void log_book::open(int64_t id) {
  std::lock_guard guard{mtx_};
  if (live_.count(id))
    return;
  // Creates the file now, so that a reader finds it even before a line.
  if (file_for(id) >= 0)
    live_.insert(id);
}

void log_book::append(int64_t id, stream source, std::string_view text) {
  std::string line;
  if (source == stream::heaven)
    line = "heaven: ";
  line += redact(text);
  line += '\n';
  std::lock_guard guard{mtx_};
  if (!live_.count(id))
    return;
  auto fd = file_for(id);
  // One write per line, unbuffered: readers follow the file live.
  for (std::string_view rest{line}; fd >= 0 && !rest.empty();) {
    auto n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

void log_book::close(int64_t id) {
  std::lock_guard guard{mtx_};
  live_.erase(id);
  auto i = files_.find(id);
  if (i == files_.end())
    return;
  ::close(i->second.fd);
  recent_.erase(i->second.place);
  files_.erase(i);
}

bool log_book::live(int64_t id) const {
  std::lock_guard guard{mtx_};
  return live_.count(id) > 0;
}

std::string log_book::path(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + ".log";
}

std::string log_book::redact(std::string_view text) const {
  return redact_(text);
}

namespace {

std::string keyed_token(std::string_view key, const std::string& msg) {
  auto mac = hmac_sha256(key, msg);
  return to_hex(std::string_view{mac}.substr(0, 16));
}

} // namespace

std::string log_token(std::string_view key, int64_t id) {
  return keyed_token(key, "log:" + std::to_string(id));
}

std::string csrf_token(std::string_view key, std::string_view session) {
  return keyed_token(key, "csrf:" + std::string{session});
}

std::string locks_token(std::string_view key) {
  return keyed_token(key, "locks");
}

} // namespace heaven
