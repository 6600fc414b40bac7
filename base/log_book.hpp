/// Per-deployment log files, shared by the deployment actors (writers) and
/// the HTTP ingress (readers, following live logs).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/log_format.hpp" // redactor
#include "base/text.hpp"       // equal_constant_time, to check the tokens
#include "messages/types.hpp"

namespace heaven {

/// New bytes of a live log, handed on for the store (several heaven
/// instances share the logs through it): `bytes` go at `offset` of
/// deployment `id`'s log, `times` are the `.times` records of their lines.
struct log_shipment {
  int64_t id = 0;
  uint64_t offset = 0;
  std::string bytes;
  std::string times;
};

/// Thread-safe book of deployment logs under one directory. Every line written
/// has the configured secrets replaced by "[redacted]". Appends never block
/// on anything but a short mutex and a buffered write.
///
/// Beside each log `<id>.log` (plain lines, byte for byte what the log link
/// streams) lives `<id>.times`: whenever a line is appended in another
/// second (Unix time) than the log's previous line, one record
/// "<byte offset of the line in the log> <Unix ms>\n" is appended to it
/// first, so a line's time is that of the last record at or before it.
class log_book {
public:
  /// Unix time in milliseconds.
  using clock = std::function<int64_t()>;

  /// Logs live in `dir` (created if missing); `secrets` are values that must
  /// never be written (tokens, keys); empty and very short ones are ignored.
  /// At most `max_open_files` logs stay open at once (0: an eighth of the
  /// process's descriptor limit, between 16 and 2048); the others are
  /// reopened when written. The rest of the limit is for sockets: each
  /// API deployment holds its build's output stream open. `now` tells the
  /// lines' times (empty: the system clock).
  log_book(std::string dir, std::vector<std::string> secrets,
           std::size_t max_open_files = 0, clock now = {});
  ~log_book();

  log_book(const log_book&) = delete;
  log_book& operator=(const log_book&) = delete;

  /// Creates (or reopens for append) the log of deployment `id` and marks it
  /// live.
  void open(int64_t id);

  /// Appends one line. heaven's own lines are prefixed with "heaven: ".
  /// Lines for a log that is not open are dropped.
  void append(int64_t id, stream source, std::string_view text);

  /// Flushes and closes the log; it is no longer live.
  void close(int64_t id);

  /// True while deployment `id`'s log is open.
  bool live(int64_t id) const;

  /// The file that holds deployment `id`'s log.
  std::string path(int64_t id) const;

  /// The file that holds the times of deployment `id`'s log lines.
  std::string times_path(int64_t id) const;

  /// Replaces every secret in `text` with "[redacted]".
  std::string redact(std::string_view text) const;

  /// The line `append(id, source, text)` writes: "heaven: " before
  /// heaven's own, `text` redacted, '\n'.
  std::string line_of(stream source, std::string_view text) const;

  /// From now on (call it before the first `open`), what each live log
  /// gains is also kept to be handed to `fn`: by `ship_pending`, at once
  /// when more than `ship_above` bytes wait, and the rest by `close`, so
  /// that a log's last bytes are shipped before `close` returns. `fn` is
  /// called with the book's lock held (one log's shipments go in order):
  /// it must not block nor call the book. Without it nothing is kept.
  void ship_to(std::function<void(log_shipment)> fn,
               std::size_t ship_above = 1024 * 1024);

  /// Hands what every live log gained since its last shipment on.
  void ship_pending();

  /// True once `ship_to` was called: the logs are shared through the store
  /// (several instances), and the log link and the pages read them there.
  bool shared() const;

private:
  /// The file of live log `id`, opened if needed (caller holds `mtx_`);
  /// -1 when it cannot be opened. At most `max_open_` stay open, the most
  /// recently written ones: thousands of deployments at once must not cost
  /// thousands of file descriptors.
  int file_for(int64_t id);

  /// Appends "<offset> <ms>\n" to the times of `id` (caller holds `mtx_`).
  void write_time(int64_t id, uint64_t offset, int64_t ms);

  struct live_log;

  /// Ships what `log` gained, if anything (caller holds `mtx_`).
  void ship(int64_t id, live_log& log);

  /// What is known of a live log.
  struct live_log {
    /// Its size: the offset of the next line.
    uint64_t size = 0;
    /// The Unix second of its last line; -1 before the first since opened.
    int64_t second = -1;
    /// With shipping: the bytes and times records not shipped yet, and
    /// the offset of the first of those bytes.
    std::string unshipped;
    std::string unshipped_times;
    uint64_t shipped = 0;
  };

  /// An open log file and its place in `recent_`.
  struct handle {
    int fd = -1;
    std::list<int64_t>::iterator place;
  };

  std::string dir_;
  std::size_t max_open_;
  redactor redact_;
  clock now_;
  mutable std::mutex mtx_;
  std::unordered_map<int64_t, live_log> live_;
  std::unordered_map<int64_t, handle> files_;
  /// Ids of the open files, most recently written first.
  std::list<int64_t> recent_;
  std::function<void(log_shipment)> ship_;
  std::size_t ship_above_ = 0;
};

/// The log of deployment `d` when it has none (no file, nothing in the
/// store): one that ended before it started (the rules refused it at intake,
/// or it ended while it waited) never ran, and heaven writes no log for it.
/// Its log is the one line of its end, as the log book would have written
/// it ("heaven: <state>: <description>\n", redacted by `logs`), with the
/// time it ended (a times record at offset 0); `found` and `ended` are
/// true. nullopt for any other deployment: unknown, not ended, or started
/// (a log of one that ran is never made up).
std::optional<log_piece> unstarted_log(const deployment_detail& d,
                                       const log_book& logs);

/// The unguessable token that opens deployment `id`'s log: hex of
/// HMAC-SHA256(key, "log:" + id), 32 hex digits.
std::string log_token(std::string_view key, int64_t id);

/// The CSRF token of session `session`'s forms: hex of HMAC-SHA256(key,
/// "csrf:" + session), 32 hex digits.
std::string csrf_token(std::string_view key, std::string_view session);

/// The token that opens `GET /locks`: hex of HMAC-SHA256(key, "locks"),
/// 32 hex digits (`heaven locks` prints the link).
std::string locks_token(std::string_view key);

} // namespace heaven
