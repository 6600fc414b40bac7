/// One deterministic world for the tests of heaven's actors: an actor system
/// on CAF's test coordinator (virtual time: nothing waits on a real clock, no
/// thread races), a fake HTTP client that speaks the http_client protocol
/// and records every request, and the real store on a real SQLite file
/// behind a gate that can refuse or hold its answers on demand.
///
/// "Slow", "no answer" and "answered too late" are states of the fake, not
/// sleeps; "nothing more happens" is proved by advancing virtual time past
/// every timer that could make it happen.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "messages/interfaces.hpp"
#include "tools/support/http_stub.hpp"

namespace heaven::test {

// -- the fake HTTP client -----------------------------------------------------

/// What the fake client does with one request: answer it now, after some
/// virtual time, or only when the test releases it. A request whose
/// `timeout_ms` passes first is answered as curl answers a timeout (status
/// 0), and its scripted answer is lost, as a late answer is.
struct fake_reply {
  /// `201 {}`, as the HTTP stub's default.
  fake_reply();
  /// The answer an HTTP stand-in would give (header names are lower-cased
  /// as the client does; `drop` is a connection closed without an answer;
  /// a `stream` function is called at once and its pieces are the body).
  fake_reply(stub_response r); // NOLINT: implicit by design
  /// Exactly this answer (status 0 with an error: a network failure;
  /// `permanent`: a request heaven cannot make).
  fake_reply(http_response r); // NOLINT: implicit by design

  /// `r`, given only when the test releases the call (fake_net::release).
  static fake_reply held(fake_reply r = {});
  /// This answer, given after `d` of virtual time.
  fake_reply after(std::chrono::milliseconds d) const;

  http_response response;
  /// For a streamed request with a 2xx answer: the pieces the sink gets
  /// before the answer (which then has an empty body).
  std::vector<std::string> pieces;
  bool hold = false;
  std::chrono::milliseconds delay{0};
};

class fake_net;

/// One request the fake client got.
struct fake_call {
  enum class fate { waiting, answered, timed_out, cancelled };
  uint64_t id = 0;
  /// The base URL of the host it went to ("" when no host is known there).
  std::string host;
  /// What heaven sent.
  http_request sent;
  /// The same request as a server sees it (target, a Host header added).
  recorded_request received;
  bool streamed = false;
  chunk_sink sink;
  /// When it was sent and answered, in virtual time since the world began.
  std::chrono::milliseconds at{0};
  std::chrono::milliseconds answered_at{0};
  fate state = fate::waiting;
  /// What heaven was answered (once not waiting).
  http_response answer;
  /// The scripted answer, while waiting.
  fake_reply reply;
};

/// "waiting", "answered", "timed out", "cancelled".
std::ostream& operator<<(std::ostream& out, fake_call::fate x);

/// A remote HTTP service in the fake network, at one base URL: the fake
/// client's counterpart of tools/support/http_stub.
class fake_host {
public:
  using handler = std::function<fake_reply(const recorded_request&)>;

  fake_host(fake_net& net, std::string base_url);

  /// "http://github.test/": requests whose URL starts with it come here.
  const std::string& base_url() const {
    return base_;
  }

  /// Replaces the handler (answers `201 {}` until then).
  void respond_with(handler h);

  /// Every request that came here, in order, as the server saw it.
  std::vector<recorded_request> requests() const;

  /// The calls that came here, in order.
  std::vector<const fake_call*> calls() const;

  /// The calls here still waiting for their answer.
  std::vector<const fake_call*> waiting() const;

  /// The most requests that were waiting here at once.
  int max_in_flight() const {
    return max_in_flight_;
  }

private:
  friend class fake_net;
  fake_net& net_;
  std::string base_;
  handler handler_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
};

/// The fake network: its hosts and every call, in order. Lives on the test's
/// thread (the test coordinator runs every actor there).
class fake_net {
public:
  /// The host at `base_url` (made on first use). The reference stays valid
  /// as long as the network.
  fake_host& host(const std::string& base_url);

  /// Every call, in order.
  const std::deque<fake_call>& calls() const {
    return calls_;
  }

  /// Every request heaven sent, in order.
  std::vector<http_request> sent() const;

  /// The call with this id.
  fake_call& call(uint64_t id);

  /// The calls still waiting for their answer.
  std::vector<const fake_call*> waiting() const;

  /// Forgets the calls made so far (none may be waiting).
  void clear();

  /// Answers waiting call `id` with its scripted answer (or `r`). Takes
  /// effect when the world runs.
  void release(uint64_t id);
  void release(uint64_t id, fake_reply r);

  /// Sends a piece of body to waiting streamed call `id`'s sink.
  void push(uint64_t id, std::string piece);

  // -- used by the fake client

  /// The reply of the host `url` belongs to (a resolve failure when none).
  fake_reply answer(const std::string& url, const recorded_request& r,
                    std::string& host);
  fake_call& add(fake_call c);
  void answered(fake_call& c, http_response res, fake_call::fate how,
                std::chrono::milliseconds at);

