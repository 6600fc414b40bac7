#include "tests/support/virtual_world.hpp"

#include <algorithm>
#include <cctype>
#include <ostream>
#include <stdexcept>

#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include "actors/store.hpp"
#include "base/health.hpp"
#include "base/retry.hpp"

namespace heaven::test {

namespace {

using release_atom = caf::atom_constant<caf::atom("vRelease")>;
using expire_atom = caf::atom_constant<caf::atom("vExpire")>;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::chrono::milliseconds since_start(const caf::actor_clock::time_point& t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
    t.time_since_epoch());
}

} // namespace

// -- fake_reply ---------------------------------------------------------------

fake_reply::fake_reply() : fake_reply(stub_response{}) {
}

fake_reply::fake_reply(stub_response r) {
  if (r.drop) {
    response.error = "Empty reply from server";
    return;
  }
  response.status = r.status;
  for (auto& [name, value] : r.headers)
    response.headers.emplace_back(lower(name), value);
  if (r.stream) {
    std::string body;
    r.stream([&](std::string_view piece) {
      pieces.emplace_back(piece);
      body += piece;
      return true;
    });
    response.body = std::move(body);
    return;
  }
  response.body = std::move(r.body);
}

fake_reply::fake_reply(http_response r) : response(std::move(r)) {
}

fake_reply fake_reply::held(fake_reply r) {
  r.hold = true;
  return r;
}

fake_reply fake_reply::after(std::chrono::milliseconds d) const {
  auto r = *this;
  r.delay = d;
  return r;
}

std::ostream& operator<<(std::ostream& out, fake_call::fate x) {
  switch (x) {
    case fake_call::fate::waiting:
      return out << "waiting";
    case fake_call::fate::answered:
      return out << "answered";
    case fake_call::fate::timed_out:
      return out << "timed out";
    case fake_call::fate::cancelled:
      return out << "cancelled";
  }
  return out << "?";
}

// -- fake_host ----------------------------------------------------------------

fake_host::fake_host(fake_net& net, std::string base_url)
  : net_(net), base_(std::move(base_url)) {
}

void fake_host::respond_with(handler h) {
  handler_ = std::move(h);
}

std::vector<recorded_request> fake_host::requests() const {
  std::vector<recorded_request> out;
  for (auto* c : calls())
    out.push_back(c->received);
  return out;
}

std::vector<const fake_call*> fake_host::calls() const {
  std::vector<const fake_call*> out;
  for (auto& c : net_.calls())
    if (c.host == base_)
      out.push_back(&c);
  return out;
}

std::vector<const fake_call*> fake_host::waiting() const {
  std::vector<const fake_call*> out;
  for (auto* c : calls())
    if (c->state == fake_call::fate::waiting)
      out.push_back(c);
  return out;
}

// -- fake_net -----------------------------------------------------------------

fake_host& fake_net::host(const std::string& base_url) {
  for (auto& h : hosts_)
    if (h.base_url() == base_url)
      return h;
  return hosts_.emplace_back(*this, base_url);
}

std::vector<http_request> fake_net::sent() const {
  std::vector<http_request> out;
  for (auto& c : calls_)
    out.push_back(c.sent);
  return out;
}

fake_call& fake_net::call(uint64_t id) {
  for (auto& c : calls_)
    if (c.id == id)
      return c;
  throw std::out_of_range("no fake call " + std::to_string(id));
}

std::vector<const fake_call*> fake_net::waiting() const {
  std::vector<const fake_call*> out;
  for (auto& c : calls_)
    if (c.state == fake_call::fate::waiting)
      out.push_back(&c);
  return out;
}

void fake_net::clear() {
  if (!waiting().empty())
    throw std::logic_error("fake_net::clear with calls waiting");
  calls_.clear();
}

void fake_net::release(uint64_t id) {
  caf::anon_send(caf::actor_cast<caf::actor>(client), release_atom::value, id);
}

void fake_net::release(uint64_t id, fake_reply r) {
  call(id).reply = std::move(r);
  release(id);
}

void fake_net::push(uint64_t id, std::string piece) {
  auto& c = call(id);
  if (c.state == fake_call::fate::waiting && c.sink)
    caf::anon_send(c.sink, chunk_atom::value, std::move(piece));
}

