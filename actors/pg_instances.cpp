/// The store contract on PostgreSQL: several instances (stub).
#include "actors/pg_store.hpp"

#include <stdexcept>

namespace heaven {

void pg_rows::join_instance(pg::connection&, const pg_options&) {
}

std::string new_instance_id(const std::string& host) {
  return host;
}

bool pg_store::shared() const {
  return true;
}

std::vector<unfinished_deployment> pg_store::claim_queued(int32_t) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

lease_report pg_store::renew_lease(const std::string&, committed_rows&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

void pg_store::leave() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

} // namespace heaven
