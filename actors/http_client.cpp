#include "actors/http_client.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include "base/metrics.hpp"
#include "base/thread_name.hpp"
#include "base/validate.hpp"

namespace heaven {

namespace {

/// "host" or "host:port" of `url`, for the request metrics (never the
/// path or query, which may hold a token).
std::string host_label(const std::string& url) {
  std::string out = "unknown";
  CURLU* u = curl_url();
  if (u == nullptr)
    return out;
  char* host = nullptr;
  char* port = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK
      && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    out = host;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
      out += std::string{":"} + port;
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out;
}

/// One transfer in flight; owns everything its easy handle points into.
struct transfer {
  uint64_t id = 0;
  http_request request;
  http_response response;
  /// For streaming transfers: where the body goes, piece by piece.
  caf::actor_addr sink;
  bool streaming = false;
  /// The queue it waits in (curl_engine): its origin, or "" for all.
  std::string queue;
  /// How much of the request body curl has read (a POST or PATCH).
  size_t body_read = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {0};

  ~transfer() {
    if (easy != nullptr)
      curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<transfer*>(user);
  long status = 0;
  if (t.streaming)
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  // Only a successful answer is streamed; an error's body stays in the
  // response, for the caller to explain.
  if (!t.streaming || status < 200 || status >= 300) {
    t.response.body.append(data, size * count);
    return size * count;
  }
  auto sink = caf::actor_cast<chunk_sink>(t.sink);
  if (!sink)
    return 0; // Nobody listens any more: abort the transfer.
  caf::anon_send(sink, chunk_atom::value, std::string{data, size * count});
  return size * count;
}

/// Hands curl the body of a POST or PATCH, once.
size_t on_read(char* buffer, size_t size, size_t count, void* user) {
  auto& t = *static_cast<transfer*>(user);
  auto& body = t.request.body;
  auto n = std::min(size * count, body.size() - t.body_read);
  std::copy_n(body.data() + t.body_read, n, buffer);
  t.body_read += n;
  return n;
}

/// Refuses every rewind of a POST's or PATCH's body (see `prepare`).
int refuse_rewind(void*, curl_off_t, int) {
  return CURL_SEEKFUNC_FAIL;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& headers = static_cast<transfer*>(user)->response.headers;
  std::string_view line{data, size * count};
  // Each status line starts a new response (redirect, 100 Continue): keep
  // only the headers of the last one.
  if (line.substr(0, 5) == "HTTP/") {
    headers.clear();
    return size * count;
  }
  auto colon = line.find(':');
  if (colon == line.npos)
    return size * count;
  std::string name{line.substr(0, colon)};
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  auto value = line.substr(colon + 1);
  auto first = value.find_first_not_of(" \t");
  auto last = value.find_last_not_of(" \t\r\n");
  value = first == value.npos ? std::string_view{}
                              : value.substr(first, last - first + 1);
  headers.emplace_back(std::move(name), std::string{value});
  return size * count;
}

/// True for the curl results that say the request cannot be made from here,
/// however often it is tried: the request itself is bad (a malformed URL, a
/// scheme heaven does not speak, an argument curl refuses), or this machine
/// cannot make it (out of memory; curl 7.88 also says "Out of memory" when
/// a URL or header line passes its 1 MB limit on a request's head; heaven's
/// own TLS setup is broken: no CA bundle, no client certificate, unknown
/// cipher or engine). Everything else (DNS, connect, TLS handshake with the
/// server, timeouts, a reset) may be over by the next attempt.
bool permanent_error(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_SETOPT_OPTION_SYNTAX:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
      return true;
    default:
      return false;
  }
}

/// Sets up `t.easy` for `t.request`, with a receive buffer of
/// `buffer_size` bytes (0: curl's default) and, unless "", the certificate
/// authorities of `ca_file` instead of the system's. Returns "" when curl
/// took every setting, else why it refused one (the request is then
/// permanent: the same request would be refused again).
std::string prepare(transfer& t, long buffer_size, const std::string& ca_file) {
  t.easy = curl_easy_init();
  if (t.easy == nullptr)
    return "curl could not make a handle (out of memory)";
  auto* e = t.easy;
  auto& req = t.request;
  CURLcode rc = CURLE_OK;
  const char* what = nullptr;
  // Remembers the first setting curl refused; later ones are still made
  // (harmless) so the code reads as a list.
  auto set = [&](CURLoption option, auto value, const char* name) {
    auto res = curl_easy_setopt(e, option, value);
    if (res != CURLE_OK && rc == CURLE_OK) {
      rc = res;
      what = name;
    }
  };
  for (auto& [name, value] : req.headers) {
    auto* list = curl_slist_append(t.headers, (name + ": " + value).c_str());
    if (list == nullptr)
      return "curl refused header " + name + " (out of memory)";
    t.headers = list;
  }
  // No 100-continue round trip: the servers we talk to answer directly.
  auto* list = curl_slist_append(t.headers, "Expect:");
  if (list == nullptr)
    return "curl refused header Expect (out of memory)";
  t.headers = list;
  set(CURLOPT_URL, req.url.c_str(), "the URL");
  set(CURLOPT_HTTPHEADER, t.headers, "the headers");
  set(CURLOPT_NOSIGNAL, 1L, "NOSIGNAL");
  set(CURLOPT_PROTOCOLS_STR, "http,https", "the protocols");
  set(CURLOPT_TIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(req.timeout_ms, 1)), "the timeout");
  set(CURLOPT_ERRORBUFFER, t.errbuf, "the error buffer");
  set(CURLOPT_WRITEFUNCTION, on_body, "the body callback");
  set(CURLOPT_WRITEDATA, &t, "the body callback");
  set(CURLOPT_HEADERFUNCTION, on_header, "the header callback");
  set(CURLOPT_HEADERDATA, &t, "the header callback");
  set(CURLOPT_PRIVATE, &t, "PRIVATE");
  // HTTP/2 where the server offers it over TLS (curl 7.88's default, said
  // here); the engine's multi handle multiplexes on it. No CURLOPT_PIPEWAIT:
  // with it curl 7.88 left a request waiting for good behind one that had
  // failed on a fresh connection (a 2 MB request head); without it, a
  // burst to a new host opens up to the host's bound of connections.
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS),
      "the HTTP version");
  if (buffer_size > 0)
    set(CURLOPT_BUFFERSIZE, buffer_size, "the buffer size");
  if (!ca_file.empty()) {
    // Only these authorities: the system's directory would trust the rest.
    set(CURLOPT_CAINFO, ca_file.c_str(), "the CA file");
    set(CURLOPT_CAPATH, static_cast<const char*>(nullptr), "the CA path");
  }
  if (req.follow_redirects) {
    set(CURLOPT_FOLLOWLOCATION, 1L, "FOLLOWLOCATION");
    set(CURLOPT_MAXREDIRS, 10L, "MAXREDIRS");
    set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https", "the redirect protocols");
  }
  if (req.method == "HEAD") {
    set(CURLOPT_NOBODY, 1L, "NOBODY");
  } else if (req.method == "GET" && req.body.empty()) {
    set(CURLOPT_HTTPGET, 1L, "HTTPGET");
  } else {
    set(CURLOPT_CUSTOMREQUEST, req.method.c_str(), "the method");
    if (req.method == "POST" || req.method == "PATCH") {
      // libcurl re-sends a request whose reused connection dies before any
      // answer, silently (up to 5 times, POSTs too; Debian 12's 7.88 has no
      // switch for it, CURLOPT_FORBID_RETRY_ON_REUSE came in 8.16): a
      // server that took a status and then lost the connection would get
      // it twice. Such a re-send must rewind the body first; a body read
      // from a callback that refuses every rewind makes it fail instead,
      // and its sender finds out what happened (the outbox looks the status
      // up). So these requests reuse connections (one TLS handshake for
      // many statuses) and are still never sent twice by curl. (None of
      // them follows redirects, which would also rewind on a 307.)
      set(CURLOPT_POST, 1L, "POST");
      set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()),
          "the body size");
      set(CURLOPT_READFUNCTION, on_read, "the body callback");
      set(CURLOPT_READDATA, &t, "the body callback");
      set(CURLOPT_SEEKFUNCTION, refuse_rewind, "the rewind callback");
    } else if (!req.body.empty() || req.method != "DELETE") {
      // A DELETE without a body sends no Content-Length at all. GETs, PUTs
      // and DELETEs may be repeated.
      set(CURLOPT_POSTFIELDS, req.body.data(), "the body");
      set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()),
          "the body size");
    }
  }
  if (rc != CURLE_OK)
    return std::string{"curl refused "} + what + ": " + curl_easy_strerror(rc);
  return {};
}

} // namespace

