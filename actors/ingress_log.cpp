#include "actors/ingress_log.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

#include <boost/asio/write.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
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
/// The most one read from the store asks for.
constexpr int64_t store_chunk = 1024 * 1024;
/// How often the io thread looks for the store's answer.
constexpr auto answer_poll = std::chrono::milliseconds(5);
/// The store answers long before this.
constexpr auto store_timeout = std::chrono::seconds(9);

} // namespace

/// Filled by the actor that asks the store; read by the io thread.
struct log_follower::store_answer {
  std::mutex mtx;
  bool ready = false;
  bool failed = false;
  /// `piece` is the one line of a deployment that ended before it started,
  /// from the offset asked for on: all there is to send.
  bool whole = false;
  log_piece piece;
};

namespace {

/// Asks `store` for deployment `id` and answers `answer`: with its one
/// line from byte `from` on when it ended before it started (see
/// unstarted_log), else with `otherwise`.
void ask_unstarted(caf::event_based_actor* self, const store_actor& store,
                   std::shared_ptr<log_book> logs, int64_t id, uint64_t from,
                   std::shared_ptr<log_follower::store_answer> answer,
                   log_piece otherwise) {
  self->request(store, store_timeout, detail_atom::value, id)
    .then(
      [answer, logs, from, otherwise](deployment_detail& d) {
        auto line = unstarted_log(d, *logs);
        std::lock_guard guard{answer->mtx};
        if (line) {
          auto& bytes = line->bytes;
          bytes.erase(0, std::min<std::size_t>(from, bytes.size()));
          answer->piece = std::move(*line);
          answer->whole = true;
        } else {
          answer->piece = otherwise;
        }
        answer->ready = true;
      },
      [answer, self, id](caf::error& err) {
        spdlog::warn("ingress could not read deployment {}: {}", id,
                     self->system().render(err));
        std::lock_guard guard{answer->mtx};
        answer->failed = answer->ready = true;
      });
}

} // namespace

log_follower::log_follower(beast::tcp_stream& stream, net::steady_timer& timer,
                           std::shared_ptr<log_book> logs,
                           caf::actor_system* sys, store_actor store)
  : stream_(stream), timer_(timer), logs_(std::move(logs)), sys_(sys),
    store_(std::move(store)) {
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
  whole_ = false;
  from_store_ = sys_ != nullptr && store_ && logs_->shared();
  if (from_store_) {
    close_file();
    id_ = id;
    offset_ = static_cast<off_t>(from);
    return true;
  }
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

bool log_follower::open_ended(int64_t id, uint64_t from,
                              std::weak_ptr<void> owner,
                              std::function<void(int)> then) {
  if (sys_ == nullptr || !store_)
    return false;
  close_file();
  whole_ = false;
  from_store_ = false;
  id_ = id;
  offset_ = static_cast<off_t>(from);
  owner_ = std::move(owner);
  auto answer = std::make_shared<store_answer>();
  answer_ = answer;
  sys_->spawn([answer, store = store_, logs = logs_, id,
               from](caf::event_based_actor* self) {
    ask_unstarted(self, store, logs, id, from, answer, {});
  });
  when_answered([this, then = std::move(then)] {
    bool failed = false;
    {
      std::lock_guard guard{answer_->mtx};
      failed = answer_->failed;
      whole_ = !failed && answer_->whole;
      chunk_ = std::move(answer_->piece.bytes);
    }
    answer_.reset();
    then(failed ? 503 : whole_ ? 200 : 404);
  });
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
                             if (whole_)
                               return send_whole();
                             if (from_store_)
                               return follow_store();
                             follow();
                           });
}

void log_follower::next() {
  if (whole_)
    return send_last();
  if (from_store_)
    return follow_store();
  follow();
}

void log_follower::send_whole() {
  if (stopped_)
    return;
  if (chunk_.empty())
    return send_last();
  send_chunk();
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
    return send_chunk();
  }
  if (live) {
    timer_.expires_after(log_poll);
    timer_.async_wait([this, keep = owner_.lock()](beast::error_code ec) {
      if (!ec)
        follow();
    });
    return;
  }
  send_last();
}

void log_follower::send_chunk() {
  stream_.expires_after(write_timeout);
  net::async_write(stream_, http::make_chunk(net::buffer(chunk_)),
                   [this, keep = owner_.lock()](beast::error_code ec,
                                                std::size_t) {
                     if (ec)
                       return cb_.failed();
                     next();
                   });
}

void log_follower::send_last() {
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

/// Asks the store for what follows `offset_`; the answer is looked for on
/// the io thread (no foreign thread touches the connection).
void log_follower::follow_store() {
  if (stopped_)
    return;
  auto answer = std::make_shared<store_answer>();
  answer_ = answer;
  sys_->spawn([answer, store = store_, logs = logs_, id = id_,
               from = static_cast<int64_t>(offset_)](
                caf::event_based_actor* self) {
    self->request(store, store_timeout, log_atom::value, id, from, store_chunk)
      .then(
        [answer, self, store, logs, id, from](log_piece& piece) {
          // Ended, and nothing stored: it may have ended before it started.
          if (!piece.found && piece.ended)
            return ask_unstarted(self, store, logs, id,
                                 static_cast<uint64_t>(from), answer,
                                 std::move(piece));
          std::lock_guard guard{answer->mtx};
          answer->piece = std::move(piece);
          answer->ready = true;
        },
        [answer, self, id](caf::error& err) {
          spdlog::warn("ingress could not read the log of deployment {}: {}",
                       id, self->system().render(err));
          std::lock_guard guard{answer->mtx};
          answer->failed = answer->ready = true;
        });
  });
  when_answered([this] { take_answer(); });
}

void log_follower::when_answered(std::function<void()> then) {
  if (stopped_)
    return;
  bool ready = false;
  {
    std::lock_guard guard{answer_->mtx};
    ready = answer_->ready;
  }
  if (ready)
    return then();
  timer_.expires_after(answer_poll);
  timer_.async_wait([this, then = std::move(then),
                     keep = owner_.lock()](beast::error_code ec) mutable {
    if (!ec)
      when_answered(std::move(then));
  });
}

/// Sends the store's answer: its bytes, or the end once the deployment
/// ended and nothing more is stored, or looks again later.
void log_follower::take_answer() {
  log_piece piece;
  bool failed = false;
  bool whole = false;
  {
    std::lock_guard guard{answer_->mtx};
    failed = answer_->failed;
    whole = answer_->whole;
    piece = std::move(answer_->piece);
  }
  answer_.reset();
  if (failed)
    return cb_.failed();
  if (whole) {
    whole_ = true;
    chunk_ = std::move(piece.bytes);
    return send_whole();
  }
  if (!piece.bytes.empty()) {
    offset_ += static_cast<off_t>(piece.bytes.size());
    chunk_ = std::move(piece.bytes);
    return send_chunk();
  }
  // Read in one transaction with the deployment's state, and the log's
  // last piece is stored before its end: nothing more will come.
  if (piece.ended)
    return send_last();
  timer_.expires_after(log_poll);
  timer_.async_wait([this, keep = owner_.lock()](beast::error_code ec) {
    if (!ec)
      follow_store();
  });
}

} // namespace heaven
