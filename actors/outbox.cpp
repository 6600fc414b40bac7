#include "actors/outbox.hpp"

#include <algorithm>
#include <set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "base/metrics.hpp"

namespace heaven {

namespace {

using self_ptr = outbox_actor::stateful_pointer<outbox_state>;

/// What the behavior's helpers share.
struct outbox_env {
  store_actor store;
  http_client_actor http;
  courier c;
  outbox_options opts;
  /// The doubling backoff of opts.
  retry_policy retry;
  /// Rows whose earlier attempt may have arrived although no answer said
  /// so: they are looked up before they are sent again.
  std::set<int64_t> unsure;
};

using env_ptr = std::shared_ptr<outbox_env>;

/// How soon a row whose credentials are being fetched (not_yet) is looked
/// at again: 50 ms, doubling with each look up to 2 s (a GitHub that hangs
/// on the fetch costs a backlog of rows little).
std::chrono::milliseconds not_yet_wait(int looks) {
  return std::min(std::chrono::milliseconds(50 << std::min(looks, 6)),
                  std::chrono::milliseconds(2000));
}

std::string describe(const env_ptr& env, const outbox_row& row) {
  try {
    if (env->c.describe)
      return env->c.describe(row);
  } catch (const std::exception&) {
    // Fall through to the generic name.
  }
  return env->c.kind + " message " + std::to_string(row.id);
}

/// The log context of the head row of `name`, while it lives.
struct row_scope {
  log_context about;
  std::optional<log_scope> in;
  row_scope(self_ptr self, const env_ptr& env, const std::string& name) {
    auto& s = self->state.streams[name];
    if (!env->c.about || s.rows.empty())
      return;
    auto& head = s.rows.front();
    if (s.about_row != head.id) {
      s.about_row = head.id;
      s.about.reset();
      try {
        s.about = env->c.about(head);
      } catch (const std::exception&) {
        // No context: the row's own lines say which it is.
      }
    }
    if (!s.about)
      return;
    about = *s.about;
    in.emplace(about);
  }
};

void pump(self_ptr self, const env_ptr& env);
void attempt(self_ptr self, const env_ptr& env, const std::string& name);

/// Writes what was settled, and what it leads to, to the store, one batch
/// (one transaction) at a time.
void flush(self_ptr self, const env_ptr& env) {
  auto& st = self->state;
  if (st.settle_in_flight || (st.settling.empty() && st.adding.empty()))
    return;
  outbox_change change;
  change.settled = std::move(st.settling);
  change.added = std::move(st.adding);
  st.settling.clear();
  st.adding.clear();
  st.settle_in_flight = true;
  self->request(env->store, caf::infinite, outbox_atom::value, change)
    .then(
      [=](bool) {
        self->state.settle_in_flight = false;
        self->state.store_failures = 0;
        flush(self, env);
      },
      [=](caf::error& err) mutable {
        // The rows were delivered; only their record is missing. Keep it
        // and write it again later (a restart would look them up anyway).
        // Nothing of the batch was written: what they lead to goes along.
        auto& st = self->state;
        st.settle_in_flight = false;
        st.settling.insert(st.settling.begin(), change.settled.begin(),
                           change.settled.end());
        st.adding.insert(st.adding.begin(), change.added.begin(),
                         change.added.end());
        auto wait = std::chrono::milliseconds(1000);
        spdlog::warn("{}", retry_line(env->c.kind + " outbox recording "
                                        + std::to_string(change.settled.size())
                                        + " delivered message(s)",
                                      self->system().render(err),
                                      ++st.store_failures, 0, wait));
        self->delayed_send(self, wait, retry_atom::value, std::string{});
      });
}

/// Queues `name` for an attempt when it has a row and nothing under way.
void make_ready(self_ptr self, const std::string& name) {
  auto& st = self->state;
  auto i = st.streams.find(name);
  if (i == st.streams.end())
    return;
  auto& s = i->second;
  if (s.rows.empty()) {
    st.streams.erase(i);
    return;
  }
  if (s.busy)
    return;
  s.busy = true;
  st.ready.push_back(name);
}

/// The head of `name` left the outbox: record how, with what it leads to
/// (unless `follow` is false), and go on with the next.
void settle(self_ptr self, const env_ptr& env, const std::string& name,
            std::string outcome, const settlement& how, bool follow = true) {
  auto& st = self->state;
  auto& s = st.streams[name];
  auto& row = s.rows.front();
  if (follow && env->c.follow_ups) {
    try {
      for (auto& next : env->c.follow_ups(row, how))
        st.adding.push_back(std::move(next));
    } catch (const std::exception& e) {
      spdlog::error("{} leads to nothing: {}", describe(env, row), e.what());
    }
  }
  env->unsure.erase(row.id);
  metrics::outbox_messages().add(
    {env->c.kind, outcome.rfind("dropped", 0) == 0 ? "dropped" : "delivered"});
  st.settling.push_back(settled_row{row.id, std::move(outcome)});
  s.rows.pop_front();
  s.attempts = 0;
  s.renewed = false;
  s.not_yet = 0;
  s.busy = false;
  make_ready(self, name);
  flush(self, env);
  pump(self, env);
}

void delivered(self_ptr self, const env_ptr& env, const std::string& name,
               const http_response* answer, bool found = false) {
  settlement how;
  how.found = found;
  how.answer = answer;
  settle(self, env, name, "delivered", how);
}

/// Drops the head of `name`; `answer` is the refusal, if one said so.
void drop(self_ptr self, const env_ptr& env, const std::string& name,
          const std::string& reason, const http_response* answer = nullptr,
          bool follow = true) {
  auto& row = self->state.streams[name].rows.front();
  spdlog::error("{} is dropped: {}", describe(env, row), reason);
  settlement how;
  how.delivered = false;
  how.answer = answer;
  settle(self, env, name, "dropped: " + reason, how, follow);
}

/// The head of `name` failed for now: try again after the backoff (or at
/// `at`, a time the server named).
void retry(self_ptr self, const env_ptr& env, const std::string& name,
           const std::string& reason, int64_t at = 0) {
  auto& st = self->state;
  auto& s = st.streams[name];
  ++s.attempts;
  if (env->opts.max_attempts > 0 && s.attempts >= env->opts.max_attempts) {
    drop(self, env, name,
         "gave up after " + std::to_string(s.attempts)
           + " attempt(s): " + reason);
    return;
  }
  metrics::outbox_messages().add({env->c.kind, "retried"});
  auto backoff = heaven::backoff(env->retry, s.attempts);
  auto now = env->opts.now_ms();
  if (at > now)
    backoff = std::max(backoff, std::chrono::milliseconds(at - now));
  auto line = retry_line(describe(env, s.rows.front()), reason, s.attempts,
                         env->opts.max_attempts, backoff);
  // An outage fails every row: say so for the 1st, 2nd, 4th, 8th...
  // attempt of each, not for every one.
  if ((s.attempts & (s.attempts - 1)) == 0)
    spdlog::warn("{}", line);
  else
    spdlog::debug("{}", line);
  self->delayed_send(self, backoff, retry_atom::value, name);
}

/// A rate limit: nothing goes out until `at`.
void pause(self_ptr self, const env_ptr& env, int64_t at) {
  auto& st = self->state;
  auto now = env->opts.now_ms();
  if (at <= now)
    return;
  if (at > st.paused_until) {
    st.paused_until = at;
    spdlog::warn("{} outbox is rate limited: sending nothing for {} ms",
                 env->c.kind, at - now);
  }
}

/// Refusals that say when to come back: a rate limit, or a server that is
/// not serving (503 with Retry-After). Nothing was done.
bool rate_limited(const http_response& res) {
  return res.status == 429
         || (res.status == 403
             && (header_value(res, "x-ratelimit-remaining") == "0"
                 || !header_value(res, "retry-after").empty()))
         || (res.status == 503 && !header_value(res, "retry-after").empty());
}

/// Answers that mean the row can never be delivered.
bool hopeless(int status) {
  return status == 400 || status == 404 || status == 410 || status == 422;
}

/// Sends `req` for the head of `name`; `then` gets the answer (a failure of
/// the client itself becomes status 0).
template <class F>
void send(self_ptr self, const env_ptr& env, http_request req, F then) {
  ++self->state.in_flight;
  req.timeout_ms = env->opts.request_timeout_ms;
  self->request(env->http, caf::infinite, std::move(req))
    .then(
      [=](http_response& res) mutable {
        --self->state.in_flight;
        then(res);
      },
      [=](caf::error& err) mutable {
        --self->state.in_flight;
        http_response res;
        res.error = "http client: " + self->system().render(err);
        then(res);
      });
}

/// After a 401: are the credentials themselves refused?
void check_credentials(self_ptr self, const env_ptr& env,
                       const std::string& name) {
  std::optional<http_request> check;
  if (env->c.credentials_check)
    check = env->c.credentials_check();
  if (!check) {
    drop(self, env, name, "HTTP 401: the credentials are refused");
    return;
  }
  send(self, env, std::move(*check), [=](http_response& res) {
    row_scope in{self, env, name};
    if (res.status == 401)
      drop(self, env, name,
           "HTTP 401: the credentials are refused (checked again)");
    else
      retry(self, env, name, "HTTP 401, but the credentials work");
  });
}

/// After a 401 to `sent`: renews the credentials once per row (then sends
/// it again at once), else asks whether they are refused.
void unauthorized(self_ptr self, const env_ptr& env, const std::string& name,
                  const http_request& sent) {
  auto& s = self->state.streams[name];
  auto& row = s.rows.front();
  if (env->c.renew && s.renewed) {
    drop(self, env, name,
         "HTTP 401 again with renewed credentials: GitHub refuses them (is "
         "the GitHub App still installed on the repository, with the "
         "permissions it needs?)");
    return;
  }
  bool renew = false;
  if (env->c.renew) {
    try {
      renew = env->c.renew(row, sent);
    } catch (const std::exception& e) {
      spdlog::warn("{}: renewing its credentials failed: {}",
                   describe(env, row), e.what());
    }
  }
  if (renew) {
    s.renewed = true;
    spdlog::info("{}: HTTP 401; sending it again with renewed credentials",
                 describe(env, row));
    // Still busy: the retry makes it ready again, with a new request.
    self->send(self, retry_atom::value, name);
    return;
  }
  check_credentials(self, env, name);
}

void on_post(self_ptr self, const env_ptr& env, const std::string& name,
             const http_request& sent, http_response& res) {
  row_scope in{self, env, name};
  auto& row = self->state.streams[name].rows.front();
  if (res.status >= 200 && res.status < 300) {
    if (spdlog::should_log(spdlog::level::debug))
      spdlog::debug("{} delivered", describe(env, row));
    delivered(self, env, name, &res);
  } else if (res.permanent) {
    drop(self, env, name, "heaven cannot make the request: " + res.error);
  } else if (res.status == 401) {
    unauthorized(self, env, name, sent);
  } else if (hopeless(res.status)
             || (env->c.hopeless && env->c.hopeless(res))) {
    auto text = describe(res);
    if (!res.body.empty())
      text += ": " + res.body.substr(0, 200);
    drop(self, env, name, text, &res);
  } else if (rate_limited(res)) {
    auto at = retry_at(res, env->opts.now_ms());
    pause(self, env, at);
    retry(self, env, name, describe(res), at);
  } else {
    // No answer, or a server error: the row may have arrived all the same.
    if (res.status == 0 || res.status >= 500)
      env->unsure.insert(row.id);
    retry(self, env, name, describe(res));
  }
}

void post(self_ptr self, const env_ptr& env, const std::string& name,
          http_request req) {
  auto sent = req;
  send(self, env, std::move(req),
       [=](http_response& res) { on_post(self, env, name, sent, res); });
}

/// Sends the lookup `looked` for the head of `name`; `req` is the request
/// to send when it shows nothing.
void look_up(self_ptr self, const env_ptr& env, const std::string& name,
             http_request req, http_request looked);

void on_lookup(self_ptr self, const env_ptr& env, const std::string& name,
               http_request req, const http_request& looked,
               http_response& res) {
  row_scope in{self, env, name};
  auto& row = self->state.streams[name].rows.front();
  if (res.status >= 200 && res.status < 300) {
    bool arrived = false;
    std::optional<http_request> next;
    try {
      arrived = env->c.found && env->c.found(row, res);
      if (!arrived && env->c.next_page)
        next = env->c.next_page(row, looked, res);
    } catch (const std::exception& e) {
      spdlog::warn("{}: the lookup's answer is unreadable: {}",
                   describe(env, row), e.what());
    }
    if (arrived) {
      spdlog::info("{} had arrived already: not sending it again",
                   describe(env, row));
      delivered(self, env, name, &res, true);
      return;
    }
    if (next) {
      look_up(self, env, name, std::move(req), std::move(*next));
      return;
    }
    env->unsure.erase(row.id);
    post(self, env, name, std::move(req));
  } else if (res.permanent) {
    drop(self, env, name, "heaven cannot make the request: " + res.error);
  } else if (res.status == 401) {
    unauthorized(self, env, name, looked);
  } else if (rate_limited(res)) {
    auto at = retry_at(res, env->opts.now_ms());
    pause(self, env, at);
    retry(self, env, name, "looking it up: " + describe(res), at);
  } else if (res.status >= 400 && res.status < 500) {
    if (!env->c.send_unseen) {
      drop(self, env, name,
           "could not find out whether an earlier attempt arrived (looking "
           "it up: "
             + describe(res)
             + "); not sending it again, so that it "
               "arrives once at most",
           &res);
      return;
    }
    // Nothing to find: the request's own answer will tell.
    env->unsure.erase(row.id);
    post(self, env, name, std::move(req));
  } else {
    retry(self, env, name, "looking it up: " + describe(res));
  }
}

void look_up(self_ptr self, const env_ptr& env, const std::string& name,
             http_request req, http_request looked) {
  auto copy = looked;
  send(self, env, std::move(copy), [=](http_response& res) mutable {
    on_lookup(self, env, name, std::move(req), looked, res);
  });
}

/// Tries the head row of `name` once: drops it when too old, else looks it
/// up first when unsure, else sends it.
void attempt(self_ptr self, const env_ptr& env, const std::string& name) {
  row_scope in{self, env, name};
  auto& row = self->state.streams[name].rows.front();
  auto age = env->opts.now_ms() - row.created_ms;
  if (age > env->opts.max_age.count()) {
    drop(self, env, name,
         "undelivered after " + std::to_string(age / 1000)
           + " s (HEAVEN_OUTBOX_MAX_AGE)",
         nullptr, false);
    return;
  }
  std::optional<http_request> req;
  try {
    req = env->c.request(row);
  } catch (const not_yet& e) {
    spdlog::debug("{}: {}", describe(env, row), e.what());
    auto& s = self->state.streams[name];
    self->delayed_send(self, not_yet_wait(s.not_yet++), retry_atom::value,
                       name);
    return;
  } catch (const not_now& e) {
    retry(self, env, name, e.what());
    return;
  } catch (const std::exception& e) {
    drop(self, env, name, std::string{"unreadable: "} + e.what());
    return;
  }
  self->state.streams[name].not_yet = 0;
  if (!req) {
    settle(self, env, name, "delivered: nothing to send", settlement{});
    return;
  }
  if (env->unsure.count(row.id) > 0 && env->c.lookup) {
    std::optional<http_request> lk;
    try {
      lk = env->c.lookup(row);
    } catch (const std::exception&) {
      // No way to look: send it.
    }
    if (lk) {
      look_up(self, env, name, std::move(*req), std::move(*lk));
      return;
    }
  }
  post(self, env, name, std::move(*req));
}

void pump(self_ptr self, const env_ptr& env) {
  auto& st = self->state;
  if (st.pumping)
    return; // The loop below picks up what was just made ready.
  st.pumping = true;
  while (!st.ready.empty() && st.in_flight < env->opts.max_in_flight) {
    auto now = env->opts.now_ms();
    if (now < st.paused_until) {
      if (!st.resume_scheduled) {
        st.resume_scheduled = true;
        self->delayed_send(self,
                           std::chrono::milliseconds(st.paused_until - now),
                           retry_atom::value, std::string{});
      }
      break;
    }
    auto name = std::move(st.ready.front());
    st.ready.pop_front();
    auto i = st.streams.find(name);
    if (i == st.streams.end() || i->second.rows.empty())
      continue;
    attempt(self, env, name);
  }
  st.pumping = false;
}

/// Queues rows (from the store); `recovered` rows were written before this
/// outbox started, so an attempt of theirs may already have arrived.
void enqueue(self_ptr self, const env_ptr& env, std::vector<outbox_row>& rows,
             bool recovered) {
  auto& st = self->state;
  for (auto& row : rows) {
    auto& s = st.streams[row.stream];
    if (row.id <= s.last_id)
      continue;
    s.last_id = row.id;
    if (recovered)
      env->unsure.insert(row.id);
    auto name = row.stream;
    s.rows.push_back(std::move(row));
    make_ready(self, name);
  }
  pump(self, env);
}

void subscribe(self_ptr self, const env_ptr& env) {
  self
    ->request(env->store, caf::infinite, subscribe_atom::value, env->c.kind,
              outbox_actor{self})
    .then(
      [=](std::vector<outbox_row>& rows) {
        self->state.subscribed = true;
        self->state.store_failures = 0;
        if (env->opts.ready)
          env->opts.ready();
        if (!rows.empty())
          spdlog::info("{} outbox resumes {} undelivered message(s)",
                       env->c.kind, rows.size());
        enqueue(self, env, rows, true);
      },
      [=](caf::error& err) {
        auto wait = std::chrono::milliseconds(1000);
        spdlog::error("{}",
                      retry_line(env->c.kind + " outbox reading the store",
                                 self->system().render(err),
                                 ++self->state.store_failures, 0, wait));
        self->delayed_send(self, wait, retry_atom::value, std::string{});
      });
}

/// Whether nothing is under way: no request in flight, no row that may be
/// sent now, nothing settled left unrecorded. Rows waiting out a backoff
/// or a pause are not under way.
bool quiet(self_ptr self, const env_ptr& env) {
  auto& st = self->state;
  bool paused = env->opts.now_ms() < st.paused_until;
  return st.in_flight == 0 && !st.settle_in_flight && st.settling.empty()
         && st.adding.empty() && (st.ready.empty() || paused);
}

/// Answers those waiting for quiet once it is; else looks again shortly
/// (quiet follows from answers and store writes alike).
void look_for_quiet(self_ptr self, const env_ptr& env) {
  auto& st = self->state;
  if (st.drains.empty())
    return;
  if (quiet(self, env)) {
    for (auto& rp : st.drains)
      rp.deliver(true);
    st.drains.clear();
  } else if (!st.drain_look_scheduled) {
    st.drain_look_scheduled = true;
    self->delayed_send(self, std::chrono::milliseconds(20), wake_atom::value);
  }
}

} // namespace

outbox_actor::behavior_type
outbox(outbox_actor::stateful_pointer<outbox_state> self, store_actor store,
       http_client_actor http, courier c, outbox_options opts) {
  if (!opts.now_ms)
    opts.now_ms = unix_now_ms;
  opts.max_in_flight = std::max(opts.max_in_flight, 1);
  auto env = std::make_shared<outbox_env>();
  env->store = std::move(store);
  env->http = std::move(http);
  env->c = std::move(c);
  env->retry.first_backoff = opts.first_backoff;
  env->retry.max_backoff = opts.max_backoff;
  env->retry.jitter = opts.jitter;
  env->opts = std::move(opts);
  subscribe(self, env);
  return {
    [=](outbox_atom, std::vector<outbox_row>& rows) {
      enqueue(self, env, rows, false);
    },
    [=](outbox_atom, std::vector<outbox_row>& rows, bool recovered) {
      enqueue(self, env, rows, recovered);
    },
    [=](retry_atom, std::string& name) {
      auto& st = self->state;
      if (name.empty()) {
        st.resume_scheduled = false;
        if (!st.subscribed)
          subscribe(self, env);
        flush(self, env);
      } else if (auto i = st.streams.find(name); i != st.streams.end()) {
        i->second.busy = false;
        make_ready(self, name);
      }
      pump(self, env);
    },
    [=](drain_atom) -> caf::result<bool> {
      if (quiet(self, env))
        return true;
      auto rp = self->make_response_promise<bool>();
      self->state.drains.push_back(rp);
      look_for_quiet(self, env);
      return rp;
    },
    [=](wake_atom) {
      self->state.drain_look_scheduled = false;
      look_for_quiet(self, env);
    },
  };
}

} // namespace heaven
