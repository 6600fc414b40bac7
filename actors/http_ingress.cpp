#include "actors/http_ingress.hpp"

// Boost 1.74's Asio needs <utility> first under C++20.
#include <utility>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include "actors/ingress_answers.hpp"
#include "actors/ingress_log.hpp"
#include "actors/ingress_pages.hpp"
#include "actors/ingress_route.hpp"
#include "base/log_book.hpp"
#include "base/memory.hpp"
#include "base/metrics.hpp"
#include "base/thread_name.hpp"

namespace heaven {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

/// The longest a client may take to send one request (slowloris guard) or
/// to stay idle between keep-alive requests.
constexpr auto read_timeout = std::chrono::seconds(30);
/// The longest one response write may take.
constexpr auto write_timeout = std::chrono::seconds(60);
/// How long a rejected upload is drained before the connection is dropped,
/// so the client reads our answer instead of a reset.
constexpr auto linger_timeout = std::chrono::seconds(5);

/// Closed by stop(): after that, actors must not touch the io_context, which
/// may be gone.
struct gate {
  std::mutex mtx;
  bool open = true;
};

class session;

/// The server: owns the io_context, its thread, the acceptor and every
/// open connection.
class server_impl final : public ingress_server {
public:
  server_impl(caf::actor_system& sys, ingress_options opts,
              receiver_actor receiver, store_actor store)
    : sys(sys), opts(std::move(opts)), routing(routing_of(this->opts)),
      receiver(std::move(receiver)),
      store(std::move(store)), pages{this->store, this->opts.logs,
                                     this->opts.log_key, this->opts.github_web},
      gate_(std::make_shared<gate>()),
      intake(sys, this->receiver,
             [g = gate_, ioc = &ioc_](std::function<void()> fn) {
               std::lock_guard<std::mutex> guard{g->mtx};
               if (g->open)
                 net::post(*ioc, std::move(fn));
             }),
      work_(net::make_work_guard(ioc_)), acceptor_(ioc_), overdue_timer_(ioc_) {
  }

  ~server_impl() override {
    stop();
  }

  void listen();

  uint16_t port() const override {
    return port_;
  }

  void stop() override;

  /// Drops a finished connection (io thread only).
  void forget(session* s) {
    sessions_.erase(s);
  }

  caf::actor_system& sys;
  const ingress_options opts;
  /// What routing needs of `opts`.
  const route_options routing;
  const receiver_actor receiver;
  const store_actor store;
  /// What the pages need.
  const page_setup pages;
  const std::shared_ptr<gate> gate_;
  /// Hands verified events to the receiver.
  event_intake intake;

  /// Events handed to the receiver and not yet answered, and their bytes
  /// (written by the io thread and by the actors that answer).
  struct backlog {
    std::atomic<std::size_t> events{0};
    std::atomic<std::size_t> bytes{0};
  };
  const std::shared_ptr<backlog> pending = std::make_shared<backlog>();
  /// Events refused for the backlog since the last line that said so, and
  /// when that was (io thread only).
  std::size_t refused = 0;
  std::chrono::steady_clock::time_point refused_logged{};

private:
  void accept();
  /// Answers events the receiver left unanswered too long, every second.
  void check_overdue();

  // Declared first so it is destroyed last: handlers it still holds own
  // sessions, whose sockets need it.
  net::io_context ioc_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  net::steady_timer overdue_timer_;
  std::map<session*, std::shared_ptr<session>> sessions_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  uint16_t port_ = 0;
};

/// One client connection: reads requests one after another (keep-alive),
/// routes them, and writes the answers.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket sock, server_impl& srv)
    : stream_(std::move(sock)), timer_(stream_.get_executor()), srv_(srv),
      log_(stream_, timer_, srv.opts.logs, &srv.sys, srv.store) {
  }

  void start() {
    // Beast reads at most what the buffer has room for, and at least 512
    // bytes: room for a usual request (headers and a small event, ~1 KiB)
    // means one read for it, not two.
    buffer_.reserve(4096);
    read_request();
  }

