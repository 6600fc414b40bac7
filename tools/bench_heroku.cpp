// heaven_bench_heroku: N concurrent Heroku deployments through the real
// `heaven serve`, against one asynchronous local stand-in for both GitHub's
// API and Heroku's Platform API (Boost.Asio + Beast, C++20 coroutines, so it
// holds thousands of open build-output streams on two threads). It reports
// figures (webhook intake, time to the last deployment, peak in flight,
// heaven's memory, CPU and threads); it asserts nothing. See tools/README.md.

#include <utility> // before Asio: Boost 1.74 under C++20 needs it

// GCC 12 false positives once coroutine frames are inlined: Asio's frame
// allocator (-Wmismatched-new-delete) and std::string's += (-Wrestrict,
// GCC bug 105329).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wrestrict"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <curl/curl.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/webhook.hpp"
#include "tools/support/heaven_process.hpp"

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

namespace {

constexpr auto webhook_secret = "bench webhook secret";
constexpr auto heroku_key = "bench-heroku-key";
constexpr auto heroku_accept = "application/vnd.heroku+json; version=3";
constexpr auto sha = "3f786850e387550fdab836ed7e6dc881de23001b";
constexpr int64_t first_id = 500000; // deployment i has id first_id + i

struct options {
  int deployments = 100;
  int build_seconds = 5;
  int concurrency = 32;
  int poll_ms = 1000;
  int timeout_s = 0; // 0: 600 + 2 * build_seconds
  std::string binary = "build/heaven";
  bool keep = false;
  bool stand_in_only = false;
};

void usage() {
  std::cout
    << "usage: heaven_bench_heroku [--deployments N] [--build-seconds S]\n"
       "         [--concurrency C] [--binary build/heaven] [--poll-ms MS]\n"
       "         [--timeout SECONDS] [--keep] [--stand-in-only]\n"
       "  N   Heroku deployments, one app each (default 100)\n"
       "  S   how long each build takes at the stand-in (default 5)\n"
       "  C   concurrent webhook senders (default 32)\n"
       "  MS  heaven's HEAVEN_POLL_INTERVAL_MS (default 1000)\n"
       "  --timeout  how long to wait for every deployment to end\n"
       "             (default 600 + 2*S)\n"
       "  --keep     keep the temp dir (heaven's database and logs)\n"
       "  --stand-in-only  run only the GitHub + Heroku stand-in (builds of\n"
       "             S seconds) until stdin ends, to try it with curl\n";
}

std::optional<options> parse(int argc, char** argv) {
  options o;
  std::map<std::string, int*> ints = {{"--deployments", &o.deployments},
                                      {"--build-seconds", &o.build_seconds},
                                      {"--concurrency", &o.concurrency},
                                      {"--poll-ms", &o.poll_ms},
                                      {"--timeout", &o.timeout_s}};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (a == "--keep" || a == "--stand-in-only") {
      (a == "--keep" ? o.keep : o.stand_in_only) = true;
      continue;
    }
    if (i + 1 >= argc)
      return std::nullopt;
    std::string v = argv[++i];
    if (a == "--binary") {
      o.binary = v;
      continue;
    }
    auto it = ints.find(a);
    if (it == ints.end())
      return std::nullopt;
    try {
      *it->second = std::stoi(v);
    } catch (std::exception&) {
      return std::nullopt;
    }
  }
  if (o.deployments < 1 || o.concurrency < 1 || o.build_seconds < 0
      || o.poll_ms < 1)
    return std::nullopt;
  if (o.timeout_s <= 0)
    o.timeout_s = 600 + 2 * o.build_seconds;
  return o;
}

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

