#include "actors/ingress_log.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "base/log_book.hpp"

namespace heaven {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

/// The longest one write may take.
constexpr auto write_timeout = std::chrono::seconds(60);
/// How often a live log is checked for growth.
constexpr auto log_poll = std::chrono::milliseconds(200);
constexpr std::size_t log_chunk = 64 * 1024;

} // namespace

log_follower::log_follower(beast::tcp_stream& stream, net::steady_timer& timer,
                           std::shared_ptr<log_book> logs)
  : stream_(stream), timer_(timer), logs_(std::move(logs)) {
}

log_follower::~log_follower() {
  close_file();
}

void log_follower::close_file() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

bool log_follower::open(int64_t id, uint64_t from) {
  int fd = ::open(logs_->path(id).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct stat st {};
  if (from > 0 && ::fstat(fd, &st) != 0) {
    ::close(fd);
    return false;
  }
  close_file();
  fd_ = fd;
  id_ = id;
  offset_ = from > 0 ? static_cast<off_t>(
              std::min<uint64_t>(from, static_cast<uint64_t>(st.st_size)))
                     : 0;
  return true;
}

void log_follower::start(unsigned version, bool keep_alive,
                         std::weak_ptr<void> owner, callbacks cb) {
  cb_ = std::move(cb);
  owner_ = std::move(owner);
  res_.emplace(http::status::ok, version);
  res_->set(http::field::server, "heaven");
  res_->set(http::field::content_type, "text/plain; charset=utf-8");
  res_->set(http::field::cache_control, "no-cache");
  res_->set("X-Content-Type-Options", "nosniff");
  res_->keep_alive(keep_alive);
  res_->chunked(true);
  serializer_.emplace(*res_);
  stream_.expires_after(write_timeout);
  http::async_write_header(stream_, *serializer_,
                           [this, keep = owner_.lock()](beast::error_code ec,
                                                        std::size_t) {
                             if (ec)
                               return cb_.failed();
                             follow();
                           });
}

/// Sends what the log file gained since the last look; waits while the log
/// is live; ends the response once it is closed and fully sent.
void log_follower::follow() {
  if (stopped_)
    return;
  // Asked before reading: a log that was closed before a read that found
  // nothing new is complete.
  bool live = logs_->live(id_);
  chunk_.resize(log_chunk);
  auto n = ::pread(fd_, chunk_.data(), chunk_.size(), offset_);
  if (n < 0) {
    spdlog::warn("ingress could not read the log of deployment {}: {}", id_,
                 std::strerror(errno));
    return cb_.failed();
  }
  if (n > 0) {
    chunk_.resize(static_cast<std::size_t>(n));
    offset_ += n;
    stream_.expires_after(write_timeout);
    net::async_write(stream_, http::make_chunk(net::buffer(chunk_)),
                     [this, keep = owner_.lock()](beast::error_code ec,
                                                  std::size_t) {
                       if (ec)
                         return cb_.failed();
                       follow();
                     });
    return;
  }
  if (live) {
    timer_.expires_after(log_poll);
    timer_.async_wait([this, keep = owner_.lock()](beast::error_code ec) {
      if (!ec)
        follow();
    });
    return;
  }
  close_file();
  cb_.complete();
  bool keep_alive = res_->keep_alive();
  stream_.expires_after(write_timeout);
  net::async_write(stream_, http::make_chunk_last(),
                   [this, keep_alive,
                    keep = owner_.lock()](beast::error_code ec, std::size_t) {
                     cb_.ended(ec, keep_alive);
                   });
}

} // namespace heaven
