// Tests for the HTTP ingress: real HTTP round trips over 127.0.0.1 against
// fake receiver and store actors; webhook events, deployment lists, logs and
// locks.
#include <boost/test/unit_test.hpp>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "actors/http_ingress.hpp"
#include "base/health.hpp"
#include "base/log_book.hpp"
#include "base/webhook.hpp"
#include "tests/support/logger.hpp"
#include "tools/support/http_call.hpp"

using namespace heaven;
using heaven::test::http_call;

namespace {

const std::string secret = "s3cret-webhook-key";
const std::string log_key = "log-key-for-tests";
const std::string api_token = "api-token-for-tests";
/// The header that reads /deployments and /locks.
const string_pairs with_token = {{"Authorization", "Bearer " + api_token}};

/// What the fake actors saw, shared with the test thread.
struct record {
  std::mutex mtx;
  std::vector<inbound_event> events;
  std::vector<int32_t> limits;
  /// What the store answers to `locks`, and how often it was asked.
  std::vector<env_lock> locks;
  int locks_asked = 0;
  event_receipt reply{receipt_kind::accepted, 5, deploy_state::queued, {}};
  /// What the store answers to `detail` and to a log read, by id (an
  /// unknown deployment and an empty log otherwise).
  std::map<int64_t, deployment_detail> details;
  std::map<int64_t, log_piece> pieces;
  /// While set, events are kept unanswered in `held`.
  bool hold = false;
  /// The answers held back, one per event (a batch's answer once all of
  /// its events are released).
  std::vector<std::function<void(const event_receipt&)>> held;

  std::size_t held_now() {
    std::lock_guard<std::mutex> guard{mtx};
    return held.size();
  }

  std::vector<inbound_event> seen() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
};

receiver_actor::behavior_type fake_receiver(receiver_actor::pointer self,
                                            std::shared_ptr<record> rec) {
  return {
    [self, rec](event_atom, inbound_event& ev) -> caf::result<event_receipt> {
      std::lock_guard<std::mutex> guard{rec->mtx};
      rec->events.push_back(std::move(ev));
      if (!rec->hold)
        return rec->reply;
      // Unanswered until `pending` releases it, as a store busy committing.
      auto rp = self->make_response_promise<event_receipt>();
      rec->held.push_back(
        [rp](const event_receipt& r) mutable { rp.deliver(r); });
      return rp;
    },
    [self, rec](event_atom, std::vector<inbound_event>& evs)
      -> caf::result<std::vector<event_receipt>> {
      std::lock_guard<std::mutex> guard{rec->mtx};
      auto n = evs.size();
      for (auto& ev : evs)
        rec->events.push_back(std::move(ev));
      if (!rec->hold)
        return std::vector<event_receipt>(n, rec->reply);
      auto rp = self->make_response_promise<std::vector<event_receipt>>();
      auto answers = std::make_shared<std::vector<event_receipt>>();
      for (std::size_t i = 0; i < n; ++i)
        rec->held.push_back([rp, answers, n](const event_receipt& r) mutable {
          answers->push_back(r);
          if (answers->size() == n)
            rp.deliver(std::move(*answers));
        });
      return rp;
    },
    [](drain_atom, int64_t) { return true; },
    [](cancel_atom) {},
    [rec](pending_atom) {
      std::lock_guard<std::mutex> guard{rec->mtx};
      rec->hold = false;
      for (auto& answer : rec->held)
        answer(rec->reply);
      rec->held.clear();
    },
    [](wake_atom) {},
  };
}

store_actor::behavior_type fake_store(std::shared_ptr<record> rec) {
  return {
    [](accept_atom, const inbound_event&) { return accept_result{}; },
    [](accept_atom, const std::vector<inbound_event>& evs) {
      return std::vector<accept_result>(evs.size());
    },
    [](start_atom, int64_t, const std::string&) { return false; },
    [](finish_atom, int64_t, const provider_outcome&) { return false; },
    [](subscribe_atom, const std::string&, const outbox_actor&) {
      return std::vector<outbox_row>{};
    },
    [](outbox_atom, const outbox_change&) { return true; },
    [rec](list_atom, int32_t limit) {
      std::lock_guard<std::mutex> guard{rec->mtx};
      rec->limits.push_back(limit);
      deployment_row row;
      row.id = 1;
      row.state = deploy_state::success;
      return std::vector<deployment_row>{row};
    },
    [](pending_atom) { return std::vector<unfinished_deployment>{}; },
    [](pending_atom, int64_t, int32_t) {
      return std::vector<unfinished_deployment>{};
    },
    [rec](locks_atom) {
      std::lock_guard<std::mutex> guard{rec->mtx};
      ++rec->locks_asked;
      return rec->locks;
    },
    [](latest_atom, const std::string&) {
      return std::vector<deployed_environment>{};
    },
    [](claim_atom, const auto_deployment&) { return false; },
    [](list_atom, const deployment_filter&) {
      return std::vector<deployment_row>{};
    },
    [rec](detail_atom, int64_t id) {
      std::lock_guard<std::mutex> guard{rec->mtx};
      auto i = rec->details.find(id);
      return i == rec->details.end() ? deployment_detail{} : i->second;
    },
    [](repos_atom) { return std::vector<repository_record>{}; },
    [](unlock_atom, const std::string&, const std::string&) { return false; },
    [](switch_atom, const std::string&, bool) { return false; },
    [](create_atom, const auto_deployment&) { return false; },
    [](claim_atom, int32_t) { return std::vector<unfinished_deployment>{}; },
    [](lease_atom) { return lease_report{}; },
    [](leave_atom) { return true; },
    [](log_atom, int64_t, int64_t, const std::string&, const std::string&) {
      return true;
    },
    [rec](log_atom, int64_t id, int64_t from, int64_t) {
      std::lock_guard<std::mutex> guard{rec->mtx};
      auto i = rec->pieces.find(id);
      if (i == rec->pieces.end())
        return log_piece{};
      auto piece = i->second;
      piece.bytes.erase(0, std::min<std::size_t>(from, piece.bytes.size()));
      return piece;
    },
    [](secret_atom, const std::string&, const std::string& fresh) {
      return fresh;
    },
    [](tick_atom) {},
  };
}

std::string make_temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path()
                       / "heaven-ingress-XXXXXX")
                        .string();
  if (::mkdtemp(templ.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  return templ;
}

const std::string deployment_body = R"({
  "action": "created",
  "deployment": {
    "id": 4242,
    "sha": "a10867b14bb761a232cd80139fbd4c0d33264240",
    "ref": "main",
    "task": "deploy",
    "payload": {"name": "shop", "notify": {"room": "ops"},
                "config": {"provider": "shell", "deploy_script": "run.sh",
                           "staging_url": "https://staging.shop"}},
    "environment": "staging",
    "description": "Deploying main",
    "creator": {"login": "amy"}
  },
  "repository": {"name": "shop", "full_name": "octo/shop",
                 "clone_url": "file:///tmp/shop.git"},
  "sender": {"login": "amy"}
})";

