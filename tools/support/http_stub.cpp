#include "tools/support/http_stub.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>
#include <utility>

#include <cerrno>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace heaven::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

} // namespace

std::string recorded_request::header(std::string_view name) const {
  auto key = lower(name);
  for (auto& [k, v] : headers)
    if (lower(k) == key)
      return v;
  return "";
}

/// One accepted connection, served by its own thread.
struct connection {
  tcp::socket socket;
  int fd = -1;
  bool done = false;
  std::thread thread;
  explicit connection(tcp::socket s) : socket(std::move(s)) {
    fd = socket.native_handle();
  }
};

struct http_stub::impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  int listen_fd = -1;
  uint16_t port = 0;
  std::thread accept_thread;

  mutable std::mutex mtx;
  mutable std::condition_variable cv;
  bool stopping = false;
  handler on_request = [](const recorded_request&) { return stub_response{}; };
  std::vector<recorded_request> log;
  std::list<connection> conns;
  std::size_t accepted = 0;

  /// Waits for a connection without the lock and takes it under the lock
  /// (the listening socket does not block), so that `idle` never misses
  /// one between the kernel's queue and `conns`.
  void accept_loop() {
    for (;;) {
      pollfd ready{listen_fd, POLLIN, 0};
      ::poll(&ready, 1, -1);
      std::unique_lock guard{mtx};
      if (stopping)
        return;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
            || errno == ECONNABORTED)
          continue;
        // EMFILE and friends: back off instead of spinning.
        guard.unlock();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      reap(guard);
      tcp::socket socket{io};
      boost::system::error_code ec;
      socket.assign(tcp::v4(), fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      auto& c = conns.emplace_back(std::move(socket));
      ++accepted;
      c.thread = std::thread([this, &c] { serve(c); });
    }
  }

  /// No connection waits to be accepted and every accepted one has ended
  /// (caller holds `mtx`).
  bool idle() const {
    pollfd pending{listen_fd, POLLIN, 0};
    if (::poll(&pending, 1, 0) != 0)
      return false;
    return std::all_of(conns.begin(), conns.end(),
                       [](const connection& c) { return c.done; });
  }

  /// Joins threads of connections that ended (caller holds `mtx`).
  void reap(std::unique_lock<std::mutex>& guard) {
    for (auto i = conns.begin(); i != conns.end();) {
      if (i->done) {
        i->thread.join();
        i = conns.erase(i);
      } else {
        ++i;
      }
    }
  }

  stub_response answer(const recorded_request& req) {
    handler h;
    {
      std::lock_guard guard{mtx};
      log.push_back(req);
      h = on_request;
    }
    cv.notify_all();
    try {
      return h(req);
    } catch (const std::exception& e) {
      return stub_response{500, {{"Content-Type", "text/plain"}}, e.what()};
    }
  }

  void serve(connection& c) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      parser.header_limit(1024 * 1024);
      http::read(c.socket, buffer, parser, ec);
      if (ec)
        break;
      auto& msg = parser.get();
      recorded_request req;
      req.method = std::string{msg.method_string()};
      req.target = std::string{msg.target()};
      for (auto& field : msg)
        req.headers.emplace_back(lower(std::string{field.name_string()}),
                                 std::string{field.value()});
      req.body = msg.body();
      auto res = answer(req);
      if (res.drop)
        break;
      bool keep_alive = msg.keep_alive();
      if (msg.method() == http::verb::head) {
        // A HEAD answer announces the body's length but sends none.
        http::response<http::empty_body> out;
        out.version(11);
        out.result(static_cast<unsigned>(res.status));
        for (auto& [k, v] : res.headers)
          out.set(k, v);
        out.content_length(res.body.size());
        out.keep_alive(keep_alive);
        http::response_serializer<http::empty_body> sr{out};
        sr.split(false);
        http::write_header(c.socket, sr, ec);
      } else if (res.stream) {
        http::response<http::empty_body> out;
        out.version(11);
        out.result(static_cast<unsigned>(res.status));
        for (auto& [k, v] : res.headers)
          out.set(k, v);
        out.chunked(true);
        out.keep_alive(keep_alive);
        http::response_serializer<http::empty_body> sr{out};
        http::write_header(c.socket, sr, ec);
        res.stream([&](std::string_view piece) {
          if (!ec && !piece.empty())
            asio::write(c.socket, http::make_chunk(asio::buffer(piece)), ec);
          return !ec;
        });
        if (!ec)
          asio::write(c.socket, http::make_chunk_last(), ec);
      } else {
        http::response<http::string_body> out;
        out.version(11);
        out.result(static_cast<unsigned>(res.status));
        for (auto& [k, v] : res.headers)
          out.set(k, v);
        out.body() = std::move(res.body);
        out.prepare_payload();
        out.keep_alive(keep_alive);
        http::write(c.socket, out, ec);
      }
      if (ec || !keep_alive || res.close_after)
        break;
    }
    {
      std::lock_guard guard{mtx};
      // Close under the lock so the destructor never shuts down a reused fd.
      c.socket.shutdown(tcp::socket::shutdown_both, ec);
      c.socket.close(ec);
      c.fd = -1;
      c.done = true;
    }
    cv.notify_all();
  }

  void stop() {
    {
      std::lock_guard guard{mtx};
      stopping = true;
      // shutdown(2) wakes threads blocked in accept() and read() on Linux.
      ::shutdown(listen_fd, SHUT_RDWR);
      for (auto& c : conns)
        if (c.fd >= 0)
          ::shutdown(c.fd, SHUT_RDWR);
    }
    if (accept_thread.joinable())
      accept_thread.join();
    // No new connections now; the ones left end once their read fails.
    for (auto& c : conns)
      c.thread.join();
    conns.clear();
    boost::system::error_code ec;
    acceptor.close(ec);
  }
};