double seconds(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

// ---- the stand-in for GitHub and Heroku ------------------------------------

/// One Heroku build: created by POST /apps/<app>/builds, done S seconds later.
struct build {
  std::string app;
  time_point done;
};

/// What the stand-in saw; guarded by `mtx` (two io threads, one reader).
struct stand_in {
  std::mutex mtx;
  std::string base; // "http://127.0.0.1:<port>/"
  /// The build output host: another port, as Heroku's output streams come
  /// from another host than its API (curl pools connections per host).
  std::string stream_base;
  int n = 0;
  clock_type::duration build_time{};
  uint64_t next_build = 1;
  std::unordered_map<std::string, build> builds; // by build id
  std::map<std::string, size_t> requests;        // by route
  std::map<std::string, size_t> unexpected;      // "METHOD target" → count
  std::map<std::string, size_t> rejected;        // bad headers or body
  std::map<std::string, size_t> states;          // status POSTs by state
  std::map<std::string, size_t> endings;         // "state: description"
  // Per deployment i (0..n-1); time_point{} = not yet.
  std::vector<time_point> first_status, terminal, build_created, build_done;
  size_t terminals = 0;
  time_point last_terminal;
  long connections = 0, peak_connections = 0;
  long streams = 0, peak_streams = 0;
  size_t accept_errors = 0;
};

using response = http::response<http::string_body>;

response reply(unsigned version, http::status st, std::string body) {
  response res{st, version};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

/// Splits "/a/b/c?x" into {"a", "b", "c"}.
std::vector<std::string> segments(boost::beast::string_view whole) {
  return heaven::test::path_segments({whole.data(), whole.size()});
}

/// "app-17" → 17, or -1.
int app_index(const std::string& app, int n) {
  if (app.rfind("app-", 0) != 0)
    return -1;
  try {
    int i = std::stoi(app.substr(4));
    return i >= 0 && i < n ? i : -1;
  } catch (std::exception&) {
    return -1;
  }
}

bool is_terminal(const std::string& s) {
  return s == "success" || s == "failure" || s == "error";
}

/// A UUID-shaped id ("01234567-89ab-4def-8000-00000000002a" for 42).
std::string uuid_like(const char* head, uint64_t n) {
  char id[48];
  std::snprintf(id, sizeof(id), "%s-89ab-4def-8000-%012llx", head,
                static_cast<unsigned long long>(n));
  return id;
}

std::string build_json(stand_in& s, const std::string& id, const build& b,
                       bool done) {
  return json{
    {"id", id},
    {"status", done ? "succeeded" : "pending"},
    {"output_stream_url", s.stream_base + "streams/" + id},
    {"source_blob",
     {{"url", s.base + "codeload/bench/app/tar.gz/" + sha + "?token=x"},
      {"version", sha}}},
    {"app",
     {{"id", uuid_like("a0000000", app_index(b.app, s.n) + 1)},
      {"name", b.app}}}}
    .dump();
}

/// A deployment status from heaven (POST .../deployments/<id>/statuses).
response on_status(stand_in& s, const http::request<http::string_body>& req,
                   const std::string& id_text) {
  auto j = json::parse(req.body(), nullptr, false);
  std::string state = j.is_object() ? j.value("state", "") : "";
  std::string description = j.is_object() ? j.value("description", "") : "";
  int64_t i = -1;
  try {
    i = std::stoll(id_text) - first_id;
  } catch (std::exception&) {
  }
  auto now = clock_type::now();
  ++s.states[state];
  if (i >= 0 && i < s.n) {
    if (s.first_status[i] == time_point{})
      s.first_status[i] = now;
    if (is_terminal(state) && s.terminal[i] == time_point{}) {
      s.terminal[i] = s.last_terminal = now;
      ++s.terminals;
      ++s.endings[state + (state == "success" ? "" : ": " + description)];
    }
  }
  return reply(req.version(), http::status::created, "{}");
}

/// POST /apps/<app>/builds: a new build that is done build_time from now.
response on_create_build(stand_in& s,
                         const http::request<http::string_body>& req,
                         const std::string& app) {
  auto j = json::parse(req.body(), nullptr, false);
  auto blob = j.is_object() ? j.value("source_blob", json::object())
                            : json::object();
  auto location = s.base + "codeload/bench/app/tar.gz/" + sha + "?token=x";
  if (!blob.is_object() || blob.value("url", "") != location
      || blob.value("version", "") != sha)
    ++s.rejected["build body without the tarball link and sha"];
  auto id = uuid_like("b0000000", s.next_build++);
  auto now = clock_type::now();
  build b{app, now + s.build_time};
  if (int i = app_index(app, s.n); i >= 0) {
    s.build_created[i] = now;
    s.build_done[i] = b.done;
  }
  auto body = build_json(s, id, b, false);
  s.builds.emplace(id, std::move(b));
  return reply(req.version(), http::status::created, body);
}

/// Answers every request but the streams; the route goes to `route`.
response answer(stand_in& s, const http::request<http::string_body>& req,
                std::string& route) {
  auto seg = segments(req.target());
  auto get = req.method() == http::verb::get;
  auto post = req.method() == http::verb::post;
  auto v = req.version();
  std::lock_guard guard{s.mtx};
  bool github = seg.size() >= 3 && seg[0] == "repos" && seg[1] == "bench"
                && seg[2] == "app";
  bool heroku = seg.size() >= 3 && seg[0] == "apps" && seg[2] == "builds";
  if (github && req[http::field::authorization] != "token bench-token")
    ++s.rejected["GitHub request without Authorization: token <token>"];
  if (heroku
      && (req[http::field::authorization] != std::string{"Bearer "} + heroku_key
          || req[http::field::accept] != heroku_accept)) {
    ++s.rejected["Heroku request without Bearer key and version=3 Accept"];
    route = "heroku (refused)";
    return reply(v, http::status::unauthorized,
                 R"({"id":"unauthorized","message":"Invalid credentials"})");
  }
  if (post && github && seg.size() == 6 && seg[3] == "deployments"
      && seg[5] == "statuses") {
    route = "POST statuses";
    return on_status(s, req, seg[4]);
  }
  if (get && github && seg.size() == 5 && seg[3] == "tarball"
      && seg[4] == sha) {
    route = "GET tarball";
    auto res = reply(v, http::status::found, "");
    res.set(http::field::location,
            s.base + "codeload/bench/app/tar.gz/" + seg[4] + "?token=x");
    return res;
  }
  if (post && heroku && seg.size() == 3) {
    route = "POST builds";
    return on_create_build(s, req, seg[1]);
  }
  if (get && heroku && seg.size() == 4) {
    auto it = s.builds.find(seg[3]);
    if (it != s.builds.end() && it->second.app == seg[1]) {
      route = "GET build";
      auto done = clock_type::now() >= it->second.done;
      return reply(v, http::status::ok,
                   build_json(s, it->first, it->second, done));
    }
  }
  route = "unexpected";
  auto what = std::string{req.method_string()} + " "
              + std::string{req.target()}.substr(0, 100);
  ++s.unexpected[what];
  return reply(v, http::status::not_found,
               R"({"id":"not_found","message":"not found"})");
}

/// GET /streams/<id>: a chunked text/plain body, a line a second until the
/// build is done. Returns false when there is no such build.
net::awaitable<bool> stream(stand_in& s, tcp::socket& sock,
                            const http::request<http::string_body>& req) {
  auto seg = segments(req.target());
  build b;
  {
    std::lock_guard guard{s.mtx};
    auto it = seg.size() == 2 ? s.builds.find(seg[1]) : s.builds.end();
    if (it == s.builds.end())
      co_return false;
    b = it->second;
    ++s.requests["GET stream"];
    s.peak_streams = std::max(s.peak_streams, ++s.streams);
  }
  struct leave {
    stand_in& s;
    ~leave() {
      std::lock_guard guard{s.mtx};
      --s.streams;
    }
  } leaving{s};
  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/plain");
  res.keep_alive(req.keep_alive());
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  co_await http::async_write_header(sock, sr, net::use_awaitable);
  net::steady_timer timer{sock.get_executor()};
  for (int k = 1;; ++k) {
    auto now = clock_type::now();
    auto line = now >= b.done ? std::string{"-----> Build succeeded\n"}
                              : "-----> Building " + b.app + " ... step "
                                  + std::to_string(k) + "\n";
    co_await net::async_write(sock, http::make_chunk(net::buffer(line)),
                              net::use_awaitable);
    if (now >= b.done)
      break;
    timer.expires_after(
      std::min<clock_type::duration>(std::chrono::seconds(1), b.done - now));
    co_await timer.async_wait(net::use_awaitable);
  }
  co_await net::async_write(sock, http::make_chunk_last(), net::use_awaitable);
  co_return true;
}

/// One keep-alive connection: requests in order until either side closes.
net::awaitable<void> session(stand_in& s, tcp::socket sock) {
  {
    std::lock_guard guard{s.mtx};
    s.peak_connections = std::max(s.peak_connections, ++s.connections);
  }
  try {
    boost::beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      co_await http::async_read(sock, buf, req, net::use_awaitable);
      auto seg = segments(req.target());
      bool streamed = false;
      if (req.method() == http::verb::get && !seg.empty()
          && seg[0] == "streams")
        streamed = co_await stream(s, sock, req);
      if (!streamed) {
        std::string route;
        auto res = answer(s, req, route);
        res.keep_alive(req.keep_alive());
        {
          std::lock_guard guard{s.mtx};
          ++s.requests[route];
        }
        co_await http::async_write(sock, res, net::use_awaitable);
      }
      if (!req.keep_alive())
        break;
    }
  } catch (std::exception&) {
    // The peer closed the connection (or broke it): nothing to report.
  }
  boost::system::error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);
  std::lock_guard guard{s.mtx};
  --s.connections;
}