/// A `status` event as GitHub sends it (trimmed of URLs heaven never reads).
const std::string status_body = R"json({
  "id": 6805126730,
  "sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
  "name": "octo/shop",
  "target_url": "https://ci.example.com/builds/77",
  "context": "ci/build",
  "description": "Tests r\u00e9ussis",
  "state": "success",
  "commit": {
    "sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
    "commit": {"author": {"name": "Amy", "email": "amy@example.com"},
               "message": "Fix the cart"},
    "author": null,
    "parents": [{"sha": "a10867b14bb761a232cd80139fbd4c0d33264240"}]
  },
  "branches": [{"name": "main", "protected": true}],
  "repository": {"id": 1, "name": "shop", "full_name": "octo/shop",
                 "html_url": "https://github.com/octo/shop",
                 "default_branch": "main"},
  "sender": {"login": "ci-bot", "type": "Bot"}
})json";

/// A `deployment_status` event as GitHub sends it, for a hubot-deploy
/// deployment whose payload arrived JSON-encoded as a string.
const std::string deployment_status_body = R"json({
  "action": "created",
  "deployment_status": {
    "id": 344110148,
    "state": "failure",
    "creator": {"login": "heaven-bot"},
    "description": "échec: script/deploy exited with 1 ✗",
    "environment": "staging",
    "target_url": "https://heaven.example.com/deployments/5/log?token=abc",
    "environment_url": "https://staging.shop",
    "created_at": "2019-05-15T15:20:55Z"
  },
  "deployment": {
    "id": 4242,
    "sha": "a10867b14bb761a232cd80139fbd4c0d33264240",
    "ref": "main",
    "task": "deploy",
    "payload": "{\"name\":\"shop\",\"notify\":{\"room\":\"ops\",\"user_name\":\"amy\",\"adapter\":\"slack\"}}",
    "environment": "staging",
    "description": "Deploying main",
    "creator": {"login": "amy"}
  },
  "repository": {"name": "shop", "full_name": "octo/shop",
                 "html_url": "https://github.com/octo/shop",
                 "clone_url": "file:///tmp/shop.git"},
  "sender": {"login": "heaven-bot"}
})json";

/// Captures spdlog's output (every level) while it lives.
struct log_capture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink
    = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  log_capture() {
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }

  ~log_capture() {
    heaven::test::restore_logger(previous);
  }

  /// Everything logged so far, one line each.
  std::string text() const {
    std::string all;
    for (auto& line : sink->last_formatted())
      all += line;
    return all;
  }
};

std::string header(const http_response& res, const std::string& name) {
  for (auto& [k, v] : res.headers)
    if (k == name)
      return v;
  return {};
}

/// A running server with fake actors and a real log book.
struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::string dir = make_temp_dir();
  std::shared_ptr<log_book> logs = std::make_shared<log_book>(
    dir + "/logs", std::vector<std::string>{});
  std::shared_ptr<record> rec = std::make_shared<record>();
  receiver_actor receiver = sys.spawn(fake_receiver, rec);
  store_actor store = sys.spawn(fake_store, rec);
  std::unique_ptr<ingress_server> srv;
  std::string base;

  fixture() {
    start(options());
  }

  ingress_options options() {
    ingress_options opts;
    opts.listen = "127.0.0.1:0";
    opts.secret = secret;
    opts.max_body = 64 * 1024;
    opts.logs = logs;
    opts.log_key = log_key;
    opts.api_token = api_token;
    return opts;
  }

  void start(ingress_options opts) {
    if (srv)
      srv->stop();
    srv = start_ingress(sys, std::move(opts), receiver, store);
    base = "http://127.0.0.1:" + std::to_string(srv->port());
  }

  ~fixture() {
    srv->stop();
    srv.reset();
    caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  http_response post_event(const std::string& type, const std::string& body,
                           const std::string& delivery = "d-1") {
    return http_call(
      "POST", base + "/events",
      {{"X-GitHub-Event", type},
       {"X-GitHub-Delivery", delivery},
       {"X-Hub-Signature-256", "sha256=" + hmac_sha256_hex(secret, body)},
       {"Content-Type", "application/json"}},
      body, 20000);
  }
};

/// Sends raw bytes on a fresh connection and reads until the server closes
/// it (or `until` appears, when given). Gives up after 10 s.
struct raw_client {
  int fd = -1;

  explicit raw_client(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect failed");
  }

  ~raw_client() {
    ::close(fd);
  }

  void send(const std::string& data) {
    BOOST_REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
                  == static_cast<ssize_t>(data.size()));
  }

  std::string read(const std::string& until = "") {
    std::string got;
    char buf[4096];
    for (;;) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        return got;
      got.append(buf, static_cast<std::size_t>(n));
      if (!until.empty() && got.find(until) != std::string::npos)
        return got;
    }
  }
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + 1))
    ++n;
  return n;
}

} // namespace

BOOST_AUTO_TEST_SUITE(http_ingress)

