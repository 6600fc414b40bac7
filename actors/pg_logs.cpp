/// The store contract on PostgreSQL: the deployments' logs, stored in chunks
/// (log_chunks: the bytes of one shipment at its offset in the log, with the
/// times records of its lines), and the secrets every instance shares.
#include "actors/pg_store.hpp"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "base/text.hpp"

namespace heaven {

namespace {

/// The value of one hex digit of PostgreSQL's hex output; a byte that is
/// none is an error.
int hex_digit(char c) {
  int v = hex_value(c);
  if (v < 0)
    throw pg::error("unexpected byte in a bytea's hex text");
  return v;
}

/// The bytes of a bytea column as PostgreSQL's text output has them
/// ("\x" and two hex digits a byte).
std::string from_bytea(const std::string& text) {
  std::string_view hex{text};
  if (hex.substr(0, 2) != "\\x")
    throw pg::error("a bytea arrived in another format than hex");
  hex.remove_prefix(2);
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(
      static_cast<char>(hex_digit(hex[i]) * 16 + hex_digit(hex[i + 1])));
  return out;
}

/// Adds the records ("<offset> <ms>" lines) of `times` at or after `from`
/// to `out`; the last one before `from` goes to `before` (the time of the
/// line `from` is in).
void keep_times(std::string_view times, int64_t from, std::string& out,
                std::string& before) {
  while (!times.empty()) {
    auto nl = times.find('\n');
    auto line = times.substr(0, nl);
    times.remove_prefix(nl == std::string_view::npos ? times.size() : nl + 1);
    int64_t offset = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(),
                                   offset);
    if (ec != std::errc{} || line.empty())
      continue;
    if (offset < from)
      before = std::string{line} + '\n';
    else
      out.append(line).push_back('\n');
  }
}

} // namespace

void pg_store::append_log(int64_t id, int64_t offset, const std::string& bytes,
                          const std::string& times) {
  if (bytes.empty() && times.empty())
    return;
  transact([&](pg::connection& conn) {
    conn.query("INSERT INTO log_chunks(deployment_id, start_offset, data, "
               "times) VALUES ($1, $2, decode($3, 'hex'), $4) "
               "ON CONFLICT (deployment_id, start_offset) DO NOTHING",
               {pg::int64_param(id), pg::int64_param(offset), to_hex(bytes),
                times});
    return 0;
  });
}

log_piece pg_store::read_log(int64_t id, int64_t from, int64_t max) {
  return transact([&](pg::connection& conn) {
    log_piece piece;
    auto ended = conn.query(
      "SELECT state IN ('success', 'failure', 'error') FROM deployments "
      "WHERE id = $1",
      {pg::int64_param(id)});
    piece.ended = ended.rows() == 1 && ended.text(0, 0) == "t";
    auto size = conn.query("SELECT count(*), coalesce(max(start_offset + "
                           "length(data)), 0) FROM log_chunks "
                           "WHERE deployment_id = $1",
                           {pg::int64_param(id)});
    piece.found = size.int64(0, 0) > 0;
    piece.size = size.int64(0, 1);
    if (!piece.found || from >= piece.size)
      return piece;
    // The chunks from the one `from` is in on, in order, until `max` bytes
    // (at least one chunk).
    auto chunks = conn.query(
      "SELECT start_offset, data, times FROM log_chunks "
      "WHERE deployment_id = $1 AND start_offset + length(data) > $2 "
      "ORDER BY start_offset",
      {pg::int64_param(id), pg::int64_param(from)});
    int64_t at = from;
    std::string before;
    for (int i = 0; i < chunks.rows(); ++i) {
      auto start = chunks.int64(i, 0);
      if (start > at)
        break; // a gap: what follows is not stored yet
      auto data = from_bytea(chunks.text(i, 1));
      auto end = start + static_cast<int64_t>(data.size());
      if (end <= at)
        continue;
      piece.bytes.append(data, static_cast<std::size_t>(at - start));
      keep_times(chunks.text(i, 2), from, piece.times, before);
      at = end;
      if (max > 0 && static_cast<int64_t>(piece.bytes.size()) >= max)
        break;
    }
    piece.times.insert(0, before);
    return piece;
  });
}

std::string pg_store::shared_secret(const std::string& name,
                                    const std::string& fresh) {
  return transact([&](pg::connection& conn) {
    conn.query("INSERT INTO secrets(name, value) VALUES ($1, $2) "
               "ON CONFLICT (name) DO NOTHING",
               {name, fresh});
    return conn.query("SELECT value FROM secrets WHERE name = $1", {name})
      .text(0, 0);
  });
}

} // namespace heaven
