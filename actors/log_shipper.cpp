#include "actors/log_shipper.hpp"

#include <stdexcept>
#include <utility>

#include <caf/all.hpp>

#include "base/log_book.hpp"

namespace heaven {

namespace {

/// Ships what the live logs gained every `every`; linked to the store, so
/// it ends with it.
caf::behavior shipper(caf::event_based_actor* self,
                      std::shared_ptr<log_book> logs, store_actor store,
                      std::chrono::milliseconds every) {
  self->link_to(store);
  self->delayed_send(self, every, tick_atom::value);
  return {
    [=](tick_atom) {
      logs->ship_pending();
      self->delayed_send(self, every, tick_atom::value);
    },
  };
}

} // namespace

void ship_logs(caf::actor_system& sys, const std::shared_ptr<log_book>& logs,
               store_actor store, std::chrono::milliseconds every) {
  // Sent from the thread that appends or closes, with the book's lock
  // held: one log's pieces reach the store in order, and a deployment's
  // last piece before the end its actor sends after closing the log.
  logs->ship_to([store](log_shipment s) {
    caf::anon_send(store, log_atom::value, s.id, static_cast<int64_t>(s.offset),
                   std::move(s.bytes), std::move(s.times));
  });
  sys.spawn(shipper, logs, std::move(store), every);
}

std::string shared_log_key(caf::actor_system& sys, const store_actor& store,
                           const std::string& fresh) {
  std::string key;
  std::string error;
  caf::scoped_actor self{sys};
  self
    ->request(store, std::chrono::seconds(30), secret_atom::value,
              std::string{"log_key"}, fresh)
    .receive([&](std::string& value) { key = std::move(value); },
             [&](caf::error& err) { error = sys.render(err); });
  if (!error.empty())
    throw std::runtime_error("cannot read the shared log key: " + error);
  return key;
}

} // namespace heaven