BOOST_FIXTURE_TEST_CASE(signed_deployment_reaches_the_receiver, fixture) {
  auto res = post_event("deployment", deployment_body, "delivery-77");
  BOOST_TEST(res.status == 201, res.error);
  BOOST_TEST(res.body == "{}");
  BOOST_TEST(header(res, "content-type") == "application/json");
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  auto& ev = events[0];
  BOOST_TEST(ev.delivery == "delivery-77");
  BOOST_TEST(to_string(ev.type) == "deployment");
  BOOST_TEST(ev.body == deployment_body);
  auto& d = ev.deployment;
  BOOST_TEST(d.github_id == 4242);
  BOOST_TEST(d.repo == "octo/shop");
  BOOST_TEST(d.clone_url == "file:///tmp/shop.git");
  BOOST_TEST(d.sha == "a10867b14bb761a232cd80139fbd4c0d33264240");
  BOOST_TEST(d.ref == "main");
  BOOST_TEST(d.environment == "staging");
  BOOST_TEST(d.task == "deploy");
  BOOST_TEST(d.description == "Deploying main");
  BOOST_TEST(d.actor == "amy");
  BOOST_TEST(d.app == "shop");
  BOOST_TEST(d.provider == "shell");
  BOOST_TEST(d.environment_url == "https://staging.shop");
  BOOST_TEST(d.payload_json.find(R"("deploy_script": "run.sh")")
             != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(events_beyond_the_backlog_get_503_and_retry_after,
                        fixture) {
  log_capture logged;
  auto opts = options();
  opts.max_pending_events = 2;
  start(opts);
  rec->hold = true;
  // Two events wait for their answer (a store still committing)...
  std::vector<http_response> waited(2);
  std::vector<std::thread> senders;
  for (int i = 0; i < 2; ++i)
    senders.emplace_back([&, i] {
      waited[i] = post_event("ping", R"({"zen":"Half measures."})",
                             "w-" + std::to_string(i));
    });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rec->held_now() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  BOOST_REQUIRE_EQUAL(rec->held_now(), 2u);
  // ... so a third is refused at once, and never reaches the receiver.
  auto refused = post_event("ping", R"({"zen":"Half measures."})", "w-2");
  BOOST_TEST(refused.status == 503);
  BOOST_TEST(header(refused, "retry-after") == "1");
  BOOST_TEST(refused.body
               == R"({"error":"heaven is busy: 2 events are waiting to be )"
                  R"(stored; retry later"})",
             refused.body);
  BOOST_TEST(rec->seen().size() == 2u);
  // A deployment is refused the same way: nothing is said to be accepted.
  BOOST_TEST(post_event("deployment", deployment_body, "w-3").status == 503);
  BOOST_TEST(rec->seen().size() == 2u);
  // Their answers come, and the backlog empties.
  caf::anon_send(receiver, pending_atom::value);
  for (auto& t : senders)
    t.join();
  for (auto& res : waited)
    BOOST_TEST(res.status == 201, res.error);
  auto again = post_event("ping", R"({"zen":"Half measures."})", "w-2");
  BOOST_TEST(again.status == 201, again.error);
  BOOST_TEST(rec->seen().size() == 3u);
  auto text = logged.text();
  BOOST_TEST(text.find("ingress refused 1 event(s) with 503: 2 are waiting "
                       "to be stored (HEAVEN_MAX_PENDING_EVENTS=2)")
               != std::string::npos,
             text);
}

BOOST_FIXTURE_TEST_CASE(receiver_status_and_body_are_passed_on, fixture) {
  rec->reply = event_receipt{receipt_kind::redelivery, 0, {}, {}};
  auto res = post_event("ping", R"({"zen":"Design for failure."})");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == R"({"status":"duplicate"})");
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(to_string(events[0].type) == "ping");
  BOOST_TEST(events[0].body == R"({"zen":"Design for failure."})");
  res = post_event("status", status_body, "d-2");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == R"({"status":"duplicate"})");
  res = post_event("deployment_status", deployment_status_body, "d-3");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == R"({"status":"duplicate"})");
  BOOST_TEST(rec->seen().size() == 3u);
}

BOOST_FIXTURE_TEST_CASE(bad_or_missing_signature_is_401, fixture) {
  const std::string body = R"({"zen":"x"})";
  auto call = [&](string_pairs extra) {
    string_pairs headers{{"X-GitHub-Event", "ping"},
                         {"X-GitHub-Delivery", "d-1"}};
    headers.insert(headers.end(), extra.begin(), extra.end());
    return http_call("POST", base + "/events", headers, body, 20000);
  };
  for (auto& sig :
       {std::string{"sha256=" + hmac_sha256_hex("other secret", body)},
        std::string{"sha256=" + hmac_sha256_hex(secret, body + " ")},
        std::string{"sha1=abcdef"}, std::string{"garbage"}}) {
    auto res = call({{"X-Hub-Signature-256", sig}});
    BOOST_TEST(res.status == 401);
    BOOST_TEST(res.body == R"({"error":"invalid signature"})");
  }
  auto res = call({});
  BOOST_TEST(res.status == 401);
  BOOST_TEST(res.body == R"({"error":"invalid signature"})");
  BOOST_TEST(rec->seen().empty());
}

BOOST_FIXTURE_TEST_CASE(broken_json_is_400, fixture) {
  auto res = post_event("deployment", R"({"deployment": {"id": 1,)");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body.find(R"({"error":"malformed JSON: )") == 0, res.body);
  res = post_event("status", "[1, 2");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body.find("malformed JSON") != std::string::npos);
  res = post_event("ping", "[1, 2]");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body == R"({"error":"not a JSON object"})");
  res = post_event("deployment",
                   R"({"deployment":{"id":1,"ref":"m","environment":"e"},)"
                   R"("repository":{"full_name":"o/r","clone_url":"x"}})");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body == R"({"error":"missing field deployment.sha"})");
  BOOST_TEST(rec->seen().empty());
}

BOOST_FIXTURE_TEST_CASE(names_past_their_limits_never_reach_the_receiver,
                        fixture) {
  auto replace = [](std::string body, const std::string& from,
                    const std::string& to) {
    auto pos = body.find(from);
    BOOST_REQUIRE(pos != std::string::npos);
    return body.replace(pos, from.size(), to);
  };
  // JSON's \u0000 is a NUL inside the name: refused, not cut to "prod".
  auto res = post_event("deployment",
                        replace(deployment_body, R"("environment": "staging")",
                                R"("environment": "prod\u0000uction")"),
                        "l-1");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"deployment.environment contains a control )"
                R"(character"})");
  res = post_event(
    "deployment",
    replace(deployment_body, R"("environment": "staging")",
            R"("environment": ")" + std::string(256, 'p') + "\""),
    "l-2");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"deployment.environment is longer than 255 )"
                R"(characters"})");
  // A ping's repository is recorded like any other event's.
  res = post_event(
    "ping", R"({"zen":"z","repository":{"full_name":"octo/\u001b"}})", "l-3");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"repository.full_name contains a control )"
                R"(character"})");
  // GitHub's delivery ids are GUIDs; heaven stores them.
  res = post_event("deployment", deployment_body, std::string(256, 'd'));
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"header X-GitHub-Delivery is longer than 255 )"
                R"(characters"})");
  BOOST_TEST(rec->seen().empty());
  // The same event, sound, does reach it.
  BOOST_TEST(post_event("deployment", deployment_body, "l-4").status == 201);
  BOOST_TEST(rec->seen().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(missing_headers_are_400, fixture) {
  const std::string body = R"({"zen":"x"})";
  const std::string sig = "sha256=" + hmac_sha256_hex(secret, body);
  auto res = http_call(
    "POST", base + "/events",
    {{"X-GitHub-Delivery", "d-1"}, {"X-Hub-Signature-256", sig}}, body, 20000);
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body == R"({"error":"missing header X-GitHub-Event"})");
  res = http_call("POST", base + "/events",
                  {{"X-GitHub-Event", "ping"}, {"X-Hub-Signature-256", sig}},
                  body, 20000);
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body == R"({"error":"missing header X-GitHub-Delivery"})");
  BOOST_TEST(rec->seen().empty());
}