http_stub::http_stub() : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 0};
  d.acceptor.open(ep.protocol());
  d.acceptor.set_option(tcp::acceptor::reuse_address(true));
  d.acceptor.bind(ep);
  d.acceptor.listen(asio::socket_base::max_listen_connections);
  d.listen_fd = d.acceptor.native_handle();
  ::fcntl(d.listen_fd, F_SETFL, ::fcntl(d.listen_fd, F_GETFL) | O_NONBLOCK);
  d.port = d.acceptor.local_endpoint().port();
  d.accept_thread = std::thread([&d] { d.accept_loop(); });
}

http_stub::~http_stub() {
  impl_->stop();
}

std::string http_stub::base_url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + "/";
}

uint16_t http_stub::port() const {
  return impl_->port;
}

void http_stub::respond_with(handler h) {
  std::lock_guard guard{impl_->mtx};
  impl_->on_request = std::move(h);
}

std::vector<recorded_request> http_stub::requests() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->log;
}

std::size_t http_stub::connections() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->accepted;
}

bool http_stub::wait_for(std::size_t n, int timeout_ms) const {
  std::unique_lock guard{impl_->mtx};
  return impl_->cv.wait_for(guard, std::chrono::milliseconds(timeout_ms),
                            [&] { return impl_->log.size() >= n; });
}

bool http_stub::wait_idle(int timeout_ms) const {
  auto deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds(timeout_ms);
  std::unique_lock guard{impl_->mtx};
  while (!impl_->idle()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    // A connection that ends says so; one that arrives does not: look again
    // soon either way.
    impl_->cv.wait_for(guard, std::chrono::milliseconds(10));
  }
  return true;
}

std::vector<std::string> path_segments(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < target.size()) {
    auto next = target.find('/', at);
    if (next == std::string_view::npos)
      next = target.size();
    if (next > at)
      out.emplace_back(target.substr(at, next - at));
    at = next + 1;
  }
  return out;
}

} // namespace heaven::test
