/// The store contract on PostgreSQL: logs and shared secrets (stub).
#include "actors/pg_store.hpp"

#include <stdexcept>

namespace heaven {

void pg_store::append_log(int64_t, int64_t, const std::string&,
                          const std::string&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

log_piece pg_store::read_log(int64_t, int64_t, int64_t) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::string pg_store::shared_secret(const std::string&, const std::string&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

} // namespace heaven