BOOST_FIXTURE_TEST_CASE(unknown_event_is_422, fixture) {
  auto res = post_event("push", R"({"ref":"refs/heads/main"})");
  BOOST_TEST(res.status == 422);
  BOOST_TEST(res.body == R"({"error":"unsupported event push"})");
  BOOST_TEST(rec->seen().empty());
}

BOOST_FIXTURE_TEST_CASE(body_over_the_limit_is_413, fixture) {
  std::string big = R"({"zen":")" + std::string(100 * 1024, 'x') + R"("})";
  auto res = post_event("ping", big);
  BOOST_TEST(res.status == 413, res.error);
  BOOST_TEST(res.body == R"({"error":"body too large"})");
  BOOST_TEST(rec->seen().empty());
  // The server is fine afterwards.
  BOOST_TEST(http_call("GET", base + "/healthz").status == 200);
}

BOOST_FIXTURE_TEST_CASE(healthz_says_what_is_wrong_and_when_heaven_stops,
                        fixture) {
  auto health = std::make_shared<health_board>();
  auto opts = options();
  opts.health = health;
  start(opts);
  auto res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == R"({"problems":[],"status":"ok"})");
  health->fail("store", "cannot write: database or disk is full");
  res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 503);
  auto body = nlohmann::json::parse(res.body);
  BOOST_TEST(body.at("status") == "degraded");
  BOOST_REQUIRE(body.at("problems").size() == 1u);
  auto problem = body.at("problems")[0].get<std::string>();
  BOOST_TEST(problem.rfind("store: cannot write: database or disk is full "
                           "(since 20",
                           0)
               == 0u,
             problem);
  BOOST_TEST(health->recover("store"));
  BOOST_TEST(http_call("GET", base + "/healthz").status == 200);
  health->set_draining();
  res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 503);
  BOOST_TEST(res.body == R"({"problems":[],"status":"draining"})");
}

BOOST_FIXTURE_TEST_CASE(healthz_reports_the_database_and_whether_it_is_reached,
                        fixture) {
  auto health = std::make_shared<health_board>();
  health->set_database("postgresql");
  auto opts = options();
  opts.health = health;
  start(opts);
  auto res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body
             == R"({"database":{"kind":"postgresql","reachable":)"
                R"(true},"problems":[],"status":"ok"})");
  health->fail("database", "the database is unreachable: connection refused");
  res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 503);
  auto body = nlohmann::json::parse(res.body);
  BOOST_TEST(body.at("status") == "degraded");
  BOOST_TEST(body.at("database").at("kind") == "postgresql");
  BOOST_TEST(body.at("database").at("reachable") == false);
  BOOST_REQUIRE(body.at("problems").size() == 1u);
  BOOST_TEST(body.at("problems")[0].get<std::string>().rfind(
               "database: the database is unreachable: connection refused "
               "(since 20",
               0)
             == 0u);
  BOOST_TEST(health->recover("database"));
  res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body
             == R"({"database":{"kind":"postgresql","reachable":)"
                R"(true},"problems":[],"status":"ok"})");
}

BOOST_FIXTURE_TEST_CASE(healthz_and_unknown_routes, fixture) {
  auto res = http_call("GET", base + "/healthz");
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == R"({"status":"ok"})");
  BOOST_TEST(header(res, "content-type") == "application/json");
  BOOST_TEST(http_call("POST", base + "/healthz", {}, "{}").status == 405);
  BOOST_TEST(http_call("GET", base + "/events").status == 405);
  BOOST_TEST(http_call("DELETE", base + "/deployments").status == 405);
  BOOST_TEST(http_call("POST", base + "/deployments/3/log", {}, "x").status
             == 405);
  res = http_call("GET", base + "/nothing-here");
  BOOST_TEST(res.status == 404);
  BOOST_TEST(res.body == R"({"error":"not found"})");
  BOOST_TEST(http_call("GET", base + "/deployments/abc/log").status == 404);
}

BOOST_FIXTURE_TEST_CASE(deployments_come_from_the_store, fixture) {
  auto res = http_call("GET", base + "/deployments", with_token);
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body
             == R"([{"actor":"","app":"","created_at":"","description":"",)"
                R"("environment":"","finished_at":null,"github_id":0,"id":1,)"
                R"("provider":"","ref":"","repo":"","sha":"",)"
                R"("state":"success","task":"","updated_at":""}])");
  BOOST_TEST(header(res, "content-type") == "application/json");
  BOOST_TEST(http_call("GET", base + "/deployments?limit=3", with_token).status
             == 200);
  BOOST_TEST(
    http_call("GET", base + "/deployments?limit=100000", with_token).status
    == 200);
  BOOST_TEST(
    http_call("GET", base + "/deployments?limit=abc", with_token).status
    == 400);
  BOOST_TEST(http_call("GET", base + "/deployments?limit=0", with_token).status
             == 400);
  std::lock_guard<std::mutex> guard{rec->mtx};
  BOOST_TEST(rec->limits == (std::vector<int32_t>{50, 3, 500}),
             boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(deployments_need_credentials, fixture) {
  // Without the token, or with another: 401, a bearer challenge, no data,
  // and the store is not asked.
  for (auto headers :
       {string_pairs{}, string_pairs{{"Authorization", "Bearer wrong"}},
        string_pairs{{"Authorization", api_token}},
        string_pairs{{"Cookie", "heaven_session=" + api_token}}}) {
    auto res = http_call("GET", base + "/deployments?limit=3", headers);
    BOOST_TEST(res.status == 401);
    BOOST_TEST(res.body == R"({"error":"unauthorized"})");
    BOOST_TEST(header(res, "www-authenticate") == R"(Bearer realm="heaven")");
  }
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    BOOST_TEST(rec->limits.empty());
  }
  // With neither a token nor sign-in, the read side is off.
  auto opts = options();
  opts.api_token = "";
  start(opts);
  for (auto path : {"/deployments", "/locks"}) {
    auto res = http_call("GET", base + path, with_token);
    BOOST_TEST(res.status == 404, path);
    BOOST_TEST(res.body == R"({"error":"not found"})");
    BOOST_TEST(header(res, "www-authenticate") == "");
  }
  // The locks link still opens them.
  BOOST_TEST(
    http_call("GET", base + "/locks?token=" + locks_token(log_key)).status
    == 200);
  std::lock_guard<std::mutex> guard{rec->mtx};
  BOOST_TEST(rec->limits.empty());
  BOOST_TEST(rec->locks_asked == 1);
}