fake_reply fake_net::answer(const std::string& url, const recorded_request& r,
                            std::string& host) {
  fake_host* best = nullptr;
  for (auto& h : hosts_)
    if (url.rfind(h.base_url(), 0) == 0
        && (!best || h.base_url().size() > best->base_url().size()))
      best = &h;
  if (!best) {
    host.clear();
    http_response res;
    res.error = "Could not resolve host: " + r.header("host");
    return res;
  }
  host = best->base_url();
  if (!best->handler_)
    return fake_reply{};
  return best->handler_(r);
}

fake_call& fake_net::add(fake_call c) {
  c.id = next_id_++;
  for (auto& h : hosts_)
    if (h.base_url() == c.host) {
      ++h.in_flight_;
      h.max_in_flight_ = std::max(h.max_in_flight_, h.in_flight_);
    }
  return calls_.emplace_back(std::move(c));
}

void fake_net::answered(fake_call& c, http_response res, fake_call::fate how,
                        std::chrono::milliseconds at) {
  c.answer = std::move(res);
  c.state = how;
  c.answered_at = at;
  for (auto& h : hosts_)
    if (h.base_url() == c.host)
      --h.in_flight_;
}

recorded_request as_received(const http_request& req) {
  recorded_request r;
  r.method = req.method;
  auto scheme = req.url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto path = req.url.find_first_of("/?#", start);
  auto authority = req.url.substr(
    start, path == std::string::npos ? std::string::npos : path - start);
  std::string target = path == std::string::npos ? "/" : req.url.substr(path);
  if (auto hash = target.find('#'); hash != std::string::npos)
    target.resize(hash);
  if (target.empty() || target[0] != '/')
    target = "/" + target;
  r.target = std::move(target);
  r.headers = req.headers;
  bool has_host = false;
  for (auto& [name, value] : r.headers)
    has_host = has_host || lower(name) == "host";
  if (!has_host)
    r.headers.emplace_back("Host", authority);
  r.body = req.body;
  return r;
}

// -- the fake client ----------------------------------------------------------

