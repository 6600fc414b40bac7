// The ordered delivery every chat service runs on: one queue per service,
// one message in flight, retries with doubling backoff.
#include <algorithm>
#include <deque>
#include <exception>
#include <memory>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/notifiers/notifier.hpp"

namespace heaven::notifiers {

namespace {

/// What one notifier actor was spawned with.
struct setup {
  std::string service;
  http_client_actor http;
  delivery_options opts;
  formatter format;
};

using setup_ptr = std::shared_ptr<const setup>;

/// State of a NOTIFIER actor.
struct notifier_state {
  static inline const char* name = "notifier";
  /// A queued message and its delivery number (what `retry` names).
  struct entry {
    uint64_t number = 0;
    outgoing msg;
  };
  std::deque<entry> queue;
  uint64_t next_number = 1;
  /// Attempts made for the head of the queue.
  int attempt = 0;
  /// The head is being sent or waits for its retry.
  bool in_flight = false;
};

using self_ptr = notifier_actor::stateful_pointer<notifier_state>;

/// 5xx, 429 (rate limited) and network failures may go away by themselves.
bool retryable(int status) {
  return status == 0 || status == 429 || status >= 500;
}

void send_head(self_ptr self, const setup_ptr& s);

/// The head of the queue is done (delivered or given up on): go on.
void finish_head(self_ptr self, const setup_ptr& s) {
  auto& st = self->state;
  st.queue.pop_front();
  st.attempt = 0;
  st.in_flight = false;
  if (!st.queue.empty())
    send_head(self, s);
}

void on_answer(self_ptr self, const setup_ptr& s, uint64_t number,
               const http_response& res) {
  auto& st = self->state;
  if (st.queue.empty() || st.queue.front().number != number)
    return;
  const auto& label = st.queue.front().msg.label;
  if (res.status >= 200 && res.status < 300) {
    spdlog::debug("{}: delivered {}", s->service, label);
    finish_head(self, s);
    return;
  }
  // curl's error names at most the host, never the path or the body.
  auto why = res.status == 0 ? res.error
                             : "HTTP " + std::to_string(res.status);
  if (res.permanent) {
    spdlog::error("{}: could not send {}: {}; not retried, the same request "
                  "would fail again",
                  s->service, label, why);
    finish_head(self, s);
    return;
  }
  if (!retryable(res.status)) {
    spdlog::error("{}: {} was refused with HTTP {}; not retried", s->service,
                  label, res.status);
    finish_head(self, s);
    return;
  }
  if (st.attempt < s->opts.attempts) {
    auto shift = std::min(st.attempt - 1, 16);
    auto backoff = s->opts.first_backoff * (int64_t{1} << shift);
    spdlog::warn("{}: delivering {} failed ({}), attempt {} of {}; retrying "
                 "in {} ms",
                 s->service, label, why, st.attempt, s->opts.attempts,
                 backoff.count());
    self->delayed_send(self, backoff, retry_atom::value, number);
    return;
  }
  spdlog::error("{}: gave up delivering {} after {} attempt(s): {}",
                s->service, label, st.attempt, why);
  finish_head(self, s);
}

/// Makes one attempt at the head of the queue.
void send_head(self_ptr self, const setup_ptr& s) {
  auto& st = self->state;
  const auto& head = st.queue.front();
  auto number = head.number;
  st.in_flight = true;
  ++st.attempt;
  self->request(s->http, caf::infinite, head.msg.request)
    .then([=](http_response& res) { on_answer(self, s, number, res); },
          [=](caf::error& err) {
            http_response res;
            res.error = "http client: " + self->system().render(err);
            on_answer(self, s, number, res);
          });
}

/// Queues `msg`, dropping the oldest waiting message beyond the limit.
void enqueue(self_ptr self, const setup_ptr& s, outgoing msg) {
  auto& st = self->state;
  st.queue.push_back({st.next_number++, std::move(msg)});
  auto limit = std::max<std::size_t>(s->opts.queue_limit, 1);
  while (st.queue.size() > limit + (st.in_flight ? 1 : 0)) {
    auto victim = st.queue.begin() + (st.in_flight ? 1 : 0);
    spdlog::error("{}: more than {} messages waiting; dropped {}", s->service,
                  limit, victim->msg.label);
    st.queue.erase(victim);
  }
}

notifier_actor::behavior_type notifier(self_ptr self, setup_ptr s) {
  return {
    [=](notify_atom, const deployment_notice& n) {
      std::vector<outgoing> msgs;
      try {
        msgs = s->format(n);
      } catch (const std::exception& e) {
        spdlog::error("{}: could not format {}: {}", s->service, describe(n),
                      e.what());
        return;
      }
      if (msgs.empty()) {
        spdlog::debug("{}: {} is not announced", s->service, describe(n));
        return;
      }
      for (auto& m : msgs)
        enqueue(self, s, std::move(m));
      if (!self->state.in_flight)
        send_head(self, s);
    },
    [=](retry_atom, uint64_t number) {
      auto& st = self->state;
      if (st.in_flight && !st.queue.empty()
          && st.queue.front().number == number)
        send_head(self, s);
    },
  };
}

} // namespace

notifier_actor spawn_notifier(caf::actor_system& sys, std::string service,
                              http_client_actor http, delivery_options opts,
                              formatter format) {
  opts.attempts = std::max(opts.attempts, 1);
  auto s = std::make_shared<const setup>(
    setup{std::move(service), std::move(http), opts, std::move(format)});
  return sys.spawn(notifier, std::move(s));
}

} // namespace heaven::notifiers