BOOST_FIXTURE_TEST_CASE(log_needs_the_right_token, fixture) {
  logs->open(12);
  logs->append(12, stream::heaven, "Running deploy/run.sh");
  logs->append(12, stream::out, "done");
  logs->close(12);
  auto url = base + "/deployments/12/log";
  BOOST_TEST(http_call("GET", url).status == 404);
  BOOST_TEST(http_call("GET", url + "?token=").status == 404);
  BOOST_TEST(http_call("GET", url + "?token=" + log_token(log_key, 13)).status
             == 404);
  BOOST_TEST(http_call("GET", url + "?token=" + log_token("other", 12)).status
             == 404);
  auto res = http_call("GET", url + "?token=" + log_token(log_key, 12));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "heaven: Running deploy/run.sh\ndone\n");
  BOOST_TEST(header(res, "content-type") == "text/plain; charset=utf-8");
  BOOST_TEST(header(res, "transfer-encoding") == "chunked");
  // A right token for a log that does not exist.
  res = http_call("GET",
                  base + "/deployments/99/log?token=" + log_token(log_key, 99));
  BOOST_TEST(res.status == 404);
}

/// Deployment `id` as the store has it when the rules ended it at intake
/// (refused): ended, never started.
deployment_detail refused_at_intake(int64_t id) {
  deployment_detail d;
  d.found = true;
  d.row.id = id;
  d.row.state = deploy_state::error;
  d.row.description = "Already deploying.";
  d.row.created_at = d.row.updated_at = d.row.finished_at
    = "2026-12-06T03:29:52.123Z";
  return d;
}

BOOST_FIXTURE_TEST_CASE(a_deployment_ended_before_it_started_has_one_line,
                        fixture) {
  auto url = [&](int64_t id, const std::string& rest = "") {
    return base + "/deployments/" + std::to_string(id)
           + "/log?token=" + log_token(log_key, id) + rest;
  };
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    rec->details[31] = refused_at_intake(31);
    auto ran = refused_at_intake(32);
    ran.started_at = "2026-12-06T03:29:52.200Z";
    rec->details[32] = ran;
    auto waiting = refused_at_intake(33);
    waiting.row.state = deploy_state::queued;
    waiting.row.finished_at.clear();
    rec->details[33] = waiting;
  }
  // No file: the line its file would have held, framed as any log.
  BOOST_REQUIRE(!std::filesystem::exists(logs->path(31)));
  auto res = http_call("GET", url(31));
  BOOST_TEST(res.status == 200, res.error);
  BOOST_TEST(res.body == "heaven: error: Already deploying.\n");
  BOOST_TEST(header(res, "content-type") == "text/plain; charset=utf-8");
  BOOST_TEST(header(res, "transfer-encoding") == "chunked");
  BOOST_TEST(header(res, "cache-control") == "no-cache");
  // From an offset (the page's follower), and past the end.
  BOOST_TEST(http_call("GET", url(31, "&from=8")).body
             == "error: Already deploying.\n");
  res = http_call("GET", url(31, "&from=500"));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "");
  // Reading it makes no file.
  BOOST_TEST(!std::filesystem::exists(logs->path(31)));
  BOOST_TEST(!std::filesystem::exists(logs->times_path(31)));
  // One that started, one not ended, one unknown: no line is made up.
  for (int64_t id : {32, 33, 34}) {
    res = http_call("GET", url(id));
    BOOST_TEST(res.status == 404, "deployment " << id);
    BOOST_TEST(res.body == R"({"error":"not found"})");
  }
  // A file, when there is one, is the log.
  logs->open(31);
  logs->append(31, stream::heaven, "from the file");
  logs->close(31);
  BOOST_TEST(http_call("GET", url(31)).body == "heaven: from the file\n");
  // Several answers on one connection (keep-alive) stay in order.
  raw_client client{srv->port()};
  auto get = [&](int64_t id) {
    return "GET /deployments/" + std::to_string(id) + "/log?token="
           + log_token(log_key, id) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  };
  client.send(get(34) + get(32) + get(31)
              + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: "
                "close\r\n\r\n");
  auto text = client.read();
  auto first = text.find("404 Not Found");
  auto second = text.find("404 Not Found", first + 1);
  auto ok = text.find("200 OK");
  BOOST_TEST(first != std::string::npos, text);
  BOOST_TEST(second != std::string::npos, text);
  BOOST_TEST((ok != std::string::npos && ok > second), text);
  BOOST_TEST(text.find("heaven: from the file\n") != std::string::npos, text);
}

BOOST_FIXTURE_TEST_CASE(shared_logs_without_a_byte_have_the_line_too, fixture) {
  // Several instances: the logs are read from the store.
  logs->ship_to([](log_shipment) {});
  start(options());
  log_piece none;
  none.ended = true; // ended, nothing stored
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    rec->details[41] = refused_at_intake(41);
    rec->pieces[41] = none;
    auto ran = refused_at_intake(42);
    ran.started_at = "2026-12-06T03:29:52.200Z";
    rec->details[42] = ran;
    rec->pieces[42] = none;
    log_piece stored;
    stored.found = stored.ended = true;
    stored.bytes = "heaven: shipped\n";
    stored.size = 16;
    rec->details[43] = refused_at_intake(43);
    rec->pieces[43] = stored;
  }
  auto get = [&](int64_t id, const std::string& rest = "") {
    return http_call("GET", base + "/deployments/" + std::to_string(id)
                              + "/log?token=" + log_token(log_key, id) + rest);
  };
  auto res = get(41);
  BOOST_TEST(res.status == 200, res.error);
  BOOST_TEST(res.body == "heaven: error: Already deploying.\n");
  BOOST_TEST(header(res, "transfer-encoding") == "chunked");
  BOOST_TEST(get(41, "&from=15").body == "Already deploying.\n");
  // Started and ended with nothing stored: nothing is made up.
  res = get(42);
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "");
  // What is stored is the log.
  BOOST_TEST(get(43).body == "heaven: shipped\n");
}