net::awaitable<void> listen(stand_in& s, tcp::acceptor& acceptor) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer pause{ex};
  for (;;) {
    boost::system::error_code ec;
    auto sock = co_await acceptor.async_accept(
      net::redirect_error(net::use_awaitable, ec));
    if (ec == net::error::operation_aborted)
      co_return;
    if (ec) { // EMFILE and the like: count, breathe, go on
      {
        std::lock_guard guard{s.mtx};
        ++s.accept_errors;
      }
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    sock.set_option(tcp::no_delay(true), ec);
    net::co_spawn(ex, session(s, std::move(sock)), net::detached);
  }
}

/// The most builds running at once: each runs exactly `len` from creation.
size_t peak_running(std::vector<time_point> created, clock_type::duration len) {
  std::sort(created.begin(), created.end());
  size_t best = 0, lo = 0;
  for (size_t hi = 0; hi < created.size(); ++hi) {
    while (lo <= hi && created[lo] + len <= created[hi])
      ++lo; // builds done by the time build `hi` started
    best = std::max(best, hi + 1 - lo);
  }
  return best;
}

/// The most deployments open at once, each from `from[i]` to `to[i]`.
size_t peak_open(const std::vector<time_point>& from,
                 const std::vector<time_point>& to) {
  std::vector<std::pair<time_point, int>> events;
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] == time_point{})
      continue;
    events.emplace_back(from[i], +1);
    if (to[i] != time_point{})
      events.emplace_back(to[i], -1);
  }
  std::sort(events.begin(), events.end());
  long open = 0, best = 0;
  for (auto& [t, d] : events)
    best = std::max(best, open += d);
  return static_cast<size_t>(best);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

