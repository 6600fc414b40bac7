/// The HTTP ingress's live log: one deployment's log sent as a chunked
/// response while it grows. Internal to the ingress (Beast in the header):
/// include it from actors/http_ingress.cpp, actors/ingress_log.cpp and its
/// test only.
#pragma once

// Boost 1.74's Asio needs <utility> first under C++20.
#include <utility>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

class log_book;

/// Follows one deployment's log for one connection: the response header,
/// then what the log file gains, every 200 ms while the log is live, then
/// the last chunk once it is closed and fully sent.
///
/// When the log book's logs are shared (several instances: see
/// log_book::shared), the log is read from the store instead (`log_atom`
/// reads, asked from a short-lived actor; the io thread looks for the
/// answer every few ms and never waits): what it gains every 200 ms until
/// the store says the deployment ended and all of it is sent. Any instance
/// serves any deployment's log that way; one without any log yet is
/// waited for (200, nothing sent until it comes).
///
/// A deployment that ended before it started has no log file and nothing
/// stored: its log is the one line of its end, made from its row (see
/// unstarted_log, asked from the store from a short-lived actor too).
class log_follower {
public:
  /// What to do when the stream fails (`failed`), when the whole log is
  /// sent and the last chunk is about to be (`complete`: the client may
  /// have it all the moment it is written), and once the response ended
  /// (`ended(ec, keep_alive)`). They are called only while an operation
  /// holds the owner (see start), so they may capture it by reference.
  struct callbacks {
    std::function<void()> failed;
    std::function<void()> complete;
    std::function<void(boost::beast::error_code, bool)> ended;
  };

  /// `sys` and `store` are needed when the logs are shared.
  log_follower(boost::beast::tcp_stream& stream,
               boost::asio::steady_timer& timer, std::shared_ptr<log_book> logs,
               caf::actor_system* sys = nullptr, store_actor store = {});
  ~log_follower();
  log_follower(const log_follower&) = delete;
  log_follower& operator=(const log_follower&) = delete;

  /// Opens the log of deployment `id`, to be sent from byte `from` on (the
  /// page already shows what is before; clamped to the file's size); false
  /// when there is none (then see open_ended).
  bool open(int64_t id, uint64_t from = 0);

  /// Deployment `id` has no log file: asks the store whether it ended
  /// before it started. On the io thread, `then` gets 200 when its one line
  /// is ready to be sent (from byte `from` on) by `start`, 404 when it is
  /// not such a deployment (unknown, or not ended), 503 when the store did
  /// not answer. `owner` is held while waiting. False (and no call of
  /// `then`) when there is no store to ask.
  bool open_ended(int64_t id, uint64_t from, std::weak_ptr<void> owner,
                  std::function<void(int)> then);

  /// Sends the log opened last, as the answer to a request of HTTP
  /// `version`. Each pending operation holds `owner` (the connection, which
  /// holds this follower), so neither is gone before it completes.
  void start(unsigned version, bool keep_alive, std::weak_ptr<void> owner,
             callbacks cb);

  /// The connection is closing: send nothing more.
  void stop() {
    stopped_ = true;
  }

  /// What a store read left for the io thread (see follow_store).
  struct store_answer;

private:
  void follow();
  /// What follows a chunk sent: the end when it was the whole rest of the
  /// log, else more of it.
  void next();
  /// Sends `chunk_`, the whole rest of the log, then the end.
  void send_whole();
  /// Calls `then` on the io thread once `answer_` is ready.
  void when_answered(std::function<void()> then);
  void close_file();
  /// follow() for a log read from the store: asks for what follows
  /// `offset_`, then `take_answer` sends it.
  void follow_store();
  void take_answer();
  /// Writes `chunk_` as a chunk, then follows on.
  void send_chunk();
  /// All is sent: the last chunk ends the response.
  void send_last();

  boost::beast::tcp_stream& stream_;
  boost::asio::steady_timer& timer_;
  std::shared_ptr<log_book> logs_;
  caf::actor_system* sys_;
  store_actor store_;
  /// Reading from the store (the logs are shared), and the read in flight.
  bool from_store_ = false;
  std::shared_ptr<store_answer> answer_;
  /// `chunk_` is the whole rest of the log (a deployment that ended before
  /// it started: its one line).
  bool whole_ = false;
  callbacks cb_;
  std::weak_ptr<void> owner_;
  bool stopped_ = false;
  int fd_ = -1;
  int64_t id_ = 0;
  off_t offset_ = 0;
  std::string chunk_;
  std::optional<boost::beast::http::response<boost::beast::http::empty_body>>
    res_;
  std::optional<
    boost::beast::http::response_serializer<boost::beast::http::empty_body>>
    serializer_;
};

} // namespace heaven