  caf::actor_addr client;

private:
  std::deque<fake_host> hosts_;
  std::deque<fake_call> calls_;
  uint64_t next_id_ = 1;
};

/// The request `req` as a server sees it: method, path and query, headers
/// (with Host), body.
recorded_request as_received(const http_request& req);

/// The fake HTTP client. Understands everything the http_client actor does
/// (requests, streamed requests, cancels) and answers from `net`.
http_client_actor spawn_fake_http(caf::actor_system& sys,
                                  std::shared_ptr<fake_net> net);

// -- the store gate -----------------------------------------------------------

/// What the store gate does besides passing requests to the real store; the
/// operations are named "accept", "start", "finish", "subscribe", "outbox",
/// "list", "pending", "locks", "latest", "claim".
struct store_script {
  /// Answered with "store: database or disk is full", as a store that
  /// cannot write answers.
  std::set<std::string> refuse;
  /// Kept unanswered until world.release_store().
  std::set<std::string> hold;
  /// When set, `latest` answers this instead of the real store.
  std::function<std::vector<deployed_environment>(const std::string& repo)>
    latest;
  /// How often each operation was asked, and refused.
  std::map<std::string, int> asked;
  std::map<std::string, int> refused;
  /// Requests held now.
  std::vector<std::function<void()>> held;
};

/// The gate: the real store `real`, as `script` says.
store_actor spawn_store_gate(caf::actor_system& sys, store_actor real,
                             std::shared_ptr<store_script> script);

// -- the world ----------------------------------------------------------------

/// The first column of each row of `sql` on the SQLite database `db`, read
/// on a connection of its own (fails the test when the query does).
std::vector<std::string> sqlite_column(const std::filesystem::path& db,
                                       const std::string& sql);

/// The actor system config of a world: the test coordinator, no CAF log.
caf::actor_system_config& virtual_config(caf::actor_system_config& cfg);

/// The fixture. Tests build their actors on `sys`, give them `http` and
/// `store`, and drive the world with run(), advance() and run_until().
struct virtual_world {
  caf::actor_system_config cfg;
  caf::actor_system sys{virtual_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  caf::scoped_actor self{sys, true};
  std::shared_ptr<fake_net> net = std::make_shared<fake_net>();
  http_client_actor http = spawn_fake_http(sys, net);
  /// A directory of the test's own, removed at the end.
  std::filesystem::path dir;
  /// The database (after open_store()).
  std::filesystem::path db;
  std::shared_ptr<store_script> script = std::make_shared<store_script>();
  /// The real store and the gate in front of it (after open_store()).
  store_actor real_store;
  store_actor store;
  /// The Unix time (ms) when virtual time began: the virtual clock reads it
  /// plus the virtual time passed.
  int64_t unix_start_ms = 0;

  virtual_world();
  ~virtual_world();

  virtual_world(const virtual_world&) = delete;
  virtual_world& operator=(const virtual_world&) = delete;

  /// Starts the store on `db` (a fresh file in `dir`, unless it exists)
  /// and the gate, and waits until the database is open.
  void open_store();
  /// Ends the gate and the store (heaven stops); open_store() starts them
  /// again on the same file.
  void close_store();

  /// Runs every actor until none has anything to do. Virtual time stands
  /// still: no timer fires.
  void run();
  /// Lets `d` of virtual time pass: every timer due by then fires, in the
  /// order of its time, each followed by run().
  void advance(std::chrono::milliseconds d);
  /// Runs and fires timers in order until `pred` holds (true) or no timer
  /// is due within `horizon` of virtual time (false).
  bool run_until(const std::function<bool()>& pred,
                 std::chrono::milliseconds horizon = std::chrono::hours(1));
  /// Fires every timer due within `horizon` (the world is then quiet:
  /// nothing more happens unless something new is sent).
  void settle(std::chrono::milliseconds horizon = std::chrono::hours(1));
  /// Whether any timer is pending.
  bool timers_pending() const;

  /// The virtual time passed since the world began.
  std::chrono::milliseconds now() const;
  /// The virtual clock in Unix milliseconds, `offset` ahead (for
  /// outbox_options::now_ms).
  std::function<int64_t()>
  clock_ms(std::chrono::milliseconds offset = std::chrono::milliseconds{0});

  /// Asks `h` and returns its answer (fails the test when it errs or does
  /// not answer).
  template <class T, class Handle, class... Ts>
  T ask(const Handle& h, Ts&&... xs) {
    auto out = std::make_shared<std::optional<T>>();
    auto err = std::make_shared<std::string>();
    auto asker = sys.spawn([=, this](caf::event_based_actor* s) mutable {
      s->request(h, caf::infinite, std::forward<Ts>(xs)...)
        .then([out](T& x) { *out = std::move(x); },
              [err, this](caf::error& e) { *err = sys.render(e); });
    });
    run();
    check_answer(out->has_value(), *err);
    return out->has_value() ? std::move(**out) : T{};
  }

  /// Ends `h` (an exit message) and runs.
  template <class Handle>
  void stop(const Handle& h) {
    if (h) {
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
      run();
    }
  }

  /// A monitor of `h`: the flag is set once `h`'s actor has ended (its
  /// down message arrived).
  template <class Handle>
  std::shared_ptr<bool> watch(const Handle& h) {
    auto down = std::make_shared<bool>(false);
    auto target = caf::actor_cast<caf::actor>(h);
    // Kept: an actor nobody refers to is gone at once.
    keep(sys.spawn([down, target](caf::event_based_actor* s) -> caf::behavior {
      s->monitor(target);
      s->set_down_handler([down, s](caf::down_msg&) {
        *down = true;
        s->quit();
      });
      // Something to wait for: an actor without a behavior ends at once.
      return {[](const std::string&) {}};
    }));
    run();
    return down;
  }

  /// Lets the held store requests go on.
  void release_store();

  /// The first column of each row of `sql` on the database.
  std::vector<std::string> query(const std::string& sql) const;

  /// Remembers `h` to be ended with the world.
  template <class Handle>
  Handle keep(Handle h) {
    kept_.push_back(caf::actor_cast<caf::actor>(h));
    return h;
  }

private:
  void check_answer(bool answered, const std::string& error);
  std::vector<caf::actor> kept_;
};

} // namespace heaven::test