  /// Closes the connection without forgetting it (io thread only).
  void close() {
    if (closed_)
      return;
    closed_ = true;
    log_.stop();
    beast::error_code ec;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  /// Sends the answer an actor produced for request `seq`, unless that
  /// request was answered already (it was overdue).
  void answer(uint64_t seq, int status, std::string body,
              string_pairs headers) {
    if (closed_ || seq != seq_)
      return;
    asked_at_.reset();
    if (status < 100 || status > 599)
      status = 500;
    respond(static_cast<http::status>(status), std::move(body), {}, false,
            headers);
  }

  /// Answers 503 for an event handed on at least `event_deadline` before
  /// `now` and still unanswered; its late answer is then dropped.
  void check_overdue(std::chrono::steady_clock::time_point now) {
    auto deadline = srv_.opts.event_deadline;
    if (closed_ || !asked_at_ || now - *asked_at_ < deadline)
      return;
    asked_at_.reset();
    ++seq_;
    respond(http::status::service_unavailable,
            json_error("receiver unavailable: no answer within "
                       + std::to_string(deadline.count()) + " ms"));
  }

  auto executor() {
    return stream_.get_executor();
  }

private:
  using string_response = http::response<http::string_body>;

  void read_request() {
    if (closed_)
      return;
    // The last request's body (up to max_body) is not kept while the
    // connection waits for the next one.
    req_ = {};
    parser_.emplace();
    parser_->body_limit(srv_.opts.max_body);
    stream_.expires_after(read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec,
                                                        std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return too_large();
    if (ec)
      return finish();
    auto& head = parser_->get();
    if (beast::iequals(head[http::field::expect], "100-continue")) {
      // curl waits for this before sending a large body.
      auto res = std::make_shared<http::response<http::empty_body>>(
        http::status::continue_, head.version());
      stream_.expires_after(write_timeout);
      http::async_write(stream_, *res,
                        [self = shared_from_this(), res](beast::error_code ec,
                                                         std::size_t) {
                          if (ec)
                            return self->finish();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec,
                                                 std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit)
      return too_large();
    if (ec)
      return finish();
    req_ = parser_->release();
    route();
  }

  void route() {
    ++seq_;
    auto field = [this](std::string_view name) {
      auto value = req_[beast::string_view{name.data(), name.size()}];
      return std::string_view{value.data(), value.size()};
    };
    auto method = req_.method_string();
    auto target = req_.target();
    auto r = route_request({std::string_view{method.data(), method.size()},
                            std::string_view{target.data(), target.size()},
                            field("X-GitHub-Event"), field("X-GitHub-Delivery"),
                            field("X-Hub-Signature-256"), field("Content-Type"),
                            field("Authorization"), field("Cookie"),
                            std::move(req_.body())},
                           srv_.routing);
    what_ = std::move(r.line);
    webhook_event_ = what_.size() > 8 && what_.ends_with(" /events")
                       ? metrics::webhook_event_label(field("X-GitHub-Event"))
                       : std::string_view{};
    switch (r.what) {
      case route_decision::kind::answer:
        return respond(static_cast<http::status>(r.status), std::move(r.body),
                       {}, false, answer_headers(r));
      case route_decision::kind::health: {
        auto h = health_answer(srv_.opts.health.get());
        return respond(static_cast<http::status>(h.status), std::move(h.body));
      }
      case route_decision::kind::event:
        return on_event(std::move(r.event));
      case route_decision::kind::list:
      case route_decision::kind::locks:
      case route_decision::kind::sign_in:
      case route_decision::kind::callback:
      case route_decision::kind::sign_out:
      case route_decision::kind::page:
      case route_decision::kind::action:
        return answer_by_actors(srv_.sys, srv_.pages, srv_.opts.sign_in.get(),
                                std::move(r), header_replier());
      case route_decision::kind::log:
        return on_log(r.deployment_id, r.log_from);
      case route_decision::kind::metrics:
        return respond(http::status::ok, metrics::render(),
                       {{http::field::content_type,
                         "text/plain; version=0.0.4; charset=utf-8"}});
    }
  }

  /// A verified event: handed to the receiver, whose answer (after the
  /// store's commit) is the webhook's; or, while too many events wait for
  /// their commit, refused with 503 and Retry-After so GitHub or the sender
  /// comes back, and heaven's memory stays bounded. A refused event is not
  /// recorded: nothing was said to be accepted.
  void on_event(inbound_event ev) {
    auto& backlog = *srv_.pending;
    auto& opts = srv_.opts;
    auto size = ev.body.size();
    auto events = backlog.events.load();
    if (events >= opts.max_pending_events
        || (events > 0 && backlog.bytes.load() + size > 4 * opts.max_body))
      return busy(events);
    backlog.events += 1;
    backlog.bytes += size;
    // Called on the io thread (see event_intake::submit).
    auto counted = [pending = srv_.pending, size,
                    weak = std::weak_ptr<session>{weak_from_this()},
                    seq = seq_](int status, std::string body) {
      pending->events -= 1;
      pending->bytes -= size;
      if (auto s = weak.lock())
        s->answer(seq, status, std::move(body), {});
    };
    asked_at_ = std::chrono::steady_clock::now();
    srv_.intake.submit(std::move(ev), std::move(counted));
  }

  /// 503 for an event that finds `events` others waiting; a log line at
  /// most every 10 s says how many were refused.
  void busy(std::size_t events) {
    ++srv_.refused;
    auto now = std::chrono::steady_clock::now();
    if (now - srv_.refused_logged >= std::chrono::seconds(10)) {
      spdlog::warn("ingress refused {} event(s) with 503: {} are waiting to "
                   "be stored (HEAVEN_MAX_PENDING_EVENTS={})",
                   srv_.refused, events, srv_.opts.max_pending_events);
      srv_.refused = 0;
      srv_.refused_logged = now;
    }
    respond(http::status::service_unavailable,
            json_error("heaven is busy: " + std::to_string(events)
                       + " events are waiting to be stored; retry later"),
            {{http::field::retry_after, "1"}});
  }

  /// Writes an actor's answer to the current request on the io thread.
  header_reply_fn header_replier() {
    std::weak_ptr<session> weak = weak_from_this();
    auto g = srv_.gate_;
    return [weak, g, seq = seq_](int status, std::string body,
                                 string_pairs headers) {
      std::lock_guard<std::mutex> guard{g->mtx};
      if (!g->open)
        return;
      if (auto s = weak.lock())
        net::post(s->executor(), [s, seq, status, body = std::move(body),
                                  headers = std::move(headers)]() mutable {
          s->answer(seq, status, std::move(body), std::move(headers));
        });
    };
  }

  /// `GET /deployments/<id>/log` (its token checked): the log as it grows,
  /// until it is closed. Without a log file, a deployment that ended before
  /// it started (asked from the store) has the one line of its end; any
  /// other is 404.
  void on_log(int64_t id, uint64_t from) {
    if (log_.open(id, from))
      return send_log();
    auto sent = log_.open_ended(id, from, weak_from_this(), [this](int status) {
      if (closed_)
        return;
      if (status == 200)
        return send_log();
      if (status == 404)
        return respond(http::status::not_found, json_error("not found"));
      respond(http::status::service_unavailable,
              json_error("heaven's store is unavailable"));
    });
    if (!sent)
      respond(http::status::not_found, json_error("not found"));
  }

  /// Sends the log the follower opened.
  void send_log() {
    log_.start(
      req_.version(), req_.keep_alive(), weak_from_this(),
      {[this] { finish(); },
       [this] { spdlog::debug("ingress answered {} with 200", what_); },
       [this](beast::error_code ec, bool keep_alive) {
         after_write(ec, !keep_alive);
       }});
  }

  void
  respond(http::status status, std::string body,
          std::initializer_list<std::pair<http::field, const char*>> extra = {},
          bool close_after = false, const string_pairs& more = {}) {
    auto res = std::make_shared<string_response>(status, req_.version());
    res->set(http::field::server, "heaven");
    res->set(http::field::content_type, "application/json");
    for (auto& [field, value] : extra)
      res->set(field, value);
    for (auto& [name, value] : more)
      if (beast::iequals(name, "Content-Type"))
        res->set(http::field::content_type, value);
      else
        res->insert(name, value);
    res->keep_alive(req_.keep_alive() && !close_after);
    res->body() = std::move(body);
    res->prepare_payload();
    if (!webhook_event_.empty())
      metrics::webhooks().add(
        {webhook_event_, std::to_string(static_cast<unsigned>(status))});
    spdlog::debug("ingress answered {} with {}", what_,
                  static_cast<unsigned>(status));
    stream_.expires_after(write_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec,
                                                       std::size_t) {
                        self->after_write(ec, res->need_eof());
                      });
  }

  void after_write(beast::error_code ec, bool eof) {
    if (ec)
      return finish();
    if (eof) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      return finish();
    }
    read_request();
  }

  /// Answers 413 and drains what the client still sends, then hangs up.
  void too_large() {
    what_ = std::string{parser_->get().method_string()} + " "
            + std::string{parser_->get().target().substr(
              0, parser_->get().target().find('?'))};
    if (what_.ends_with(" /events")) {
      auto event = parser_->get()["X-GitHub-Event"];
      metrics::webhooks().add(
        {metrics::webhook_event_label({event.data(), event.size()}), "413"});
    }
    req_ = {};
    req_.version(parser_->get().version());
    auto res = std::make_shared<string_response>(
      http::status::payload_too_large, req_.version());
    res->set(http::field::server, "heaven");
    res->set(http::field::content_type, "application/json");
    res->keep_alive(false);
    res->body() = json_error("body too large");
    res->prepare_payload();
    spdlog::debug("ingress answered {} with 413", what_);
    stream_.expires_after(write_timeout);
    http::async_write(
      stream_, *res,
      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
        if (ec)
          return self->finish();
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        self->stream_.expires_after(linger_timeout);
        self->drain();
      });
  }

  void drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            [self = shared_from_this()](beast::error_code ec,
                                                        std::size_t) {
                              if (ec)
                                return self->finish();
                              self->drain();
                            });
  }

  void finish() {
    close();
    srv_.forget(this);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  server_impl& srv_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  /// "METHOD /path" of the current request, for the debug log.
  std::string what_;
  /// The event label of the current request when it is to /events (see
  /// metrics::webhooks), else empty.
  std::string_view webhook_event_;
  /// Counts the requests routed; an answer for an earlier one is dropped.
  uint64_t seq_ = 0;
  /// When the current request's event was handed on, while unanswered.
  std::optional<std::chrono::steady_clock::time_point> asked_at_;
  bool closed_ = false;
  /// The log being followed (GET /deployments/<id>/log).
  log_follower log_;
};