// ---- heaven, the process under test ----------------------------------------

using heaven::test::proc_figures;
using heaven::test::read_proc;

/// heaven's descriptors by kind: "8000 socket, 2 pipe, ...".
std::string fd_kinds(pid_t pid) {
  std::map<std::string, int> kinds;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc/" + std::to_string(pid) + "/fd", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto target = fs::read_symlink(it->path(), ec).string();
    auto kind = target.substr(0, target.find(':'));
    if (kind == "anon_inode")
      kind = target.substr(11); // "[eventfd]", "[eventpoll]", ...
    ++kinds[kind.empty() || kind[0] == '/' ? "file" : kind];
  }
  std::string out;
  for (auto& [kind, n] : kinds)
    out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + kind;
  return out;
}

/// CPU seconds this process (stand-in and senders) has used.
double own_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](timeval t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct heaven_child {
  pid_t pid = -1;
  uint16_t port = 0;
  std::thread drain; // copies heaven's stdout to a file
};

/// Starts `heaven serve` and waits for "heaven is ready on port N".
void start_heaven(heaven_child& h, const options& o, const fs::path& tmp,
                  const std::string& stand_in_url) {
  std::vector<std::string> env = {
    "PATH=" + std::string{getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"},
    "HOME=" + tmp.string(),
    "HEAVEN_LISTEN=127.0.0.1:0",
    "HEAVEN_DATA_DIR=" + (tmp / "data").string(),
    "HEAVEN_CONFIG=/dev/null",
    "HEAVEN_LOG_LEVEL=warn",
    "GITHUB_WEBHOOK_SECRET=" + std::string{webhook_secret},
    "GITHUB_TOKEN=bench-token",
    "OCTOKIT_API_ENDPOINT=" + stand_in_url,
    "HEROKU_API_KEY=" + std::string{heroku_key},
    "HEAVEN_HEROKU_ENDPOINT=" + stand_in_url,
    "HEAVEN_POLL_INTERVAL_MS=" + std::to_string(o.poll_ms),
    "DEPLOYMENT_TIMEOUT=" + std::to_string(o.timeout_s + 600),
    // Every deployment in flight at once: this measures what each costs
    // (heaven's default runs 64 at a time and queues the rest as rows).
    "HEAVEN_MAX_RUNNING=" + std::to_string(std::max(o.deployments, 1)),
  };
  auto started = heaven::test::launch_heaven(o.binary, env,
                                             tmp / "heaven.stderr");
  h.pid = started.pid;
  h.port = started.port;
  h.drain = heaven::test::drain_to_file(started.stdout_fd,
                                        tmp / "heaven.stdout");
}

/// The body of GitHub's `deployment` event for deployment i.
std::string deployment_event(int i) {
  auto app = "app-" + std::to_string(i);
  return heaven::test::deployment_event(
           {.id = first_id + i,
            .sha = sha,
            .clone_url = "https://github.com/bench/app.git",
            .payload = {{"name", app},
                        {"config",
                         {{"provider", "heroku"}, {"heroku_name", app}}}},
            .repo = "bench/app",
            .description = "heaven_bench_heroku",
            .login = "bench"})
    .dump();
}

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// One webhook answer as a sender saw it.
struct answer_seen {
  long status = 0; // 0: no HTTP answer
  double ms = 0;
  std::string body;
};

/// Sends the N events from C threads, each with one keep-alive handle.
std::vector<answer_seen> send_events(const options& o, uint16_t port) {
  std::vector<std::string> bodies, signatures, deliveries;
  auto tag = std::to_string(getpid());
  for (int i = 0; i < o.deployments; ++i) {
    bodies.push_back(deployment_event(i));
    signatures.push_back(
      "X-Hub-Signature-256: sha256="
      + heaven::hmac_sha256_hex(webhook_secret, bodies.back()));
    deliveries.push_back("X-GitHub-Delivery: heroku-bench-" + tag + "-"
                         + std::to_string(i));
  }
  std::vector<answer_seen> answers(o.deployments);
  std::atomic<int> next{0};
  auto url = "http://127.0.0.1:" + std::to_string(port) + "/events";
  auto sender = [&] {
    auto e = curl_easy_init();
    for (int i; (i = next++) < o.deployments;) {
      auto& a = answers[i];
      curl_slist* hdrs = nullptr;
      for (auto h :
           {"Content-Type: application/json", "X-GitHub-Event: deployment",
            "Expect:", deliveries[i].c_str(), signatures[i].c_str()})
        hdrs = curl_slist_append(hdrs, h);
      curl_easy_setopt(e, CURLOPT_URL, url.c_str());
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, bodies[i].c_str());
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                       static_cast<long>(bodies[i].size()));
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, append);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, &a.body);
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
      auto start = clock_type::now();
      if (auto rc = curl_easy_perform(e); rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);
      else
        a.body = curl_easy_strerror(rc);
      a.ms = seconds(clock_type::now() - start) * 1000;
      curl_slist_free_all(hdrs);
    }
    curl_easy_cleanup(e);
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < o.concurrency; ++c)
    threads.emplace_back(sender);
  for (auto& t : threads)
    t.join();
  return answers;
}