BOOST_FIXTURE_TEST_CASE(live_log_is_followed_until_closed, fixture) {
  logs->open(21);
  logs->append(21, stream::heaven, "first");
  std::string expected = "heaven: first\n";
  for (int i = 0; i < 5; ++i)
    expected += "line " + std::to_string(i) + "\n";
  expected += std::string(100 * 1024, 'z') + "\n";
  std::thread writer{[this] {
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      logs->append(21, stream::out, "line " + std::to_string(i));
    }
    // Larger than one chunk read.
    logs->append(21, stream::out, std::string(100 * 1024, 'z'));
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    logs->close(21);
  }};
  auto res = http_call(
    "GET", base + "/deployments/21/log?token=" + log_token(log_key, 21), {}, "",
    20000);
  writer.join();
  BOOST_TEST(res.status == 200, res.error);
  BOOST_TEST(res.body.size() == expected.size());
  BOOST_TEST((res.body == expected));
}

BOOST_FIXTURE_TEST_CASE(form_encoded_deliveries_are_understood, fixture) {
  // GitHub's other content type: payload=<url-encoded JSON>, signed as sent.
  std::string form = "payload=";
  for (unsigned char c : deployment_body) {
    if (std::isalnum(c)) {
      form += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      form += buf;
    }
  }
  auto res = http_call(
    "POST", base + "/events",
    {{"X-GitHub-Event", "deployment"},
     {"X-GitHub-Delivery", "d-form"},
     {"X-Hub-Signature-256", "sha256=" + hmac_sha256_hex(secret, form)},
     {"Content-Type", "application/x-www-form-urlencoded"}},
    form, 20000);
  BOOST_TEST(res.status == 201, res.body);
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(events[0].body == deployment_body);
  BOOST_TEST(events[0].deployment.github_id == 4242);
  // Signed over the JSON instead of the form body as sent: refused.
  auto forged = http_call(
    "POST", base + "/events",
    {{"X-GitHub-Event", "deployment"},
     {"X-GitHub-Delivery", "d-form-2"},
     {"X-Hub-Signature-256",
      "sha256=" + hmac_sha256_hex(secret, deployment_body)},
     {"Content-Type", "application/x-www-form-urlencoded"}},
    form, 20000);
  BOOST_TEST(forged.status == 401);
}

BOOST_FIXTURE_TEST_CASE(live_log_lines_arrive_before_the_log_ends, fixture) {
  // A server that buffered the log until it closed would fail here: the
  // next line is written only once the reader has seen the first.
  logs->open(22);
  logs->append(22, stream::out, "step one");
  raw_client client{srv->port()};
  client.send("GET /deployments/22/log?token=" + log_token(log_key, 22)
              + " HTTP/1.1\r\nHost: x\r\n\r\n");
  auto first = client.read("step one");
  BOOST_TEST(first.find("step one") != std::string::npos, first);
  BOOST_TEST(first.find("step two") == std::string::npos);
  BOOST_TEST(logs->live(22));
  logs->append(22, stream::out, "step two");
  auto second = client.read("step two");
  BOOST_TEST(second.find("step two") != std::string::npos, second);
  logs->close(22);
  // The chunked body ends once the log is closed.
  auto rest = client.read("\r\n0\r\n\r\n");
  BOOST_TEST(rest.find("0\r\n\r\n") != std::string::npos, rest);
}