namespace {

using fake_http_actor
  = http_client_actor::extend<caf::reacts_to<release_atom, uint64_t>,
                              caf::reacts_to<expire_atom, uint64_t>>;

struct fake_http_state {
  static inline const char* name = "fake_http";
  std::shared_ptr<fake_net> net;
  std::map<uint64_t, caf::typed_response_promise<http_response>> promises;
};

using fake_ptr = fake_http_actor::stateful_pointer<fake_http_state>;

void begin(fake_ptr self, http_request req, chunk_sink sink,
           caf::typed_response_promise<http_response> rp);

/// Answers waiting call `id` with `reply` (following a redirect when
/// asked to).
void deliver(fake_ptr self, uint64_t id, fake_reply reply) {
  auto& net = *self->state.net;
  auto& c = net.call(id);
  if (c.state != fake_call::fate::waiting)
    return;
  auto i = self->state.promises.find(id);
  if (i == self->state.promises.end())
    return;
  auto rp = i->second;
  self->state.promises.erase(i);
  auto now = since_start(self->clock().now());
  auto res = std::move(reply.response);
  if (c.sent.follow_redirects && res.status >= 300 && res.status < 400) {
    auto location = header_value(res, "location");
    if (!location.empty()) {
      auto next = c.sent;
      next.url = location;
      if (res.status == 303 || (next.method == "POST" && res.status != 307))
        next.method = "GET";
      auto sink = c.sink;
      net.answered(c, std::move(res), fake_call::fate::answered, now);
      begin(self, std::move(next), std::move(sink), rp);
      return;
    }
  }
  if (c.streamed && res.status >= 200 && res.status < 300) {
    for (auto& piece : reply.pieces)
      caf::anon_send(c.sink, chunk_atom::value, piece);
    if (reply.pieces.empty() && !res.body.empty())
      caf::anon_send(c.sink, chunk_atom::value, res.body);
    res.body.clear();
  }
  net.answered(c, res, fake_call::fate::answered, now);
  rp.deliver(std::move(res));
}

/// Ends waiting call `id` without its answer: `res` says how.
void fail(fake_ptr self, uint64_t id, http_response res, fake_call::fate how) {
  auto& net = *self->state.net;
  auto& c = net.call(id);
  auto i = self->state.promises.find(id);
  if (c.state != fake_call::fate::waiting || i == self->state.promises.end())
    return;
  auto rp = i->second;
  self->state.promises.erase(i);
  net.answered(c, res, how, since_start(self->clock().now()));
  rp.deliver(std::move(res));
}

void begin(fake_ptr self, http_request req, chunk_sink sink,
           caf::typed_response_promise<http_response> rp) {
  auto& net = *self->state.net;
  fake_call c;
  c.sent = std::move(req);
  c.received = as_received(c.sent);
  c.streamed = static_cast<bool>(sink);
  c.sink = std::move(sink);
  c.at = since_start(self->clock().now());
  c.reply = net.answer(c.sent.url, c.received, c.host);
  auto& call = net.add(std::move(c));
  auto id = call.id;
  self->state.promises.emplace(id, rp);
  auto timeout = std::chrono::milliseconds(call.sent.timeout_ms);
  bool times_out = call.sent.timeout_ms > 0
                   && (call.reply.hold || call.reply.delay >= timeout);
  if (times_out)
    self->delayed_send(self, timeout, expire_atom::value, id);
  if (call.reply.hold || times_out)
    return;
  if (call.reply.delay.count() > 0) {
    self->delayed_send(self, call.reply.delay, release_atom::value, id);
    return;
  }
  deliver(self, id, call.reply);
}

fake_http_actor::behavior_type fake_http(fake_ptr self,
                                         std::shared_ptr<fake_net> net) {
  self->state.net = net;
  net->client = self->address();
  return {
    [=](http_request& req) {
      auto rp = self->make_response_promise<http_response>();
      begin(self, std::move(req), chunk_sink{}, rp);
      return rp;
    },
    [=](stream_atom, http_request& req, chunk_sink& sink) {
      auto rp = self->make_response_promise<http_response>();
      begin(self, std::move(req), std::move(sink), rp);
      return rp;
    },
    [=](cancel_atom, chunk_sink& sink) {
      auto addr = caf::actor_cast<caf::actor_addr>(sink);
      std::vector<uint64_t> ids;
      for (auto* c : self->state.net->waiting())
        if (c->streamed && caf::actor_cast<caf::actor_addr>(c->sink) == addr)
          ids.push_back(c->id);
      for (auto id : ids) {
        http_response res;
        res.error = "cancelled";
        fail(self, id, res, fake_call::fate::cancelled);
      }
    },
    [=](http_done_atom, uint64_t, http_response&) {},
    [=](release_atom, uint64_t id) {
      auto& c = self->state.net->call(id);
      deliver(self, id, c.reply);
    },
    [=](expire_atom, uint64_t id) {
      auto& c = self->state.net->call(id);
      http_response res;
      res.error = "Operation timed out after "
                  + std::to_string(c.sent.timeout_ms)
                  + " milliseconds with 0 bytes received";
      fail(self, id, res, fake_call::fate::timed_out);
    },
  };
}

} // namespace

http_client_actor spawn_fake_http(caf::actor_system& sys,
                                  std::shared_ptr<fake_net> net) {
  return sys.spawn(fake_http, std::move(net));
}

// -- the store gate -----------------------------------------------------------