/// heaven's log lines with digits folded to '#', grouped.
std::map<std::string, int> log_shapes(const fs::path& tmp) {
  std::map<std::string, int> shapes;
  for (auto name : {"heaven.stdout", "heaven.stderr"}) {
    std::ifstream in{tmp / name};
    for (std::string line; std::getline(in, line);) {
      auto at = line.find("] ");
      std::string shape;
      for (char c : at == std::string::npos ? line : line.substr(at + 2))
        if (!std::isdigit(static_cast<unsigned char>(c)))
          shape += c;
        else if (shape.empty() || shape.back() != '#')
          shape += '#';
      ++shapes[shape.substr(0, 200)];
    }
  }
  return shapes;
}

/// The stand-in listening on 127.0.0.1 with two io threads.
struct server {
  stand_in s;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  tcp::acceptor stream_acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
  std::vector<std::thread> io;

  server(int n, int build_seconds) {
    s.n = n;
    s.build_time = std::chrono::seconds(build_seconds);
    for (auto* v :
         {&s.first_status, &s.terminal, &s.build_created, &s.build_done})
      v->resize(n);
    acceptor.listen(4096); // bursts of connections
    s.base = "http://127.0.0.1:"
             + std::to_string(acceptor.local_endpoint().port()) + "/";
    stream_acceptor.listen(4096);
    s.stream_base = "http://127.0.0.1:"
                    + std::to_string(stream_acceptor.local_endpoint().port())
                    + "/";
    net::co_spawn(ioc, listen(s, acceptor), net::detached);
    net::co_spawn(ioc, listen(s, stream_acceptor), net::detached);
    for (int k = 0; k < 2; ++k)
      io.emplace_back([this] { ioc.run(); });
  }
  ~server() {
    ioc.stop();
    for (auto& t : io)
      t.join();
  }
};