void server_impl::listen() {
  const auto& listen = opts.listen;
  auto [host, port] = split_listen(listen);
  beast::error_code ec;
  tcp::endpoint ep;
  auto addr = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (!ec) {
    ep = tcp::endpoint{addr, port};
  } else {
    tcp::resolver resolver{ioc_};
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty())
      throw std::runtime_error("cannot listen on " + listen
                               + ": cannot resolve " + host + ": "
                               + ec.message());
    ep = results.begin()->endpoint();
  }
  auto fail = [&](const char* what) {
    throw std::runtime_error("cannot listen on " + listen + ": " + what + ": "
                             + ec.message());
  };
  if (acceptor_.open(ep.protocol(), ec); ec)
    fail("open");
  if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec)
    fail("set SO_REUSEADDR");
  if (acceptor_.bind(ep, ec); ec)
    fail("bind");
  if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec)
    fail("listen");
  port_ = acceptor_.local_endpoint().port();
  accept();
  check_overdue();
  thread_ = std::thread{[this] {
    name_this_thread("heaven.http");
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("ingress handler failed: {}", e.what());
      }
    }
  }};
  spdlog::info("ingress listening on {}:{}", ep.address().to_string(), port_);
}

void server_impl::accept() {
  acceptor_.async_accept([this](beast::error_code ec, tcp::socket sock) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open())
      return;
    if (ec) {
      spdlog::warn("ingress could not accept a connection: {}", ec.message());
    } else {
      auto s = std::make_shared<session>(std::move(sock), *this);
      sessions_.emplace(s.get(), s);
      s->start();
    }
    accept();
  });
}

