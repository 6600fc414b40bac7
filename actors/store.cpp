/// The STORE actor: heaven's database behind the store contract, and the
/// outboxes it hands committed rows to.
#include "actors/store.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/sqlite_store.hpp"
#include "base/health.hpp"
#include "base/log_format.hpp"
#include "base/metrics.hpp"
#include "base/thread_name.hpp"

namespace heaven {

namespace {

caf::error store_error(const std::string& what) {
  return caf::make_error(caf::sec::runtime_error, "store: " + what);
}

/// The deployment a delivery asks for (repository and environment; its id
/// is not known yet), the log context of the request's lines. Empty for
/// other events.
log_context accepted_context(const inbound_event& ev) {
  if (ev.type != event_kind::deployment)
    return {};
  return {0, ev.deployment.repo, ev.deployment.environment};
}

/// One log line saying what `accept` did with a delivery; a recorded
/// deployment's line carries its id too.
void log_accepted(const inbound_event& ev, const accept_result& res) {
  std::optional<log_scope> recorded;
  log_context about;
  if (res.deployment_id != 0) {
    about = {res.deployment_id, ev.deployment.repo, ev.deployment.environment};
    recorded.emplace(about);
  }
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

/// How a deployment ends whose instance another one took over.
constexpr auto lost_instance
  = "the heaven instance running this deployment was lost";

/// Hands rows just committed to the outboxes subscribed to their kind.
void publish(store_ptr self, committed_rows& rows, bool recovered = false) {
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
      if (recovered)
        self->send(sink, outbox_atom::value, batch, true);
      else
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

/// Tells the health board whether the database could be reached: a
/// PostgreSQL store that cannot connect throws "the database is
/// unreachable: ..." until it can again (any request answered from it says
/// it can).
void reached(store_ptr self, const std::string& failure = {}) {
  auto& health = self->state.health;
  if (!health)
    return;
  if (failure.empty()) {
    if (health->recover("database"))
      spdlog::info("store reaches the database again");
  } else if (failure.rfind("the database is unreachable", 0) == 0) {
    health->fail("database", failure);
  }
}

/// After a commit of `n` requests (`writes` when some wrote) begun at
/// `began`: the health board and the metrics hear of it.
void committed(store_ptr self, std::size_t n, bool writes,
               std::chrono::steady_clock::time_point began) {
  auto& st = self->state;
  if (writes)
    wrote(self);
  if (n > 0)
    reached(self);
  if (st.health)
    st.health->committed(n);
  metrics::store_commit_duration().observe(
    {}, std::chrono::duration<double>(std::chrono::steady_clock::now() - began)
          .count());
  metrics::store_requests().add({}, static_cast<double>(n));
}

/// Runs `op` outside a batch, so in a transaction of its own that the
/// backend commits before it returns, and answers it.
void run_alone(store_ptr self, store_op& op) {
  auto began = std::chrono::steady_clock::now();
  std::string why;
  std::function<void()> after;
  try {
    after = op.run(*self->state.db, why);
  } catch (const batch_undone& e) {
    op.fail(e.what()); // Only a batch is undone: not expected here.
    return;
  }
  if (!after)
    return; // Answered with its failure.
  committed(self, 1, op.write, began);
  after();
}

/// Commits every queued request: one transaction, one write to disk (see
/// `store`).
void commit_queued(store_ptr self) {
  auto& st = self->state;
  st.commit_pending = false;
  auto ops = std::move(st.queued);
  st.queued.clear();
  if (!st.db) {
    for (auto& op : ops)
      op.fail(st.open_error);
    return;
  }
  auto& db = *st.db;
  std::size_t i = 0;
  while (i < ops.size()) {
    auto began = std::chrono::steady_clock::now();
    try {
      db.begin_batch();
    } catch (const std::exception& e) {
      spdlog::error("store could not begin a transaction: {}", e.what());
      wrote(self, e.what());
      reached(self, e.what());
      for (; i < ops.size(); ++i)
        ops[i].fail(e.what());
      return;
    }
    // The requests of this batch that did their part, and what then.
    std::vector<std::size_t> ok;
    std::vector<std::function<void()>> then;
    bool writes = false;
    std::string undone; // Why the database ended the batch itself.
    // Why the backend undid the batch for its requests to run again alone.
    std::optional<std::string> regroup;
    for (; i < ops.size(); ++i) {
      std::string why;
      std::function<void()> after;
      try {
        after = ops[i].run(db, why);
      } catch (const batch_undone& e) {
        regroup = e.what();
        ok.push_back(i++);
        break;
      }
      if (after) {
        ok.push_back(i);
        then.push_back(std::move(after));
        writes = writes || ops[i].write;
      } else if (!db.in_batch()) {
        undone = why.empty() ? std::string{"the transaction was undone"} : why;
        ++i;
        break;
      }
    }
    std::string failed = undone;
    if (failed.empty() && !regroup) {
      try {
        db.commit_batch();
      } catch (const batch_undone& e) {
        regroup = e.what();
      } catch (const std::exception& e) {
        failed = e.what();
      }
    }
    if (regroup) {
      // Those that failed alone were answered; the others are undone.
      spdlog::warn("store runs the {} request(s) of a batch it undid again, "
                   "one at a time: {}",
                   ok.size(), *regroup);
      for (auto j : ok)
        run_alone(self, ops[j]);
      continue;
    }
    if (!failed.empty()) {
      if (!ok.empty())
        spdlog::error("store could not commit {} request(s): {}", ok.size(),
                      failed);
      wrote(self, failed.c_str());
      reached(self, failed);
      for (auto j : ok)
        ops[j].fail(failed);
      continue;
    }
    committed(self, ok.size(), writes, began);
    for (auto& f : then)
      f();
  }
  db.after_batches();
}

/// Queues a request for the next commit: `fn(db, rows)` does it (rows it
/// adds go to the outboxes once committed), `on_commit(result)` runs once
/// it is on disk, then `deliver(result)` answers; when it could not be done
/// or committed, `fail(why)` answers instead. `what()` ("record delivery
/// d-1") names it in an error line. A write that fails tells the health
/// board (a request the rules refuse, std::invalid_argument, says nothing
/// of the disk). `about` is the deployment the request names: the log
/// context of its lines (none when empty).
template <class What, class Fn, class OnCommit, class Deliver, class Fail>
void queue_op(store_ptr self, bool write, What what, Fn fn, OnCommit on_commit,
              log_context about, Deliver deliver, Fail fail) {
  using answer = decltype(fn(std::declval<store_backend&>(),
                             std::declval<committed_rows&>()));
  store_op op;
  op.write = write;
  auto ctx = std::make_shared<const log_context>(std::move(about));
  op.run = [self, write, what, fn, on_commit, ctx, deliver,
            fail](store_backend& db,
                  std::string& why) mutable -> std::function<void()> {
    log_scope in{*ctx};
    try {
      auto rows = std::make_shared<committed_rows>();
      auto res = std::make_shared<answer>(fn(db, *rows));
      return [self, rows, res, on_commit, ctx, deliver]() mutable {
        log_scope in{*ctx};
        on_commit(*res);
        publish(self, *rows);
        deliver(std::move(*res));
      };
    } catch (const batch_undone&) {
      throw; // Not answered: commit_queued runs it again, alone.
    } catch (const std::exception& e) {
      spdlog::error("store could not {}: {}", what(), e.what());
      if (write && !dynamic_cast<const std::invalid_argument*>(&e))
        wrote(self, e.what());
      reached(self, e.what());
      why = e.what();
      fail(why);
      return {};
    }
  };
  op.fail = [fail, what, ctx](const std::string& why) mutable {
    log_scope in{*ctx};
    spdlog::error("store could not {}: {}", what(), why);
    fail(why);
  };
  auto& st = self->state;
  st.queued.push_back(std::move(op));
  if (!st.commit_pending) {
    st.commit_pending = true;
    self->send(self, tick_atom::value);
  }
}

/// `queue_op` answering a request of its own.
template <class What, class Fn, class OnCommit>
auto enqueue(store_ptr self, bool write, What what, Fn fn, OnCommit on_commit,
             log_context about = {})
  -> caf::result<decltype(fn(std::declval<store_backend&>(),
                             std::declval<committed_rows&>()))> {
  using answer = decltype(fn(std::declval<store_backend&>(),
                             std::declval<committed_rows&>()));
  auto rp = self->make_response_promise<answer>();
  queue_op(
    self, write, std::move(what), std::move(fn), std::move(on_commit),
    std::move(about),
    [rp](answer&& res) mutable { rp.deliver(std::move(res)); },
    [rp](const std::string& why) mutable { rp.deliver(store_error(why)); });
  return rp;
}

/// The events of one `accept` batch: each is an op of its own (all or
/// nothing on its own, answered on its own), and the batch is answered
/// once the last of them is.
struct accept_batch {
  caf::typed_response_promise<std::vector<accept_result>> rp;
  std::vector<accept_result> results;
  std::size_t left = 0;

  void done() {
    if (--left == 0)
      rp.deliver(std::move(results));
  }
};

/// Queues `ev`'s recording (`accept`), answering through `deliver` and
/// `fail`.
template <class Deliver, class Fail>
void queue_accept(store_ptr self, std::shared_ptr<const inbound_event> ev,
                  Deliver deliver, Fail fail) {
  auto about = accepted_context(*ev);
  queue_op(
    self, true, [ev] { return "record delivery " + ev->delivery; },
    [ev](store_backend& db, committed_rows& rows) {
      return db.accept(*ev, rows);
    },
    [ev](const accept_result& res) { log_accepted(*ev, res); },
    std::move(about), std::move(deliver), std::move(fail));
}

/// `enqueue` with nothing to do on commit.
template <class What, class Fn>
auto enqueue(store_ptr self, bool write, What what, Fn fn) {
  return enqueue(self, write, std::move(what), std::move(fn),
                 [](const auto&) {});
}

/// Queues a read: `fn(db)`'s answer, after the requests before it.
template <class What, class Fn>
auto enqueue_read(store_ptr self, What what, Fn fn) {
  return enqueue(self, false, std::move(what),
                 [fn](store_backend& db, committed_rows&) { return fn(db); });
}

} // namespace

store_actor::behavior_type
store(store_actor::stateful_pointer<store_state> self, std::string path,
      std::shared_ptr<health_board> health, bool notices) {
  return open_store(
    self,
    [path, notices] {
      auto db = std::make_unique<sqlite_store>(path, open_mode::create,
                                               notices);
      spdlog::info("store opened {}", path);
      return db;
    },
    std::move(health));
}

store_actor::behavior_type
open_store(store_actor::stateful_pointer<store_state> self, store_opener open,
           std::shared_ptr<health_board> health) {
  name_this_thread("heaven.store");
  auto& st = self->state;
  st.health = std::move(health);
  try {
    st.db = open();
    // /healthz says which (never where).
    if (st.health)
      st.health->set_database(
        dynamic_cast<sqlite_store*>(st.db.get()) ? "sqlite" : "postgresql");
  } catch (const std::exception& e) {
    // Every request is then answered with this error, so whoever asks
    // first (start-up asks for pending deployments) learns why.
    st.open_error = e.what();
    spdlog::error("store {}", st.open_error);
    if (st.health) {
      st.health->fail("store", st.open_error);
      reached(self, st.open_error);
    }
  }
  return {
    [=](tick_atom) { commit_queued(self); },
    [=](accept_atom, inbound_event& in) -> caf::result<accept_result> {
      auto rp = self->make_response_promise<accept_result>();
      queue_accept(
        self, std::make_shared<const inbound_event>(std::move(in)),
        [rp](accept_result&& res) mutable { rp.deliver(std::move(res)); },
        [rp](const std::string& why) mutable { rp.deliver(store_error(why)); });
      return rp;
    },
    [=](accept_atom, std::vector<inbound_event>& in)
      -> caf::result<std::vector<accept_result>> {
      auto batch = std::make_shared<accept_batch>();
      batch->rp = self->make_response_promise<std::vector<accept_result>>();
      batch->results.resize(in.size());
      batch->left = in.size();
      if (in.empty())
        batch->rp.deliver(std::vector<accept_result>{});
      for (std::size_t i = 0; i < in.size(); ++i)
        queue_accept(
          self, std::make_shared<const inbound_event>(std::move(in[i])),
          [batch, i](accept_result&& res) {
            batch->results[i] = std::move(res);
            batch->done();
          },
          [batch, i](const std::string& why) {
            batch->results[i].unstored = "store: " + why;
            batch->done();
          });
      return batch->rp;
    },
    [=](start_atom, int64_t id, const std::string& description) {
      return enqueue(
        self, true,
        [id] { return "mark deployment " + std::to_string(id) + " running"; },
        [id, description](store_backend& db, committed_rows& rows) {
          return db.start(id, description, rows);
        },
        [id](bool started) {
          if (!started)
            spdlog::warn("store found deployment {} not queued (ended, "
                         "superseded, or its environment locked while it "
                         "waited): it does not start",
                         id);
        },
        log_context{id, {}, {}});
    },
    [=](finish_atom, int64_t id, const provider_outcome& outcome) {
      return enqueue(
        self, true,
        [id, state = outcome.state] {
          return "mark deployment " + std::to_string(id) + " "
                 + to_string(state);
        },
        [id, outcome](store_backend& db, committed_rows& rows) {
          return db.finish(id, outcome, rows);
        },
        [id, state = outcome.state](bool ended) {
          if (!ended)
            spdlog::warn("store found deployment {} ended already: it keeps "
                         "its first end, not {}",
                         id, to_string(state));
        },
        log_context{id, {}, {}});
    },
    [=](subscribe_atom, const std::string& kind, const outbox_actor& sink) {
      // The outbox is subscribed once the rows it reads are committed: it
      // gets every row committed after them, and none twice.
      return enqueue(
        self, false, [kind] { return "read the " + kind + " outbox"; },
        [kind](store_backend& db, committed_rows&) {
          return db.unsettled(kind);
        },
        [self, kind, sink](const std::vector<outbox_row>& rows) {
          self->state.subscribers[kind].push_back(sink);
          if (!rows.empty())
            spdlog::info("store has {} undelivered {} message(s) from before",
                         rows.size(), kind);
        });
    },
    [=](outbox_atom, const outbox_change& change) {
      return enqueue(
        self, true,
        [n = change.settled.size()] {
          return "settle " + std::to_string(n) + " outbox row(s)";
        },
        [change](store_backend& db, committed_rows& rows) {
          db.change_outbox(change, rows);
          return true;
        });
    },
    [=](list_atom, int32_t n) {
      return enqueue_read(
        self, [] { return std::string{"list deployments"}; },
        [n](store_backend& db) { return db.list(n); });
    },
    [=](pending_atom) {
      return enqueue_read(
        self, [] { return std::string{"list unfinished deployments"}; },
        [](store_backend& db) { return db.pending(); });
    },
    [=](pending_atom, int64_t after, int32_t limit) {
      return enqueue_read(
        self, [] { return std::string{"list unfinished deployments"}; },
        [after, limit](store_backend& db) {
          return db.pending_after(after, limit);
        });
    },
    [=](locks_atom) {
      return enqueue_read(
        self, [] { return std::string{"list locks"}; },
        [](store_backend& db) { return db.locks(); });
    },
    [=](latest_atom, const std::string& repo) {
      return enqueue_read(
        self, [repo] { return "list the deployed environments of " + repo; },
        [repo](store_backend& db) { return db.latest(repo); });
    },
    [=](claim_atom, const auto_deployment& x) {
      return enqueue(
        self, true,
        [x] {
          return "claim the auto-deployment of " + x.repo + " (" + x.app
                 + ") to " + x.environment + " at " + x.sha;
        },
        [x](store_backend& db, committed_rows& rows) {
          return db.claim(x, rows);
        });
    },
    [=](list_atom, const deployment_filter& f) {
      return enqueue_read(
        self, [] { return std::string{"list deployments"}; },
        [f](store_backend& db) { return db.list(f); });
    },
    [=](detail_atom, int64_t id) {
      return enqueue_read(
        self, [id] { return "read deployment " + std::to_string(id); },
        [id](store_backend& db) { return db.detail(id); });
    },
    [=](repos_atom) {
      return enqueue_read(
        self, [] { return std::string{"list repositories"}; },
        [](store_backend& db) { return db.repositories(); });
    },
    [=](unlock_atom, const std::string& repo, const std::string& env) {
      return enqueue(
        self, true, [repo, env] { return "unlock " + repo + " " + env; },
        [repo, env](store_backend& db, committed_rows&) {
          return db.remove_lock(repo, env);
        });
    },
    [=](switch_atom, const std::string& repo, bool active) {
      return enqueue(
        self, true,
        [repo, active] {
          return std::string{active ? "enable " : "disable "} + repo;
        },
        [repo, active](store_backend& db, committed_rows&) {
          db.set_repository_active(repo, active);
          return true;
        });
    },
    [=](create_atom, const auto_deployment& x) {
      return enqueue(
        self, true,
        [x] {
          return "queue the creation of a deployment of " + x.repo + " ("
                 + x.app + ") to " + x.environment + " at " + x.sha;
        },
        [x](store_backend& db, committed_rows& rows) {
          db.queue_creation(x, rows);
          return true;
        });
    },
    // -- several instances ----------------------------------------------------
    [=](claim_atom, int32_t limit) {
      return enqueue(
        self, true, [] { return std::string{"claim queued deployments"}; },
        [limit](store_backend& db, committed_rows&) {
          return db.claim_queued(limit);
        });
    },
    [=](lease_atom) {
      // Rows taken over from a lost instance go to the outboxes before the
      // statuses the takeover adds (the same streams, later rows).
      auto adopted = std::make_shared<committed_rows>();
      return enqueue(
        self, true, [] { return std::string{"renew this instance's lease"}; },
        [adopted](store_backend& db, committed_rows& rows) {
          adopted->clear();
          return db.renew_lease(lost_instance, rows, *adopted);
        },
        [self, adopted](const lease_report& r) {
          publish(self, *adopted, true);
          if (!r.held)
            spdlog::critical("store found this instance's lease taken over "
                             "by another instance");
          else if (r.taken_over > 0)
            spdlog::warn("store took over {} lost instance(s): {} "
                         "deployment(s) ended with error, {} given back to "
                         "run",
                         r.taken_over, r.ended, r.released);
        });
    },
    [=](leave_atom) {
      return enqueue(
        self, true, [] { return std::string{"give up this instance's lease"}; },
        [](store_backend& db, committed_rows&) {
          db.leave();
          return true;
        });
    },
    [=](log_atom, int64_t id, int64_t offset, std::string& bytes,
        std::string& times) {
      auto piece = std::make_shared<const std::pair<std::string, std::string>>(
        std::move(bytes), std::move(times));
      return enqueue(
        self, true,
        [id] { return "store the log of deployment " + std::to_string(id); },
        [id, offset, piece](store_backend& db, committed_rows&) {
          db.append_log(id, offset, piece->first, piece->second);
          return true;
        },
        [](bool) {}, log_context{id, {}, {}});
    },
    [=](log_atom, int64_t id, int64_t from, int64_t max) {
      return enqueue_read(
        self,
        [id] { return "read the log of deployment " + std::to_string(id); },
        [id, from, max](store_backend& db) {
          return db.read_log(id, from, max);
        });
    },
    [=](secret_atom, const std::string& name, const std::string& fresh) {
      return enqueue(
        self, true, [name] { return "read the shared secret " + name; },
        [name, fresh](store_backend& db, committed_rows&) {
          return db.shared_secret(name, fresh);
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