/// What the stand-in saw, by route; call with `s.mtx` held.
void print_stand_in(stand_in& s) {
  std::cout << "stand-in: requests";
  for (auto& [route, n] : s.requests)
    std::cout << " " << route << "=" << n;
  std::cout << "; statuses";
  for (auto& [state, n] : s.states)
    std::cout << " " << state << "=" << n;
  std::cout << "\n  peak connections " << s.peak_connections
            << ", peak open streams " << s.peak_streams << ", accept errors "
            << s.accept_errors << "\n";
  for (auto& [what, n] : s.unexpected)
    std::cout << "    " << n << " x unexpected (404) " << what << "\n";
  for (auto& [what, n] : s.rejected)
    std::cout << "    " << n << " x " << what << "\n";
}

/// Sends SIGTERM and waits up to 30 s; says how heaven ended.
std::string stop_heaven(heaven_child& h) {
  auto stopped = heaven::test::stop_process(h.pid, 30, 20);
  h.drain.join();
  if (!stopped.exited)
    return "did NOT exit within 30 s (killed)";
  auto ws = stopped.status;
  return "exited after " + fmt(stopped.seconds, 2) + " s with "
         + (WIFEXITED(ws) ? "status " + std::to_string(WEXITSTATUS(ws))
                          : "signal " + std::to_string(WTERMSIG(ws)));
}

/// heaven's figures around the load.
struct heaven_figures {
  proc_figures idle, peak, after;
  std::string after_fds;         // by kind
  long stand_in_connections = 0; // heaven's connections to it, at the end
  std::string stopped;
  double bench_cpu_s = 0; // the stand-in's and senders' CPU meanwhile
};