BOOST_FIXTURE_TEST_CASE(dead_receiver_is_503, fixture) {
  caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
  auto res = post_event("ping", R"({"zen":"x"})");
  BOOST_TEST(res.status == 503);
  BOOST_TEST(res.body.find(R"({"error":"receiver unavailable)") == 0, res.body);
}

BOOST_FIXTURE_TEST_CASE(an_event_left_unanswered_is_503_at_its_deadline,
                        fixture) {
  auto opts = options();
  opts.event_deadline = std::chrono::milliseconds(300);
  opts.max_pending_events = 1;
  start(opts);
  rec->hold = true;
  auto body = std::string{R"({"zen":"Keep it logically awesome."})"};
  auto request = [&](const std::string& delivery) {
    return "POST /events HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
           "X-GitHub-Delivery: "
           + delivery
           + "\r\nX-Hub-Signature-256: sha256=" + hmac_sha256_hex(secret, body)
           + "\r\nContent-Type: application/json\r\nContent-Length: "
           + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  raw_client client{srv->port()};
  client.send(request("late-1"));
  // The receiver holds it (a store that does not answer): 503 once the
  // deadline passes, on a connection that stays open.
  auto first = client.read("ms\"}");
  BOOST_TEST(first.find("HTTP/1.1 503 Service Unavailable\r\n") == 0, first);
  BOOST_TEST(first.find(R"({"error":"receiver unavailable: no answer within )"
                        R"(300 ms"})")
               != std::string::npos,
             first);
  BOOST_TEST(rec->held_now() == 1u);
  // It still counts as waiting to be stored until its answer comes: the
  // next event finds the backlog full.
  client.send(request("late-2"));
  auto busy = client.read("retry later\"}");
  BOOST_TEST(busy.find("HTTP/1.1 503 Service Unavailable\r\n") == 0, busy);
  BOOST_TEST(busy.find("heaven is busy: 1 events") != std::string::npos, busy);
  // The late answer frees the backlog and is not sent: the next request on
  // this connection gets its own answer, 201.
  caf::anon_send(receiver, pending_atom::value);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string third;
  while (std::chrono::steady_clock::now() < deadline) {
    client.send(request("late-3"));
    third = client.read("}");
    if (third.find("heaven is busy") == std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(third.find("HTTP/1.1 201 Created\r\n") == 0, third);
  auto seen = rec->seen();
  BOOST_REQUIRE_EQUAL(seen.size(), 2u);
  BOOST_TEST(seen[0].delivery == "late-1");
  BOOST_TEST(seen[1].delivery == "late-3");
}

BOOST_FIXTURE_TEST_CASE(insecure_mode_without_secret_skips_signatures,
                        fixture) {
  auto opts = options();
  opts.secret.clear();
  opts.insecure = true;
  start(opts);
  auto res = http_call("POST", base + "/events",
                       {{"X-GitHub-Event", "ping"},
                        {"X-GitHub-Delivery", "d-9"}},
                       R"({"zen":"x"})", 20000);
  BOOST_TEST(res.status == 201);
  BOOST_TEST(rec->seen().size() == 1u);
  // Without `insecure`, an empty secret accepts nothing.
  opts.insecure = false;
  start(opts);
  res = http_call("POST", base + "/events",
                  {{"X-GitHub-Event", "ping"}, {"X-GitHub-Delivery", "d-10"}},
                  R"({"zen":"x"})", 20000);
  BOOST_TEST(res.status == 401);
  BOOST_TEST(rec->seen().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(keep_alive_serves_several_requests, fixture) {
  raw_client c{srv->port()};
  c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
         "GET /deployments?limit=2 HTTP/1.1\r\nHost: x\r\n"
         "Authorization: Bearer "
         + api_token
         + "\r\n\r\n"
           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto got = c.read();
  BOOST_TEST(count(got, "HTTP/1.1 200 OK\r\n") == 3u, got);
  BOOST_TEST(count(got, R"({"status":"ok"})") == 2u);
}

BOOST_FIXTURE_TEST_CASE(expect_100_continue_is_honoured, fixture) {
  const std::string body = R"({"zen":"x"})";
  raw_client c{srv->port()};
  c.send("POST /events HTTP/1.1\r\nHost: x\r\n"
         "X-GitHub-Event: ping\r\nX-GitHub-Delivery: d-5\r\n"
         "X-Hub-Signature-256: sha256="
         + hmac_sha256_hex(secret, body)
         + "\r\nContent-Length: " + std::to_string(body.size())
         + "\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
  auto interim = c.read("\r\n\r\n");
  BOOST_TEST(interim.find("HTTP/1.1 100 Continue\r\n") == 0, interim);
  c.send(body);
  auto got = c.read();
  BOOST_TEST(got.find("HTTP/1.1 201 Created\r\n") == 0, got);
  BOOST_TEST(rec->seen().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(unusable_listen_address_throws, fixture) {
  auto opts = options();
  opts.listen = "127.0.0.1:" + std::to_string(srv->port());
  BOOST_CHECK_THROW(start_ingress(sys, opts, receiver, store),
                    std::runtime_error);
  opts.listen = "no-port-here";
  BOOST_CHECK_THROW(start_ingress(sys, opts, receiver, store),
                    std::runtime_error);
  opts.listen = "127.0.0.1:99999";
  BOOST_CHECK_THROW(start_ingress(sys, opts, receiver, store),
                    std::runtime_error);
}

BOOST_FIXTURE_TEST_CASE(stop_is_idempotent_and_closes_the_port, fixture) {
  auto port = srv->port();
  srv->stop();
  srv->stop();
  auto res = http_call("GET",
                       "http://127.0.0.1:" + std::to_string(port) + "/healthz",
                       {}, "", 5000);
  BOOST_TEST(res.status == 0);
}

BOOST_FIXTURE_TEST_CASE(status_event_reaches_the_receiver_parsed, fixture) {
  auto res = post_event("status", status_body, "delivery-s1");
  BOOST_TEST(res.status == 201, res.error);
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  auto& ev = events[0];
  BOOST_TEST(ev.delivery == "delivery-s1");
  BOOST_TEST(to_string(ev.type) == "status");
  BOOST_TEST(ev.body == status_body);
  BOOST_TEST(ev.repo == "octo/shop");
  auto& s = ev.status;
  BOOST_TEST(s.repo == "octo/shop");
  BOOST_TEST(s.sha == "4544205a385319fd846d5df4ed2e3b8173529d78");
  BOOST_TEST(s.state == "success");
  BOOST_TEST(s.default_branch == "main");
  BOOST_TEST(s.branches == std::vector<std::string>{"main"},
             boost::test_tools::per_element());
  BOOST_TEST(s.author == "ci-bot"); // commit.author is null
  // Nothing of the other event kinds is filled in.
  BOOST_TEST(ev.deployment.github_id == 0);
  BOOST_TEST(ev.notice.repo == "");
}

BOOST_FIXTURE_TEST_CASE(deployment_status_event_reaches_the_receiver_parsed,
                        fixture) {
  auto res = post_event("deployment_status", deployment_status_body,
                        "delivery-ds1");
  BOOST_TEST(res.status == 201, res.error);
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  auto& ev = events[0];
  BOOST_TEST(ev.delivery == "delivery-ds1");
  BOOST_TEST(to_string(ev.type) == "deployment_status");
  BOOST_TEST(ev.body == deployment_status_body);
  BOOST_TEST(ev.repo == "octo/shop");
  auto& n = ev.notice;
  BOOST_TEST(n.repo == "octo/shop");
  BOOST_TEST(n.app == "shop");
  BOOST_TEST(n.repo_url == "https://github.com/octo/shop");
  BOOST_TEST(n.deployment_id == 4242);
  BOOST_TEST(n.status_id == 344110148);
  BOOST_TEST(n.state == "failure");
  BOOST_TEST(n.description
             == "\xc3\xa9"
                "chec: script/deploy exited with 1 \xe2\x9c\x97");
  BOOST_TEST(n.log_url
             == "https://heaven.example.com/deployments/5/log?token=abc");
  BOOST_TEST(n.environment_url == "https://staging.shop");
  BOOST_TEST(n.environment == "staging");
  BOOST_TEST(n.task == "deploy");
  BOOST_TEST(n.ref == "main");
  BOOST_TEST(n.sha == "a10867b14bb761a232cd80139fbd4c0d33264240");
  BOOST_TEST(n.deployment_description == "Deploying main");
  BOOST_TEST(n.creator == "amy");
  BOOST_TEST(n.chat_user == "amy");
  BOOST_TEST(n.room == "ops");
  BOOST_TEST(!n.changes.present);
  BOOST_TEST(ev.status.sha == "");
  BOOST_TEST(ev.deployment.github_id == 0);
}

BOOST_FIXTURE_TEST_CASE(every_event_names_its_repository, fixture) {
  BOOST_TEST(post_event("deployment", deployment_body, "r-1").status == 201);
  const std::string repo_ping
    = R"({"zen":"Design for failure.","hook_id":30,)"
      R"("repository":{"name":"shop","full_name":"octo/shop"}})";
  BOOST_TEST(post_event("ping", repo_ping, "r-2").status == 201);
  const std::string org_ping = R"({"zen":"Keep it logically awesome.",)"
                               R"("hook_id":31,"organization":{"login":"o"}})";
  BOOST_TEST(post_event("ping", org_ping, "r-3").status == 201);
  auto events = rec->seen();
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  BOOST_TEST(events[0].repo == "octo/shop");
  BOOST_TEST(events[1].repo == "octo/shop");
  BOOST_TEST(events[1].body == repo_ping);
  BOOST_TEST(events[2].repo == "");
  BOOST_TEST(to_string(events[2].type) == "ping");
}

BOOST_FIXTURE_TEST_CASE(malformed_status_events_are_400, fixture) {
  auto replace = [](std::string body, const std::string& from,
                    const std::string& to) {
    auto pos = body.find(from);
    BOOST_REQUIRE(pos != std::string::npos);
    return body.replace(pos, from.size(), to);
  };
  auto res = post_event("status",
                        replace(status_body, R"("default_branch": "main")",
                                R"("default_branch": null)"));
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"missing field repository.default_branch"})");
  res = post_event("status", replace(status_body, R"("state": "success")",
                                     R"("state": true)"));
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body == R"({"error":"field state must be a string"})");
  res = post_event("deployment_status",
                   replace(deployment_status_body, R"("id": 4242)",
                           R"("id": "4242")"));
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"field deployment.id must be an integer"})");
  res = post_event("deployment_status", replace(deployment_status_body,
                                                R"("state": "failure",)", ""));
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body
             == R"({"error":"missing field deployment_status.state"})");
  res = post_event("deployment_status", R"({"deployment_status":)");
  BOOST_TEST(res.status == 400);
  BOOST_TEST(res.body.find(R"({"error":"malformed JSON: )") == 0, res.body);
  BOOST_TEST(rec->seen().empty());
}

BOOST_FIXTURE_TEST_CASE(locks_need_the_right_token, fixture) {
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    rec->locks = {
      env_lock{"octo/shop", "production", "amy", "incident #42: db migration",
               "2024-03-01T10:00:00Z", 17},
      env_lock{"octo/\xc3\xa9t\xc3\xa9", "staging", "bob", "",
               "2024-03-02T08:30:00Z", 0},
    };
  }
  const std::string token = locks_token(log_key);
  auto res = http_call("GET", base + "/locks?token=" + token);
  BOOST_TEST(res.status == 200, res.error);
  BOOST_TEST(header(res, "content-type") == "application/json");
  BOOST_TEST(res.body
             == R"([{"repo":"octo/shop","environment":"production",)"
                R"("actor":"amy","reason":"incident #42: db migration",)"
                R"("locked_at":"2024-03-01T10:00:00Z","deployment_id":17},)"
                R"({"repo":"octo/)"
                "\xc3\xa9t\xc3\xa9"
                R"(","environment":"staging",)"
                R"("actor":"bob","reason":"",)"
                R"("locked_at":"2024-03-02T08:30:00Z","deployment_id":0}])");
  // With other query parameters around it.
  res = http_call("GET", base + "/locks?x=1&token=" + token + "&y=2");
  BOOST_TEST(res.status == 200);
  // Missing, empty, wrong or another key's token: no link, so without the
  // API token 401 and no data; with it, the locks.
  for (auto query :
       {std::string{}, std::string{"?token="},
        "?token=" + locks_token("other key"), "?token=" + log_token(log_key, 1),
        "?token=" + token.substr(0, token.size() - 1), "?token=" + token + "0",
        "?Token=" + token}) {
    res = http_call("GET", base + "/locks" + query);
    BOOST_TEST(res.status == 401, query);
    BOOST_TEST(res.body == R"({"error":"unauthorized"})");
    BOOST_TEST(header(res, "www-authenticate") == R"(Bearer realm="heaven")");
  }
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    BOOST_TEST(rec->locks_asked == 2);
  }
  res = http_call("GET", base + "/locks", with_token);
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body.find(R"("actor":"amy")") != std::string::npos);
  std::lock_guard<std::mutex> guard{rec->mtx};
  BOOST_TEST(rec->locks_asked == 3);
}