namespace {

using gate_actor = store_actor::extend<caf::reacts_to<release_atom>>;

caf::error disk_full() {
  return caf::make_error(caf::sec::runtime_error,
                         "store: database or disk is full");
}

gate_actor::behavior_type gate(gate_actor::pointer self, store_actor real,
                               std::shared_ptr<store_script> script) {
  // Refuses, holds or passes one request to the real store.
  auto pass = [=](const char* op, auto rp, auto... xs) {
    ++script->asked[op];
    if (script->refuse.count(op) > 0) {
      ++script->refused[op];
      rp.deliver(disk_full());
    } else if (script->hold.count(op) > 0) {
      script->held.push_back([=]() mutable { rp.delegate(real, xs...); });
    } else {
      rp.delegate(real, xs...);
    }
    return rp;
  };
  return {
    [=](accept_atom a, inbound_event& ev) {
      return pass("accept", self->make_response_promise<accept_result>(), a,
                  ev);
    },
    [=](accept_atom a, std::vector<inbound_event>& evs) {
      // As one request per event for what the script counts.
      if (evs.size() > 1) {
        script->asked["accept"] += evs.size() - 1;
        if (script->refuse.count("accept") > 0)
          script->refused["accept"] += evs.size() - 1;
      }
      return pass("accept",
                  self->make_response_promise<std::vector<accept_result>>(), a,
                  evs);
    },
    [=](start_atom a, int64_t id, std::string& d) {
      return pass("start", self->make_response_promise<bool>(), a, id, d);
    },
    [=](finish_atom a, int64_t id, provider_outcome& o) {
      return pass("finish", self->make_response_promise<bool>(), a, id, o);
    },
    [=](subscribe_atom a, std::string& kind, outbox_actor& sink) {
      return pass("subscribe",
                  self->make_response_promise<std::vector<outbox_row>>(), a,
                  kind, sink);
    },
    [=](outbox_atom a, outbox_change& c) {
      return pass("outbox", self->make_response_promise<bool>(), a, c);
    },
    [=](list_atom a, int32_t n) {
      return pass("list",
                  self->make_response_promise<std::vector<deployment_row>>(), a,
                  n);
    },
    [=](pending_atom a) {
      return pass(
        "pending",
        self->make_response_promise<std::vector<unfinished_deployment>>(), a);
    },
    [=](pending_atom a, int64_t after, int32_t limit) {
      return pass(
        "pending",
        self->make_response_promise<std::vector<unfinished_deployment>>(), a,
        after, limit);
    },
    [=](locks_atom a) {
      return pass("locks", self->make_response_promise<std::vector<env_lock>>(),
                  a);
    },
    [=](latest_atom a, std::string& repo) {
      auto rp
        = self->make_response_promise<std::vector<deployed_environment>>();
      if (script->latest) {
        ++script->asked["latest"];
        rp.deliver(script->latest(repo));
        return rp;
      }
      return pass("latest", rp, a, repo);
    },
    [=](claim_atom a, auto_deployment& x) {
      return pass("claim", self->make_response_promise<bool>(), a, x);
    },
    [=](list_atom a, deployment_filter& f) {
      return pass("list",
                  self->make_response_promise<std::vector<deployment_row>>(), a,
                  f);
    },
    [=](detail_atom a, int64_t id) {
      return pass("detail", self->make_response_promise<deployment_detail>(), a,
                  id);
    },
    [=](repos_atom a) {
      return pass("repos",
                  self->make_response_promise<std::vector<repository_record>>(),
                  a);
    },
    [=](unlock_atom a, std::string& repo, std::string& env) {
      return pass("unlock", self->make_response_promise<bool>(), a, repo, env);
    },
    [=](switch_atom a, std::string& repo, bool active) {
      return pass("switch", self->make_response_promise<bool>(), a, repo,
                  active);
    },
    [=](create_atom a, auto_deployment& x) {
      return pass("create", self->make_response_promise<bool>(), a, x);
    },
    [=](claim_atom a, int32_t limit) {
      return pass(
        "claim queued",
        self->make_response_promise<std::vector<unfinished_deployment>>(), a,
        limit);
    },
    [=](lease_atom a) {
      return pass("lease", self->make_response_promise<lease_report>(), a);
    },
    [=](leave_atom a) {
      return pass("leave", self->make_response_promise<bool>(), a);
    },
    [=](log_atom a, int64_t id, int64_t offset, std::string& bytes,
        std::string& times) {
      return pass("append log", self->make_response_promise<bool>(), a, id,
                  offset, bytes, times);
    },
    [=](log_atom a, int64_t id, int64_t from, int64_t max) {
      return pass("read log", self->make_response_promise<log_piece>(), a, id,
                  from, max);
    },
    [=](secret_atom a, std::string& name, std::string& fresh) {
      return pass("secret", self->make_response_promise<std::string>(), a, name,
                  fresh);
    },
    [=](tick_atom) {
      // The real store's own commit signal: nothing for the gate to do.
    },
    [=](release_atom) {
      auto held = std::move(script->held);
      script->held.clear();
      for (auto& f : held)
        f();
    },
  };
}

} // namespace