void print_report(const options& o, stand_in& s,
                  const std::vector<answer_seen>& answers, double send_s,
                  time_point t0, const heaven_figures& f) {
  std::vector<double> ok_ms;
  std::map<std::string, int> refused;
  for (auto& a : answers)
    if (a.status == 201)
      ok_ms.push_back(a.ms);
    else
      ++refused[std::to_string(a.status) + " " + a.body.substr(0, 120)];
  size_t accepted = ok_ms.size();
  bool all = s.terminals >= accepted;
  double done_s = seconds((all ? s.last_terminal : clock_type::now()) - t0);
  std::vector<time_point> created;
  std::vector<double> react_s; // build done → terminal status
  for (int i = 0; i < o.deployments; ++i)
    if (s.build_created[i] != time_point{}) {
      created.push_back(s.build_created[i]);
      if (s.terminal[i] != time_point{})
        react_s.push_back(seconds(s.terminal[i] - s.build_done[i]));
    }
  auto in_flight = peak_running(created, s.build_time);
  double mib = 1024.0;
  std::cout << "webhooks: " << accepted << "/" << o.deployments << " accepted ("
            << fmt(100.0 * accepted / o.deployments) << " %) in "
            << fmt(send_s, 2) << " s = " << fmt(accepted / send_s)
            << " events/s; latency p50 " << fmt(percentile(ok_ms, 50))
            << " p99 " << fmt(percentile(ok_ms, 99)) << " max "
            << fmt(percentile(ok_ms, 100)) << " ms\n";
  for (auto& [what, n] : refused)
    std::cout << "  " << n << " x " << what << "\n";
  std::cout << "deployments: " << s.terminals << "/" << accepted
            << " ended after " << fmt(done_s, 2) << " s"
            << (all ? "" : " (TIMED OUT)") << ";";
  for (auto& [what, n] : s.endings)
    std::cout << (what == "success" ? " " : "\n  ") << n << " x "
              << what.substr(0, 160);
  std::cout << "\n  builds created " << created.size()
            << "; peak in flight (builds running at the stand-in) " << in_flight
            << "; peak open at heaven (first status to last) "
            << peak_open(s.first_status, s.terminal)
            << "\n  build done -> terminal status: p50 "
            << fmt(percentile(react_s, 50), 2) << " s, p99 "
            << fmt(percentile(react_s, 99), 2) << " s, max "
            << fmt(percentile(react_s, 100), 2) << " s\n";
  print_stand_in(s);
  auto cpu = f.after.cpu_s - f.idle.cpu_s;
  auto per = in_flight ? fmt((f.peak.hwm_kb - f.idle.rss_kb)
                             / static_cast<double>(in_flight))
                           + " KiB"
                       : std::string{"-"};
  std::cout << "heaven: idle RSS " << fmt(f.idle.rss_kb / mib) << " MiB, "
            << f.idle.threads << " threads, " << f.idle.fds << " fds\n"
            << "  peak RSS (VmHWM) " << fmt(f.peak.hwm_kb / mib)
            << " MiB, peak threads " << f.peak.threads << ", peak fds "
            << f.peak.fds << " (fds sampled once a second)\n"
            << "  CPU (utime+stime) " << fmt(f.after.cpu_s, 2) << " s, "
            << fmt(cpu, 2) << " s of it during the load ("
            << fmt(cpu * 1000 / o.deployments) << " ms per deployment)\n"
            << "  memory per in-flight deployment " << per
            << " ((peak RSS - idle RSS) / peak in flight)\n"
            << "  1 s after the end: RSS " << fmt(f.after.rss_kb / mib)
            << " MiB, " << f.after.threads << " threads, " << f.after.fds
            << " fds (" << f.after_fds << "); " << f.stand_in_connections
            << " connections to the stand-in still open\n"
            << "SIGTERM: " << f.stopped << "\n"
            << "this process (stand-in and senders) used "
            << fmt(f.bench_cpu_s, 2) << " s of CPU during the load\n";
}

