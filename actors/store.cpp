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
  // A write of the store contract: `fn(db, rows)` commits and fills `rows`,
  // which go to their outboxes; the health board hears whether it worked.
  // `what` ("record delivery d-1") names it in the error line.
  auto write = [self, db](auto what, auto fn)
    -> caf::result<decltype(fn(db(), std::declval<committed_rows&>()))> {
    committed_rows rows;
    try {
      auto res = fn(db(), rows);
      wrote(self);
      publish(self, rows);
      return res;
    } catch (const std::exception& e) {
      spdlog::error("store could not {}: {}", what(), e.what());
      // A request the rules refuse says nothing of the disk.
      if (!dynamic_cast<const std::invalid_argument*>(&e))
        wrote(self, e.what());
      return store_error(e.what());
    }
  };
  // A read: `fn(db)`'s answer, or the error.
  auto read = [db](auto what, auto fn) -> caf::result<decltype(fn(db()))> {
    try {
      return fn(db());
    } catch (const std::exception& e) {
      spdlog::error("store could not {}: {}", what(), e.what());
      return store_error(e.what());
    }
  };
  return {
    [=](accept_atom, const inbound_event& ev) {
      return write([&] { return "record delivery " + ev.delivery; },
                   [&](store_backend& db, committed_rows& rows) {
                     auto res = db.accept(ev, rows);
                     log_accepted(ev, res);
                     return res;
                   });
    },
    [=](start_atom, int64_t id, const std::string& description) {
      return write(
        [&] { return "mark deployment " + std::to_string(id) + " running"; },
        [&](store_backend& db, committed_rows& rows) {
          auto started = db.start(id, description, rows);
          if (!started)
            spdlog::warn("store found deployment {} not queued: it does not "
                         "start",
                         id);
          return started;
        });
    },
    [=](finish_atom, int64_t id, const provider_outcome& outcome) {
      return write(
        [&] {
          return "mark deployment " + std::to_string(id) + " "
                 + to_string(outcome.state);
        },
        [&](store_backend& db, committed_rows& rows) {
          auto ended = db.finish(id, outcome, rows);
          if (!ended)
            spdlog::warn("store found deployment {} ended already: it keeps "
                         "its first end, not {}",
                         id, to_string(outcome.state));
          return ended;
        });
    },
    [=](subscribe_atom, const std::string& kind, const outbox_actor& sink) {
      return read([&] { return "read the " + kind + " outbox"; },
                  [&](store_backend& db) {
                    auto rows = db.unsettled(kind);
                    self->state.subscribers[kind].push_back(sink);
                    if (!rows.empty())
                      spdlog::info("store has {} undelivered {} message(s) "
                                   "from before",
                                   rows.size(), kind);
                    return rows;
                  });
    },
    [=](outbox_atom, const outbox_change& change) {
      return write(
        [&] {
          return "settle " + std::to_string(change.settled.size())
                 + " outbox row(s)";
        },
        [&](store_backend& db, committed_rows& rows) {
          db.change_outbox(change, rows);
          return true;
        });
    },
    [=](list_atom, int32_t n) {
      return read([] { return std::string{"list deployments"}; },
                  [&](store_backend& db) { return db.list(n); });
    },
    [=](pending_atom) {
      return read([] { return std::string{"list unfinished deployments"}; },
                  [](store_backend& db) { return db.pending(); });
    },
    [=](pending_atom, int64_t after, int32_t limit) {
      return read([] { return std::string{"list unfinished deployments"}; },
                  [&](store_backend& db) {
                    return db.pending_after(after, limit);
                  });
    },
    [=](locks_atom) {
      return read([] { return std::string{"list locks"}; },
                  [](store_backend& db) { return db.locks(); });
    },
    [=](latest_atom, const std::string& repo) {
      return read([&] { return "list the deployed environments of " + repo; },
                  [&](store_backend& db) { return db.latest(repo); });
    },
    [=](claim_atom, const auto_deployment& x) {
      return write(
        [&] {
          return "claim the auto-deployment of " + x.repo + " (" + x.app
                 + ") to " + x.environment + " at " + x.sha;
        },
        [&](store_backend& db, committed_rows& rows) {
          return db.claim(x, rows);
        });
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
