/// Providers by name: the core never names a provider.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "messages/interfaces.hpp"
#include "messages/provider_job.hpp"

namespace heaven {

/// A provider as its factory spawned it: the handle the deployment cancels,
/// and the same actor as a process provider when it runs child processes
/// (null otherwise): a stopping heaven SIGKILLs those through it.
struct provider_handle {
  provider_handle() = default;

  /// A provider that runs no process (any interface extending
  /// provider_actor).
  template <class... Sigs>
  provider_handle(caf::typed_actor<Sigs...> x) : actor(std::move(x)) {
    // nop
  }

  provider_handle(process_provider_actor x) : actor(x), processes(x) {
    // nop
  }

  provider_actor actor;
  process_provider_actor processes;
};

/// Spawns a provider for `job`. The provider sends `log` lines and its
/// `result` to `deployment`, and answers `cancel`.
using provider_factory = std::function<provider_handle(
  caf::actor_system& sys, provider_job job, deployment_actor deployment)>;

/// The providers heaven knows, registered by the entry point at start-up.
class provider_registry {
public:
  /// Registers `factory` under `name` (replacing an earlier one). Providers
  /// that only talk to APIs (heroku, ...) need no checkout of the repository.
  void add(std::string name, provider_factory factory,
           bool needs_checkout = true) {
    factories_[std::move(name)] = entry{std::move(factory), needs_checkout};
  }

  /// The factory registered as `name`, or nullptr.
  const provider_factory* find(const std::string& name) const {
    auto i = factories_.find(name);
    return i == factories_.end() ? nullptr : &i->second.factory;
  }

  /// Whether provider `name` runs in a checkout of the repository.
  bool needs_checkout(const std::string& name) const {
    auto i = factories_.find(name);
    return i == factories_.end() || i->second.needs_checkout;
  }

  /// All registered names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> result;
    for (auto& kvp : factories_)
      result.push_back(kvp.first);
    return result;
  }

private:
  struct entry {
    provider_factory factory;
    bool needs_checkout = true;
  };
  std::map<std::string, entry> factories_;
};

} // namespace heaven