BOOST_FIXTURE_TEST_CASE(no_locks_is_an_empty_array, fixture) {
  auto res = http_call("GET", base + "/locks?token=" + locks_token(log_key));
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body == "[]");
}

BOOST_FIXTURE_TEST_CASE(locks_answer_only_get, fixture) {
  const std::string url = base + "/locks?token=" + locks_token(log_key);
  for (auto method : {"POST", "DELETE", "PUT"}) {
    auto res = http_call(method, url, {}, "{}");
    BOOST_TEST(res.status == 405, method);
    BOOST_TEST(header(res, "allow") == "GET");
    BOOST_TEST(res.body == R"({"error":"method not allowed"})");
  }
  std::lock_guard<std::mutex> guard{rec->mtx};
  BOOST_TEST(rec->locks_asked == 0);
}

BOOST_FIXTURE_TEST_CASE(dead_store_makes_locks_503, fixture) {
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  auto res = http_call("GET", base + "/locks?token=" + locks_token(log_key));
  BOOST_TEST(res.status == 503);
  BOOST_TEST(res.body.find(R"({"error":"store unavailable)") == 0, res.body);
}

BOOST_FIXTURE_TEST_CASE(tokens_never_reach_the_log, fixture) {
  log_capture logged;
  const std::string token = locks_token(log_key);
  BOOST_TEST(http_call("GET", base + "/locks?token=" + token).status == 200);
  BOOST_TEST(http_call("GET", base + "/locks?token=wrong-" + token).status
             == 401);
  BOOST_TEST(http_call("POST", base + "/locks?token=" + token, {}, "x").status
             == 405);
  logs->open(3);
  logs->close(3);
  const std::string log_tok = log_token(log_key, 3);
  BOOST_TEST(
    http_call("GET", base + "/deployments/3/log?token=" + log_tok).status
    == 200);
  auto text = logged.text();
  // The requests were logged, by path only.
  BOOST_TEST(count(text, "ingress answered GET /locks with 200") == 1u, text);
  BOOST_TEST(count(text, "ingress answered GET /locks with 401") == 1u, text);
  BOOST_TEST(count(text, "ingress answered POST /locks with 405") == 1u, text);
  BOOST_TEST(count(text, "ingress answered GET /deployments/3/log with 200")
               == 1u,
             text);
  BOOST_TEST(text.find(token) == std::string::npos, text);
  BOOST_TEST(text.find(log_tok) == std::string::npos, text);
  BOOST_TEST(text.find("token") == std::string::npos, text);
}

BOOST_AUTO_TEST_SUITE_END()