void server_impl::check_overdue() {
  auto now = std::chrono::steady_clock::now();
  for (auto& [ptr, s] : sessions_)
    s->check_overdue(now);
  // Checked often enough that none waits much past its deadline.
  overdue_timer_.expires_after(std::min<std::chrono::milliseconds>(
    std::chrono::seconds(1), opts.event_deadline / 2));
  overdue_timer_.async_wait([this](beast::error_code ec) {
    if (!ec)
      check_overdue();
  });
}

void server_impl::stop() {
  if (stopped_.exchange(true))
    return;
  {
    std::lock_guard<std::mutex> guard{gate_->mtx};
    gate_->open = false;
  }
  if (thread_.joinable()) {
    net::post(ioc_, [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      overdue_timer_.cancel();
      auto all = std::move(sessions_);
      sessions_.clear();
      for (auto& [ptr, s] : all)
        s->close();
      work_.reset();
      ioc_.stop();
    });
    thread_.join();
  }
  sessions_.clear();
}

} // namespace

std::unique_ptr<ingress_server>
start_ingress(caf::actor_system& sys, ingress_options opts,
              receiver_actor receiver, store_actor store) {
  // The ingress is where bodies of up to max_body arrive.
  pin_mmap_threshold();
  auto srv = std::make_unique<server_impl>(
    sys, std::move(opts), std::move(receiver), std::move(store));
  srv->listen();
  return srv;
}

} // namespace heaven
