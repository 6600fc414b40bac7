/// The store contract's defaults: one instance on SQLite (see
/// store_backend.hpp).
#include "actors/store_backend.hpp"

#include <stdexcept>

namespace heaven {

store_backend::~store_backend() = default;

bool store_backend::shared() const {
  return false;
}

std::vector<unfinished_deployment> store_backend::claim_queued(int32_t) {
  throw std::logic_error("one heaven instance hands out its queued "
                         "deployments itself");
}

lease_report store_backend::renew_lease(const std::string&, committed_rows&,
                                        committed_rows&) {
  return {};
}

void store_backend::leave() {
  // Nothing is claimed and no lease is held.
}

void store_backend::append_log(int64_t, int64_t, const std::string&,
                               const std::string&) {
  throw std::logic_error("one heaven instance keeps logs in files");
}

log_piece store_backend::read_log(int64_t, int64_t, int64_t) {
  throw std::logic_error("one heaven instance keeps logs in files");
}

std::string store_backend::shared_secret(const std::string&,
                                         const std::string& fresh) {
  return fresh;
}

} // namespace heaven
