/// The STORE actor: heaven's database behind the store contract, and the
/// outboxes it hands committed rows to.
#include "actors/store.hpp"

#include <map>
#include <stdexcept>
#include <utility>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/sqlite_store.hpp"
#include "base/health.hpp"

namespace heaven {

namespace {

caf::error store_error(const std::string& what) {
  return caf::make_error(caf::sec::runtime_error, "store: " + what);
}

/// One log line saying what `accept` did with a delivery.
void log_accepted(const inbound_event& ev, const accept_result& res) {
  const auto& repo = ev.repo.empty() ? ev.deployment.repo : ev.repo;
  if (res.duplicate)
    spdlog::info("store saw delivery {} ({}) before; ignoring it", ev.delivery,
                 to_string(ev.type));
  else if (res.ignored)
    spdlog::info("store recorded delivery {} ({}) of {}, which is disabled: "
                 "ignoring it",
                 ev.delivery, to_string(ev.type), repo);
  else if (res.deployment_id != 0)
    spdlog::info(
      "store recorded delivery {} as deployment {} of {} to {}{}", ev.delivery,
      res.deployment_id, ev.deployment.repo, ev.deployment.environment,
      res.lock_state == lock_outcome::none
        ? std::string{}
        : " (" + to_string(res.lock_state) + ", held by "
            + (res.lock.actor.empty() ? "nobody" : res.lock.actor) + ")");
  else
    spdlog::debug("store recorded delivery {} ({})", ev.delivery,
                  to_string(ev.type));
}

using store_ptr = store_actor::stateful_pointer<store_state>;

/// Hands rows just committed to the outboxes subscribed to their kind.
void publish(store_ptr self, committed_rows& rows) {
  if (rows.empty())
    return;
  std::map<std::string, std::vector<outbox_row>> by_kind;
  for (auto& row : rows)
    by_kind[row.kind].push_back(std::move(row));
  rows.clear();
  for (auto& [kind, batch] : by_kind) {
    auto i = self->state.subscribers.find(kind);
    if (i == self->state.subscribers.end())
      continue;
    for (auto& sink : i->second)
      self->send(sink, outbox_atom::value, batch);
  }
}

/// Tells the health board whether the last write worked: a store that
/// cannot write makes /healthz say so until a write works again.
void wrote(store_ptr self, const char* what = nullptr) {
  auto& health = self->state.health;
  if (!health)
    return;
  if (what == nullptr) {
    if (health->recover("store"))
      spdlog::info("store can write again");
  } else {
    health->fail("store", std::string{"cannot write: "} + what);
  }
}

} // namespace

store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path,
      std::shared_ptr<health_board> health) {
  self->state.health = std::move(health);
  std::string open_error;
  try {
    self->state.db = std::make_unique<sqlite_store>(path, open_mode::create);
    spdlog::info("store opened {}", path);
  } catch (const std::exception& e) {
    open_error = e.what();
    spdlog::error("store {}", open_error);
    if (self->state.health)
      self->state.health->fail("store", open_error);
  }
  // Without a database every request is answered with the opening error, so
  // whoever asks first (start-up asks for pending deployments) learns why.
  auto db = [self, open_error]() -> store_backend& {
    if (!self->state.db)
      throw std::runtime_error(open_error);
    return *self->state.db;
  };
  return {
    [=](accept_atom, const inbound_event& ev) -> caf::result<accept_result> {
      committed_rows rows;
      try {
        auto res = db().accept(ev, rows);
        wrote(self);
        log_accepted(ev, res);
        publish(self, rows);
        return res;
      } catch (const std::exception& e) {
        spdlog::error("store could not record delivery {}: {}", ev.delivery,
                      e.what());
        wrote(self, e.what());
        return store_error(e.what());
      }
    },
    [=](start_atom, int64_t id,
        const std::string& description) -> caf::result<bool> {
      committed_rows rows;
      try {
        auto started = db().start(id, description, rows);
        wrote(self);
        if (!started)
          spdlog::warn("store found deployment {} not queued: it does not "
                       "start",
                       id);
        publish(self, rows);
        return started;
      } catch (const std::exception& e) {
        spdlog::error("store could not mark deployment {} running: {}", id,
                      e.what());
        wrote(self, e.what());
        return store_error(e.what());
      }
    },
    [=](finish_atom, int64_t id,
        const provider_outcome& outcome) -> caf::result<bool> {
      committed_rows rows;
      try {
        auto ended = db().finish(id, outcome, rows);
        wrote(self);
        if (!ended)
          spdlog::warn("store found deployment {} ended already: it keeps "
                       "its first end, not {}",
                       id, to_string(outcome.state));
        publish(self, rows);
        return ended;
      } catch (const std::exception& e) {
        spdlog::error("store could not mark deployment {} {}: {}", id,
                      to_string(outcome.state), e.what());
        wrote(self, e.what());
        return store_error(e.what());
      }
    },
    [=](subscribe_atom, const std::string& kind,
        const outbox_actor& sink) -> caf::result<std::vector<outbox_row>> {
      try {
        auto rows = db().unsettled(kind);
        self->state.subscribers[kind].push_back(sink);
        if (!rows.empty())
          spdlog::info("store has {} undelivered {} message(s) from "
                       "before",
                       rows.size(), kind);
        return rows;
      } catch (const std::exception& e) {
        spdlog::error("store could not read the {} outbox: {}", kind, e.what());
        return store_error(e.what());
      }
    },
    [=](outbox_atom, const outbox_change& change) -> caf::result<bool> {
      committed_rows rows;
      try {
        db().change_outbox(change, rows);
        wrote(self);
        publish(self, rows);
        return true;
      } catch (const std::exception& e) {
        spdlog::error("store could not settle {} outbox row(s): {}",
                      change.settled.size(), e.what());
        wrote(self, e.what());
        return store_error(e.what());
      }
    },
    [=](list_atom, int32_t n) -> caf::result<std::vector<deployment_row>> {
      try {
        return db().list(n);
      } catch (const std::exception& e) {
        spdlog::error("store could not list deployments: {}", e.what());
        return store_error(e.what());
      }
    },
    [=](pending_atom) -> caf::result<std::vector<unfinished_deployment>> {
      try {
        return db().pending();
      } catch (const std::exception& e) {
        spdlog::error("store could not list unfinished deployments: {}",
                      e.what());
        return store_error(e.what());
      }
    },
    [=](locks_atom) -> caf::result<std::vector<env_lock>> {
      try {
        return db().locks();
      } catch (const std::exception& e) {
        spdlog::error("store could not list locks: {}", e.what());
        return store_error(e.what());
      }
    },
    [=](latest_atom, const std::string& repo)
      -> caf::result<std::vector<deployed_environment>> {
      try {
        return db().latest(repo);
      } catch (const std::exception& e) {
        spdlog::error("store could not list the deployed environments of "
                      "{}: {}",
                      repo, e.what());
        return store_error(e.what());
      }
    },
    [=](claim_atom, const auto_deployment& x) -> caf::result<bool> {
      committed_rows rows;
      try {
        auto first = db().claim(x, rows);
        wrote(self);
        publish(self, rows);
        return first;
      } catch (const std::invalid_argument& e) {
        spdlog::error("store refuses the auto-deployment of {} ({}) to {} "
                      "at {}: {}",
                      x.repo, x.app, x.environment, x.sha, e.what());
        return store_error(e.what());
      } catch (const std::exception& e) {
        spdlog::error("store could not claim the auto-deployment of {} "
                      "({}) to {} at {}: {}",
                      x.repo, x.app, x.environment, x.sha, e.what());
        wrote(self, e.what());
        return store_error(e.what());
      }
    },
  };
}

// -- the command line's access ---------------------------------------------

std::vector<env_lock> read_locks(const std::string& path) {
  return sqlite_store{path, open_mode::existing}.locks();
}

bool remove_lock(const std::string& path, const std::string& repo,
                 const std::string& environment) {
  return sqlite_store{path, open_mode::existing}.remove_lock(repo, environment);
}

std::vector<repository_record> read_repositories(const std::string& path) {
  return sqlite_store{path, open_mode::existing}.repositories();
}

void set_repository_active(const std::string& path, const std::string& repo,
                           bool active) {
  sqlite_store{path, open_mode::existing}.set_repository_active(repo, active);
}

} // namespace heaven
