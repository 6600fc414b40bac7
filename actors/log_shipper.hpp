/// Several heaven instances share the deployments' logs through the store:
/// the instance that runs a deployment ships what its log book gains to the
/// store (`log_atom` appends), and the link key is the one the database
/// holds, so any instance serves any deployment's log link.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"

namespace heaven {

class log_book;

/// Makes `logs` ship what each live log gains to `store`: every `every`
/// (by a small actor that ends with the store) and, at a log's close, its
/// last bytes, sent before `close` returns, so before the deployment's
/// end (which its actor sends to the store after closing the log) and
/// thus stored before it. Call it before the first deployment opens its
/// log. Appends are sent as they are (the store's errors are its log
/// lines; a piece it could not store is missing from the shared log).
void ship_logs(caf::actor_system& sys, const std::shared_ptr<log_book>& logs,
               store_actor store,
               std::chrono::milliseconds every
               = std::chrono::milliseconds(250));

/// The key behind the log and lock links every instance shares: the store's
/// secret "log_key", made from `fresh` when there is none yet. Waits up to
/// 30 s for the store; throws std::runtime_error when it does not answer.
std::string shared_log_key(caf::actor_system& sys, const store_actor& store,
                           const std::string& fresh);

} // namespace heaven