int run(const options& o) {
  auto tmp = fs::temp_directory_path()
             / ("heaven-bench-heroku-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  struct cleanup {
    fs::path dir;
    bool keep;
    ~cleanup() {
      std::error_code ec;
      if (keep)
        std::cout << "kept " << dir << "\n";
      else
        fs::remove_all(dir, ec);
    }
  } cleaner{tmp, o.keep};

  server srv{o.deployments, o.build_seconds};
  auto& s = srv.s;
  heaven_child h;
  start_heaven(h, o, tmp, s.base);
  if (h.port == 0) {
    waitpid(h.pid, nullptr, 0);
    h.drain.join();
    std::ifstream err{tmp / "heaven.stderr"};
    std::cerr << "heaven did not start:\n" << err.rdbuf() << "\n";
    return 1;
  }
  std::cout << "heaven_bench_heroku: N=" << o.deployments
            << " S=" << o.build_seconds << " s C=" << o.concurrency
            << " poll=" << o.poll_ms << " ms binary=" << o.binary << " (pid "
            << h.pid << ")" << std::endl;

  heaven_figures f;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  f.idle = f.peak = read_proc(h.pid, true);
  std::atomic<bool> sampling{true};
  std::thread sampler{[&] {
    for (int tick = 0; sampling; ++tick) {
      auto now = read_proc(h.pid, tick % 10 == 0); // fds once a second
      f.peak.hwm_kb = std::max(f.peak.hwm_kb, now.hwm_kb);
      f.peak.threads = std::max(f.peak.threads, now.threads);
      f.peak.fds = std::max(f.peak.fds, now.fds);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }};

  auto t0 = clock_type::now();
  auto cpu0 = own_cpu_s();
  auto answers = send_events(o, h.port);
  double send_s = seconds(clock_type::now() - t0);
  auto accepted = std::count_if(answers.begin(), answers.end(),
                                [](auto& a) { return a.status == 201; });
  auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  for (;;) {
    {
      std::lock_guard guard{s.mtx};
      if (s.terminals >= static_cast<size_t>(accepted))
        break;
    }
    if (clock_type::now() > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  sampling = false;
  sampler.join();
  f.bench_cpu_s = own_cpu_s() - cpu0;
  f.after = read_proc(h.pid, true);
  f.after_fds = fd_kinds(h.pid);
  {
    std::lock_guard guard{s.mtx};
    f.stand_in_connections = s.connections;
  }
  f.peak.hwm_kb = std::max(f.peak.hwm_kb, f.after.hwm_kb);
  f.stopped = stop_heaven(h);

  {
    std::lock_guard guard{s.mtx};
    print_report(o, s, answers, send_s, t0, f);
  }
  auto shapes = log_shapes(tmp);
  int lines = 0, shown = 0;
  for (auto& [text, n] : shapes)
    lines += n;
  std::cout << "heaven log (warn and up): " << lines << " lines\n";
  for (auto& [text, n] : shapes)
    if (++shown <= 12)
      std::cout << "    " << n << " x " << text << "\n";
  return 0;
}

/// --stand-in-only: serves until stdin ends, then says what it saw.
int serve_only(const options& o) {
  server srv{o.deployments, o.build_seconds};
  std::cout << "stand-in on " << srv.s.base << " (ends when stdin does)"
            << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  std::lock_guard guard{srv.s.mtx};
  print_stand_in(srv.s);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  if (!o) {
    usage();
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  // Thousands of streams: the stand-in (and heaven, which inherits it)
  // may open as many descriptors as the hard limit allows.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 0;
  try {
    rc = o->stand_in_only ? serve_only(*o) : run(*o);
  } catch (std::exception& e) {
    std::cerr << "heaven_bench_heroku: " << e.what() << "\n";
    rc = 1;
  }
  curl_global_cleanup();
  return rc;
}
