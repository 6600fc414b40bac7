#include "base/log_book.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/text.hpp"
#include "base/times.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

/// Writes all of `data` to `fd` (retrying after signals); the bytes written.
std::size_t write_all(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    auto n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

int64_t system_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

/// The Unix second of Unix time `ms` (rounded down, also before 1970).
int64_t second_of(int64_t ms) {
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

} // namespace

log_book::log_book(std::string dir, std::vector<std::string> secrets,
                   std::size_t max_open_files, clock now)
  : dir_(std::move(dir)), max_open_(max_open_files),
    redact_(std::move(secrets)), now_(now ? std::move(now) : system_ms) {
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
  auto fd = file_for(id);
  if (fd < 0)
    return;
  // Reopened for append (another run, a restart): its lines go on after
  // what is there. The size is asked once here, never per line.
  struct stat st {};
  auto& log = live_[id];
  log.size = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  log.shipped = log.size;
}

std::string log_book::line_of(stream source, std::string_view text) const {
  std::string line;
  if (source == stream::heaven)
    line = "heaven: ";
  line += redact(text);
  line += '\n';
  return line;
}

void log_book::append(int64_t id, stream source, std::string_view text) {
  auto line = line_of(source, text);
  std::lock_guard guard{mtx_};
  auto state = live_.find(id);
  if (state == live_.end())
    return;
  auto fd = file_for(id);
  if (fd < 0)
    return;
  // Asked under the lock: the times of one log's lines never go back.
  auto ms = now_();
  auto& log = state->second;
  if (auto second = second_of(ms); second != log.second) {
    write_time(id, log.size, ms);
    log.second = second;
    if (ship_)
      log.unshipped_times += std::to_string(log.size) + ' ' + std::to_string(ms)
                             + '\n';
  }
  // One write per line, unbuffered: readers follow the file live.
  auto written = write_all(fd, line);
  log.size += written;
  if (ship_) {
    log.unshipped.append(line, 0, written);
    if (log.unshipped.size() > ship_above_)
      ship(id, log);
  }
}

void log_book::ship(int64_t id, live_log& log) {
  if (log.unshipped.empty() && log.unshipped_times.empty())
    return;
  log_shipment s{id, log.shipped, std::move(log.unshipped),
                 std::move(log.unshipped_times)};
  log.shipped += s.bytes.size();
  log.unshipped.clear();
  log.unshipped_times.clear();
  ship_(std::move(s));
}

void log_book::ship_to(std::function<void(log_shipment)> fn,
                       std::size_t ship_above) {
  std::lock_guard guard{mtx_};
  ship_ = std::move(fn);
  ship_above_ = ship_above;
}

bool log_book::shared() const {
  std::lock_guard guard{mtx_};
  return static_cast<bool>(ship_);
}

void log_book::ship_pending() {
  std::lock_guard guard{mtx_};
  if (!ship_)
    return;
  for (auto& [id, log] : live_)
    ship(id, log);
}

void log_book::write_time(int64_t id, uint64_t offset, int64_t ms) {
  // Rare (once a second at most), so not kept open: the logs' descriptors
  // stay within max_open_ but for this moment.
  auto fd = ::open(times_path(id).c_str(),
                   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0)
    return;
  write_all(fd, std::to_string(offset) + ' ' + std::to_string(ms) + '\n');
  ::close(fd);
}

void log_book::close(int64_t id) {
  std::lock_guard guard{mtx_};
  if (auto log = live_.find(id); log != live_.end() && ship_)
    ship(id, log->second);
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

std::string log_book::times_path(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + ".times";
}

std::string log_book::redact(std::string_view text) const {
  return redact_(text);
}

namespace {

/// Unix ms of an ISO-8601 time as the store writes them
/// ("2026-12-06T03:29:52.123Z"); nullopt when it is none.
std::optional<int64_t> unix_ms(std::string_view iso) {
  auto at = parse_time(iso);
  if (!at)
    return std::nullopt;
  using namespace std::chrono;
  return duration_cast<milliseconds>(at->time_since_epoch()).count();
}

} // namespace

std::optional<log_piece> unstarted_log(const deployment_detail& d,
                                       const log_book& logs) {
  const auto& row = d.row;
  if (!d.found || !terminal(row.state) || row.finished_at.empty()
      || !d.started_at.empty())
    return std::nullopt;
  log_piece piece;
  piece.found = true;
  piece.ended = true;
  piece.bytes = logs.line_of(stream::heaven,
                             to_string(row.state) + ": " + row.description);
  piece.size = static_cast<int64_t>(piece.bytes.size());
  if (auto ms = unix_ms(row.finished_at))
    piece.times = "0 " + std::to_string(*ms) + "\n";
  return piece;
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