store_actor spawn_store_gate(caf::actor_system& sys, store_actor real,
                             std::shared_ptr<store_script> script) {
  return sys.spawn(gate, std::move(real), std::move(script));
}

// -- the world ----------------------------------------------------------------

caf::actor_system_config& virtual_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  return cfg;
}

virtual_world::virtual_world() {
  // A test that fails half way leaves actors behind: the world still ends.
  sys.await_actors_before_shutdown(false);
  auto base = (std::filesystem::temp_directory_path() / "heaven-vworld-XXXXXX")
                .string();
  if (::mkdtemp(base.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  dir = base;
  db = dir / "heaven.db";
  unix_start_ms = unix_now_ms();
  run();
}

virtual_world::~virtual_world() {
  // The world ends where it stands: no timer fires any more, and the fake
  // client goes first (the test's fixture, whose handlers it calls, is
  // partly gone).
  sched.clock().cancel_all();
  caf::anon_send_exit(http, caf::exit_reason::user_shutdown);
  for (auto& a : kept_)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  run();
  close_store();
  // What still retries (against a store that is gone) would keep the
  // coordinator's shutdown busy for ever.
  sched.clock().cancel_all();
  run();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void virtual_world::open_store() {
  real_store = sys.spawn(heaven::store, db.string(),
                         std::shared_ptr<health_board>{}, true);
  store = spawn_store_gate(sys, real_store, script);
  run();
}

void virtual_world::close_store() {
  if (store)
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  if (real_store)
    caf::anon_send_exit(real_store, caf::exit_reason::user_shutdown);
  run();
  store = nullptr;
  real_store = nullptr;
}

void virtual_world::run() {
  sched.run();
}

bool virtual_world::timers_pending() const {
  return sched.has_pending_timeout();
}

void virtual_world::advance(std::chrono::milliseconds d) {
  auto& clock = sched.clock();
  auto target = clock.now() + d;
  run();
  while (!clock.schedule().empty()
         && clock.schedule().begin()->first <= target) {
    sched.trigger_timeout();
    run();
  }
  if (clock.current_time < target)
    clock.current_time = target;
  run();
}

bool virtual_world::run_until(const std::function<bool()>& pred,
                              std::chrono::milliseconds horizon) {
  auto& clock = sched.clock();
  auto limit = clock.now() + horizon;
  for (;;) {
    run();
    if (pred())
      return true;
    if (clock.schedule().empty() || clock.schedule().begin()->first > limit)
      return false;
    sched.trigger_timeout();
  }
}

void virtual_world::settle(std::chrono::milliseconds horizon) {
  run_until([] { return false; }, horizon);
}

std::chrono::milliseconds virtual_world::now() const {
  return since_start(sched.clock().now());
}

std::function<int64_t()>
virtual_world::clock_ms(std::chrono::milliseconds offset) {
  auto* clock = &sched.clock();
  auto start = unix_start_ms + offset.count();
  return [clock, start] { return start + since_start(clock->now()).count(); };
}

void virtual_world::release_store() {
  caf::anon_send(caf::actor_cast<gate_actor>(store), release_atom::value);
  run();
}

std::vector<std::string> sqlite_column(const std::filesystem::path& db,
                                       const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr)
      != SQLITE_OK) {
    sqlite3_close_v2(conn);
    BOOST_FAIL("cannot open " << db);
  }
  sqlite3_busy_timeout(conn, 5000);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(conn, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    std::string why = sqlite3_errmsg(conn);
    sqlite3_close_v2(conn);
    BOOST_FAIL(why << ": " << sql);
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    auto p = sqlite3_column_text(stmt, 0);
    rows.emplace_back(p ? reinterpret_cast<const char*>(p) : "NULL");
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(conn);
  return rows;
}

std::vector<std::string> virtual_world::query(const std::string& sql) const {
  return sqlite_column(db, sql);
}

void virtual_world::check_answer(bool answered, const std::string& error) {
  if (!error.empty())
    BOOST_FAIL("the actor asked failed: " << error);
  if (!answered)
    BOOST_FAIL("the actor asked did not answer");
}

} // namespace heaven::test
