/// The store contract on PostgreSQL: the connection and the writes. (stub)
#include "actors/pg_store.hpp"

#include <stdexcept>

namespace heaven {

pg_store::pg_store(const std::string& url, pg_options opts)
  : url_(url), opts_(std::move(opts)) {
  throw pg::error("the PostgreSQL store is not built yet");
}

pg_store::~pg_store() = default;

bool pg_store::in_batch() const {
  return batch_;
}

accept_result pg_store::accept(const inbound_event&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

bool pg_store::start(int64_t, const std::string&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

bool pg_store::finish(int64_t, const provider_outcome&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

bool pg_store::claim(const auto_deployment&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::queue_creation(const auto_deployment&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::change_outbox(const outbox_change&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

bool pg_store::remove_lock(const std::string&, const std::string&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::set_repository_active(const std::string&, bool) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::begin_batch() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::commit_batch() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

pg::connection& pg_store::connection() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

bool pg_store::retry_after(const pg::error&, int) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

} // namespace heaven
