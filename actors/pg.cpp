#include "actors/pg.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>

#include <libpq-fe.h>
#include <poll.h>

namespace heaven::pg {

namespace {

/// `text` without trailing newlines and spaces (libpq ends its messages
/// with a newline).
std::string trimmed(const char* text) {
  std::string out = text == nullptr ? "" : text;
  while (!out.empty()
         && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  return out;
}

} // namespace

result::result(pg_result* res) : res_(res) {
}

result::~result() {
  if (res_ != nullptr)
    PQclear(res_);
}

result::result(result&& other) noexcept : res_(other.res_) {
  other.res_ = nullptr;
}

result& result::operator=(result&& other) noexcept {
  if (this != &other) {
    if (res_ != nullptr)
      PQclear(res_);
    res_ = other.res_;
    other.res_ = nullptr;
  }
  return *this;
}

std::string result::command() const {
  return res_ == nullptr ? "" : PQcmdStatus(res_);
}

int result::rows() const {
  return res_ == nullptr ? 0 : PQntuples(res_);
}

int result::columns() const {
  return res_ == nullptr ? 0 : PQnfields(res_);
}

int64_t result::affected() const {
  if (res_ == nullptr)
    return 0;
  std::string n = PQcmdTuples(res_);
  return n.empty() ? 0 : std::stoll(n);
}

bool result::is_null(int row, int col) const {
  if (row < 0 || row >= rows() || col < 0 || col >= columns())
    throw error("no row " + std::to_string(row) + ", column "
                + std::to_string(col) + " in the result");
  return PQgetisnull(res_, row, col) != 0;
}

std::string result::text(int row, int col) const {
  if (is_null(row, col))
    return {};
  return {PQgetvalue(res_, row, col),
          static_cast<size_t>(PQgetlength(res_, row, col))};
}

int64_t result::int64(int row, int col) const {
  if (is_null(row, col))
    throw error("column " + std::to_string(col) + " is NULL, not a number");
  auto x = text(row, col);
  int64_t out = 0;
  auto [end, ec] = std::from_chars(x.data(), x.data() + x.size(), out);
  if (ec != std::errc{} || end != x.data() + x.size())
    throw error("column " + std::to_string(col) + " is not a whole number");
  return out;
}

connection::connection(const std::string& url) {
  conn_ = PQconnectdb(url.c_str());
  if (conn_ == nullptr)
    throw error("cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    auto text = message();
    PQfinish(conn_);
    conn_ = nullptr;
    throw error("cannot connect to PostgreSQL: " + text);
  }
  // The server's notices and warnings (an advisory unlock of a lock not
  // held) are not errors: keep them off stderr.
  PQsetNoticeProcessor(
    conn_, [](void*, const char*) {}, nullptr);
}

connection::~connection() {
  if (conn_ != nullptr)
    PQfinish(conn_);
}

std::string connection::message() const {
  return trimmed(PQerrorMessage(conn_));
}

bool connection::ok() const {
  return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

namespace {

/// `res` when its statement succeeded; else throws `error` with the
/// server's message (or the connection's, when there is no result).
result checked(PGconn* conn, PGresult* res) {
  if (res == nullptr)
    throw error(trimmed(PQerrorMessage(conn)));
  result out{res};
  auto status = PQresultStatus(res);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    auto state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    throw error(trimmed(PQresultErrorMessage(res)),
                state == nullptr ? "" : state);
  }
  return out;
}

} // namespace

void connection::exec(const std::string& sql) {
  checked(conn_, PQexec(conn_, sql.c_str()));
}

std::string text_param(std::string_view s) {
  // The length of the valid UTF-8 sequence at s[i], 0 when there is none.
  auto valid_at = [&](size_t i) -> size_t {
    auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x01 && b < 0x80)
      return 1;
    size_t n = b >= 0xC2 && b <= 0xDF   ? 2
               : b >= 0xE0 && b <= 0xEF ? 3
               : b >= 0xF0 && b <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || i + n > s.size())
      return 0;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((b == 0xE0 && c1 < 0xA0) || (b == 0xED && c1 > 0x9F)
        || (b == 0xF0 && c1 < 0x90) || (b == 0xF4 && c1 > 0x8F))
      return 0;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return 0;
    return n;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (auto n = valid_at(i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

result connection::query(const std::string& sql,
                         const std::vector<param>& params) {
  std::vector<std::string> texts;
  texts.reserve(params.size());
  std::vector<const char*> values;
  values.reserve(params.size());
  for (auto& p : params) {
    if (!p) {
      values.push_back(nullptr);
      continue;
    }
    texts.push_back(text_param(*p));
    values.push_back(texts.back().c_str());
  }
  auto n = static_cast<int>(values.size());
  if (auto name = prepared(sql, n))
    return checked(conn_, PQexecPrepared(conn_, name->c_str(), n, values.data(),
                                         nullptr, nullptr, 0));
  return checked(conn_, PQexecParams(conn_, sql.c_str(), n, nullptr,
                                     values.data(), nullptr, nullptr, 0));
}

std::optional<std::string> connection::prepared(const std::string& sql,
                                                int params) {
  if (auto i = prepared_.find(sql); i != prepared_.end())
    return i->second;
  // Only statements PostgreSQL's PREPARE takes (not BEGIN or COMMIT).
  auto first = sql.find_first_not_of(" \t\n");
  auto word = first == std::string::npos ? std::string{} : sql.substr(first, 6);
  for (auto& c : word)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  bool preparable = word == "SELECT" || word == "INSERT" || word == "UPDATE"
                    || word == "DELETE" || word.rfind("WITH", 0) == 0;
  if (!preparable || prepared_.size() >= max_prepared)
    return std::nullopt;
  auto name = "heaven_" + std::to_string(prepared_.size() + 1);
  checked(conn_, PQprepare(conn_, name.c_str(), sql.c_str(), params, nullptr));
  prepared_.emplace(sql, name);
  return name;
}

int connection::backend_pid() const {
  return PQbackendPID(conn_);
}

namespace {

/// `name` quoted as an SQL identifier.
std::string identifier(PGconn* conn, const std::string& name) {
  auto quoted = PQescapeIdentifier(conn, name.c_str(), name.size());
  if (quoted == nullptr)
    throw error(trimmed(PQerrorMessage(conn)));
  std::string out = quoted;
  PQfreemem(quoted);
  return out;
}

} // namespace

void connection::listen(const std::string& channel) {
  exec("LISTEN " + identifier(conn_, channel));
}

void connection::unlisten(const std::string& channel) {
  exec("UNLISTEN " + identifier(conn_, channel));
}

void connection::notify(const std::string& channel,
                        const std::string& payload) {
  query("SELECT pg_notify($1, $2)", {channel, payload});
}

std::optional<notification>
connection::wait_notification(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (PQconsumeInput(conn_) == 0)
      throw error(message());
    if (auto n = PQnotifies(conn_)) {
      notification out{n->relname, n->extra == nullptr ? "" : n->extra,
                       n->be_pid};
      PQfreemem(n);
      return out;
    }
    auto now = clock::now();
    if (now >= deadline)
      return std::nullopt;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    pollfd fd{PQsocket(conn_), POLLIN, 0};
    if (fd.fd < 0)
      throw error("the PostgreSQL connection has no socket");
    auto rc = ::poll(&fd, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR)
      throw error("poll on the PostgreSQL connection failed");
  }
}

void connection::advisory_lock(int64_t key) {
  query("SELECT pg_advisory_lock($1::bigint)", {int64_param(key)});
}

bool connection::try_advisory_lock(int64_t key) {
  return query("SELECT pg_try_advisory_lock($1::bigint)", {int64_param(key)})
           .text(0, 0)
         == "t";
}

bool connection::advisory_unlock(int64_t key) {
  return query("SELECT pg_advisory_unlock($1::bigint)", {int64_param(key)})
           .text(0, 0)
         == "t";
}

transaction::transaction(connection& conn) : conn_(conn) {
  conn_.exec("BEGIN");
}

transaction::~transaction() {
  if (done_)
    return;
  try {
    conn_.exec("ROLLBACK");
  } catch (...) {
    // The connection is gone: the server rolled back already.
  }
}

void transaction::commit() {
  done_ = true;
  std::string tag;
  try {
    tag = conn_.query("COMMIT").command();
  } catch (const error& e) {
    if (!e.sqlstate.empty() || conn_.ok())
      throw;
    throw error("the connection was lost while committing, so the "
                "transaction may or may not have committed: "
                  + std::string{e.what()},
                "08007");
  }
  // COMMIT of a transaction that failed earlier answers ROLLBACK.
  if (tag != "COMMIT")
    throw error("the transaction failed earlier and was rolled back");
}

} // namespace heaven::pg