/// How a curl_engine uses its connections.
struct engine_options {
  /// CURLMOPT_MAX_HOST_CONNECTIONS, CURLMOPT_MAX_TOTAL_CONNECTIONS (0: no
  /// bound) and CURLMOPT_MAXCONNECTS (idle connections kept).
  long max_host_connections = 0;
  long max_total_connections = 0;
  long max_idle_connections = 0;
  /// Transfers handed to curl at once per queue (0: no bound); the others
  /// wait in order, without an easy handle, and their timeout starts when
  /// they are handed on. With `per_origin`, one queue per scheme, host and
  /// port, else one for all.
  size_t max_active = 0;
  bool per_origin = false;
  /// CURLOPT_BUFFERSIZE of each transfer (0: curl's 16 KiB).
  long buffer_size = 0;
  /// CURLOPT_CAINFO of each transfer ("": the system's authorities).
  std::string ca_file;
};

/// libcurl's multi interface on one thread of its own, with its own pool of
/// connections. Finished transfers go back to the actor as `http_done`
/// messages.
class curl_engine {
public:
  curl_engine(caf::weak_actor_ptr owner, engine_options opts)
    : owner_(std::move(owner)), opts_(opts), multi_(curl_multi_init()) {
    // Without bounds libcurl opens a connection per transfer, and thousands
    // of builds would hold thousands of sockets (file descriptors). With
    // them, transfers wait for a connection of their host (HTTP/1.1) or
    // share one (HTTP/2 multiplexing, curl's default where the server
    // offers it over TLS).
    if (opts_.max_host_connections > 0)
      curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                        opts_.max_host_connections);
    if (opts_.max_total_connections > 0)
      curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                        opts_.max_total_connections);
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    // Idle connections kept for reuse: without a bound, libcurl keeps up to
    // four per transfer ever added.
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, opts_.max_idle_connections);
    thread_ = std::thread([this] { run(); });
  }

  ~curl_engine() {
    {
      std::lock_guard guard{mtx_};
      stop_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
  }

  /// Starts a transfer; with a `sink`, its body is streamed to the sink.
  void submit(uint64_t id, http_request req, caf::actor_addr sink = {}) {
    auto t = std::make_unique<transfer>();
    t->id = id;
    t->request = std::move(req);
    t->streaming = static_cast<bool>(sink);
    t->sink = std::move(sink);
    {
      std::lock_guard guard{mtx_};
      incoming_.push_back(std::move(t));
    }
    curl_multi_wakeup(multi_);
  }

  /// Ends every streaming transfer of `sink`, started or waiting.
  void cancel(caf::actor_addr sink) {
    {
      std::lock_guard guard{mtx_};
      cancels_.push_back(std::move(sink));
    }
    curl_multi_wakeup(multi_);
  }

private:
  using active_map = std::unordered_map<CURL*, std::unique_ptr<transfer>>;

  /// Transfers of one queue: waiting, and handed to curl.
  struct queue {
    std::deque<std::unique_ptr<transfer>> waiting;
    size_t active = 0;
  };
  using queue_map = std::unordered_map<std::string, queue>;

  /// "scheme://host:port" of `url` (lower-case is not needed: heaven's
  /// URLs come from its own settings and from the APIs it talks to).
  static std::string origin(const std::string& url) {
    auto scheme = url.find("://");
    auto start = scheme == url.npos ? 0 : scheme + 3;
    return url.substr(0, url.find_first_of("/?#", start));
  }

  void run() {
    name_this_thread("heaven.client");
    active_map active;
    queue_map queues;
    size_t waiting = 0;
    bool said_full = false;
    for (;;) {
      std::deque<std::unique_ptr<transfer>> fresh;
      std::vector<caf::actor_addr> cancels;
      {
        std::lock_guard guard{mtx_};
        if (stop_)
          break;
        fresh.swap(incoming_);
        cancels.swap(cancels_);
      }
      for (auto& t : fresh) {
        if (opts_.per_origin)
          t->queue = origin(t->request.url);
        queues[t->queue].waiting.push_back(std::move(t));
        ++waiting;
      }
      for (auto& sink : cancels) {
        for (auto i = active.begin(); i != active.end();) {
          auto& t = *i->second;
          if (!t.streaming || t.sink != sink) {
            ++i;
            continue;
          }
          curl_multi_remove_handle(multi_, t.easy);
          t.response = http_response{};
          t.response.error = "cancelled";
          finish(t);
          --queues[t.queue].active;
          i = active.erase(i);
        }
        for (auto& [key, q] : queues)
          for (auto i = q.waiting.begin(); i != q.waiting.end();) {
            if (!(*i)->streaming || (*i)->sink != sink) {
              ++i;
              continue;
            }
            (*i)->response.error = "cancelled";
            finish(**i);
            i = q.waiting.erase(i);
            --waiting;
          }
      }
      waiting -= admit(active, queues);
      if (waiting > 0 && !opts_.per_origin && !said_full) {
        said_full = true;
        spdlog::info("HTTP: {} streamed bodies (build output) at once "
                     "(HEAVEN_HTTP_MAX_STREAMS); the next ones wait for one "
                     "to end",
                     opts_.max_active);
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      bool ended = false;
      while (auto* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE)
          continue;
        auto i = active.find(msg->easy_handle);
        if (i == active.end())
          continue;
        auto& t = *i->second;
        auto rc = msg->data.result;
        if (rc == CURLE_OK) {
          long status = 0;
          curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
          t.response.status = static_cast<int>(status);
        } else {
          t.response.status = 0;
          t.response.headers.clear();
          t.response.body.clear();
          t.response.error = t.errbuf[0] != '\0' ? t.errbuf
                                                 : curl_easy_strerror(rc);
          t.response.permanent = permanent_error(rc);
        }
        metrics::http_requests().add(
          {host_label(t.request.url),
           metrics::status_class(t.response.status)});
        curl_multi_remove_handle(multi_, t.easy);
        finish(t);
        --queues[t.queue].active;
        active.erase(i);
        ended = true;
      }
      // A transfer that ended makes room for a waiting one: start it now,
      // not after the next wait.
      if (ended && waiting > 0)
        continue;
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    // The actor is gone: drop whatever is still in flight.
    for (auto& [easy, t] : active)
      curl_multi_remove_handle(multi_, easy);
  }

  /// Hands waiting transfers to curl, in order, while their queue's bound
  /// allows; forgets queues left empty. Returns how many left their queue.
  size_t admit(active_map& active, queue_map& queues) {
    size_t taken = 0;
    for (auto qi = queues.begin(); qi != queues.end();) {
      auto& q = qi->second;
      while (!q.waiting.empty()
             && (opts_.max_active == 0 || q.active < opts_.max_active)) {
        auto t = std::move(q.waiting.front());
        q.waiting.pop_front();
        ++taken;
        auto refused = prepare(*t, opts_.buffer_size, opts_.ca_file);
        if (refused.empty())
          if (auto mc = curl_multi_add_handle(multi_, t->easy); mc != CURLM_OK)
            refused = std::string{"curl could not start the transfer: "}
                      + curl_multi_strerror(mc);
        if (!refused.empty()) {
          // Nothing was sent: the request never left heaven.
          t->response.error = std::move(refused);
          t->response.permanent = true;
          finish(*t);
          continue;
        }
        ++q.active;
        auto* easy = t->easy;
        active.emplace(easy, std::move(t));
      }
      if (q.waiting.empty() && q.active == 0)
        qi = queues.erase(qi);
      else
        ++qi;
    }
    return taken;
  }

  void finish(transfer& t) {
    if (t.response.status == 0) {
      // Only scheme, host and port: userinfo, path and query may each carry
      // a credential (a Slack webhook's path is its token; signed URLs).
      auto url = url_without_credentials(t.request.url);
      auto scheme = url.find("://");
      auto path = url.find_first_of("/?#", scheme == url.npos ? 0 : scheme + 3);
      url = url.substr(0, path);
      spdlog::debug("{} {} failed{}: {}", t.request.method, url,
                    t.response.permanent ? " for good" : "", t.response.error);
    }
    if (auto strong = owner_.lock())
      caf::anon_send(caf::actor_cast<http_client_actor>(std::move(strong)),
                     http_done_atom::value, t.id, std::move(t.response));
  }

  caf::weak_actor_ptr owner_;
  engine_options opts_;
  CURLM* multi_;
  std::mutex mtx_;
  bool stop_ = false;
  std::deque<std::unique_ptr<transfer>> incoming_;
  std::vector<caf::actor_addr> cancels_;
  std::thread thread_;
};

http_client_state::http_client_state() = default;

http_client_state::~http_client_state() {
  // Stops and joins the curl threads before the promises go away.
  streams.reset();
  requests.reset();
}

http_client_actor::behavior_type
bounded_http_client(http_client_actor::stateful_pointer<http_client_state> self,
                    http_limits limits) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  auto positive = [](int64_t n) { return std::max<int64_t>(n, 1); };
  engine_options requests;
  requests.max_host_connections = positive(limits.max_host_connections);
  // Requests to a host past its bound wait in heaven, not in curl, so that
  // their timeout measures the server and not the queue.
  requests.max_active = static_cast<size_t>(requests.max_host_connections);
  requests.per_origin = true;
  requests.max_total_connections = positive(
    std::max(limits.max_connections, limits.max_host_connections));
  requests.max_idle_connections = requests.max_total_connections;
  requests.ca_file = limits.ca_file;
  engine_options streams;
  streams.max_active = static_cast<size_t>(positive(limits.max_streams));
  streams.max_idle_connections = positive(limits.max_streams);
  // A build's output comes a line at a time: 4 KiB instead of 16 per open
  // stream.
  streams.buffer_size = 4096;
  streams.ca_file = limits.ca_file;
  // Weak handles: the curl threads must not keep their own actor alive.
  self->state.requests = std::make_unique<curl_engine>(
    caf::weak_actor_ptr{self->ctrl()}, requests);
  self->state.streams = std::make_unique<curl_engine>(
    caf::weak_actor_ptr{self->ctrl()}, streams);
  self->set_down_handler(
    [=](caf::down_msg& msg) { self->state.streams->cancel(msg.source); });
  return {
    [=](http_request& req) -> caf::typed_response_promise<http_response> {
      auto rp = self->make_response_promise<http_response>();
      auto id = self->state.next_id++;
      self->state.pending.emplace(id, rp);
      self->state.requests->submit(id, std::move(req));
      return rp;
    },
    [=](stream_atom, http_request& req,
        chunk_sink& sink) -> caf::typed_response_promise<http_response> {
      auto rp = self->make_response_promise<http_response>();
      auto id = self->state.next_id++;
      self->state.pending.emplace(id, rp);
      self->state.streams->submit(id, std::move(req), sink.address());
      // A sink that goes away ends its streams.
      self->monitor(sink);
      return rp;
    },
    [=](cancel_atom, chunk_sink& sink) {
      self->state.streams->cancel(sink.address());
    },
    [=](http_done_atom, uint64_t id, http_response& res) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      i->second.deliver(std::move(res));
      self->state.pending.erase(i);
    },
  };
}

http_client_actor::behavior_type
http_client(http_client_actor::stateful_pointer<http_client_state> self) {
  return bounded_http_client(self, http_limits{});
}

} // namespace heaven
