/// The store contract on PostgreSQL: the reads. (stub)
#include "actors/pg_store.hpp"

#include <stdexcept>

namespace heaven {

std::vector<outbox_row> pg_store::unsettled(const std::string&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<deployment_row> pg_store::list(int32_t) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<deployment_row> pg_store::list(const deployment_filter&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

deployment_detail pg_store::detail(int64_t) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<unfinished_deployment> pg_store::pending() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<unfinished_deployment> pg_store::pending_after(int64_t, int32_t) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<env_lock> pg_store::locks() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<deployed_environment> pg_store::latest(const std::string&) {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

std::vector<repository_record> pg_store::repositories() {
  throw std::logic_error("the PostgreSQL store is not built yet");
}

} // namespace heaven
