// GET /metrics of the real `heaven serve` after real deployments: the
// bearer token, the metrics listener, the counters against what happened,
// and Debian's `promtool check metrics` on the scrape.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/retry.hpp"
#include "base/text.hpp"
#include "tests/support/scrape.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto api_token = "heaven-api-TOKEN-for-metrics-42";

/// Runs `cmd`, returns its exit status and its output (stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  auto pipe = popen((cmd + " 2>&1").c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0)
    out.append(buf, n);
  auto rc = pclose(pipe);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

/// A port nothing listens on right now.
int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string sh(const std::string& cmd) {
  auto [rc, out] = run(cmd);
  BOOST_REQUIRE_MESSAGE(rc == 0, cmd + "\n" + out);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(metrics_count_what_happened_and_pass_promtool) {
  auto tmp = make_temp_dir("metrics");
  http_stub github;
  // A repository with a script that succeeds and one that fails.
  auto dir = tmp / "app";
  fs::create_directories(dir / "script");
  sh("git -C " + dir.string() + " init -q --initial-branch=main");
  auto script = [&](const std::string& name, const std::string& body) {
    std::ofstream{dir / "script" / name} << "#!/bin/sh\n" << body;
    fs::permissions(dir / "script" / name, fs::perms::owner_all);
  };
  script("deploy", "echo \"api token [$HEAVEN_API_TOKEN]\"\n");
  script("fail", "exit 3\n");
  sh("cd " + dir.string()
     + " && git add -A && git -c user.name=t -c user.email=t@t commit -q -m "
       "first");
  auto sha = sh("git -C " + dir.string() + " rev-parse HEAD");
  auto event = [&](int64_t id, const std::string& s, const std::string& env) {
    return deployment_event(
             {.id = id,
              .sha = sha,
              .clone_url = "file://" + dir.string(),
              .payload = {{"name", "app"},
                          {"config",
                           {{"provider", "shell"}, {"deploy_script", s}}}},
              .environment = env})
      .dump();
  };
  auto metrics_port = std::to_string(unused_port());
  heaven_server h{tmp / "data",
                  github.base_url(),
                  {{"HEAVEN_API_TOKEN", api_token},
                   {"HEAVEN_METRICS_LISTEN", "127.0.0.1:" + metrics_port}}};
  // Two deployments (one fails), a ping, and a ping with a bad signature.
  BOOST_TEST(
    h.post_event("deployment", "m-1", event(71, "script/deploy", "production"))
      .status
    == 201);
  BOOST_TEST(
    h.post_event("deployment", "m-2", event(72, "script/fail", "staging"))
      .status
    == 201);
  BOOST_TEST(h.post_event("ping", "m-3", R"({"zen":"x"})").status == 201);
  auto forged = http_call("POST", h.base() + "/events",
                          {{"X-GitHub-Event", "ping"},
                           {"X-GitHub-Delivery", "m-4"},
                           {"X-Hub-Signature-256", "sha256=00"},
                           {"Content-Type", "application/json"}},
                          R"({"zen":"x"})");
  BOOST_TEST(forged.status == 401);
  auto a = h.wait_finished(id_of(h, 71));
  auto b = h.wait_finished(id_of(h, 72));
  BOOST_TEST(a.at("state") == "success");
  BOOST_TEST(b.at("state") == "failure");
  // Three statuses each, delivered.
  BOOST_REQUIRE(github.wait_for(6));
  BOOST_TEST(h.log(id_of(h, 71)).find("api token []") != std::string::npos);

  auto url = h.base() + "/metrics";
  // No token, a wrong one: 401, asking for a bearer token; no data.
  auto none = http_call("GET", url);
  BOOST_TEST(none.status == 401);
  BOOST_TEST(header_value(none, "www-authenticate")
             == "Bearer realm=\"heaven\"");
  BOOST_TEST(none.body.find("heaven_") == std::string::npos);
  auto wrong = http_call("GET", url,
                         {{"Authorization", "Bearer not-the-token"}});
  BOOST_TEST(wrong.status == 401);
  BOOST_TEST(
    http_call("GET", url, {{"Authorization", std::string{api_token}}}).status
    == 401);
  // The statuses' outbox settles them just after the stand-in answered.
  std::map<std::string, double> m;
  std::string scrape;
  for (int i = 0; i < 200; ++i) {
    auto res = http_call(
      "GET", url, {{"Authorization", "Bearer " + std::string{api_token}}});
    BOOST_REQUIRE_EQUAL(res.status, 200);
    BOOST_TEST(header_value(res, "content-type")
               == "text/plain; version=0.0.4; charset=utf-8");
    scrape = res.body;
    m = samples(scrape);
    if (m[R"(heaven_outbox_messages_total{kind="status",outcome="delivered"})"]
        == 6)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto github_host = github.base_url().substr(std::string{"http://"}.size());
  while (!github_host.empty() && github_host.back() == '/')
    github_host.pop_back();
  std::map<std::string, double> expected = {
    {R"(heaven_webhooks_total{event="deployment",code="201"})", 2},
    {R"(heaven_webhooks_total{event="ping",code="201"})", 1},
    {R"(heaven_webhooks_total{event="ping",code="401"})", 1},
    {R"(heaven_deployments_started_total{provider="shell"})", 2},
    {R"(heaven_deployments_ended_total{provider="shell",state="success"})", 1},
    {R"(heaven_deployments_ended_total{provider="shell",state="failure"})", 1},
    {R"(heaven_deployment_duration_seconds_count{provider="shell"})", 2},
    {R"(heaven_deployment_duration_seconds_bucket{provider="shell",le="+Inf"})",
     2},
    {"heaven_deployments_running", 0},
    {"heaven_deployments_waiting", 0},
    {R"(heaven_outbox_messages_total{kind="status",outcome="delivered"})", 6},
    {R"(heaven_http_requests_total{host=")" + github_host + R"(",code="2xx"})",
     6},
  };
  for (auto& [name, value] : expected)
    BOOST_TEST(m[name] == value, name << " in\n" << scrape);
  // Nothing failed or was retried, and no SSH session was needed.
  for (auto& [name, value] : m) {
    BOOST_TEST(name.find("outcome=\"retried\"") == std::string::npos, name);
    BOOST_TEST(name.find("outcome=\"dropped\"") == std::string::npos, name);
    BOOST_TEST(name.find("heaven_ssh_sessions_total{") == std::string::npos,
               name);
  }
  BOOST_TEST(m["heaven_store_requests_total"] >= 8);
  BOOST_TEST(m["heaven_store_commit_duration_seconds_count"] >= 1);
  BOOST_TEST(m["process_open_fds"] > 0);
  BOOST_TEST(m["process_resident_memory_bytes"] > 1e6);
  BOOST_TEST(m["process_max_fds"] >= m["process_open_fds"]);
  auto now = static_cast<double>(std::time(nullptr));
  BOOST_TEST(m["process_start_time_seconds"] <= now + 1);
  BOOST_TEST(m["process_start_time_seconds"] >= now - 600);
  BOOST_TEST(m["process_cpu_seconds_total"] > 0);
  // Debian's promtool finds nothing to say about it.
  std::ofstream{tmp / "scrape.txt"} << scrape;
  auto [rc, said] = run("promtool check metrics < "
                        + (tmp / "scrape.txt").string());
  BOOST_TEST(rc == 0, said);
  BOOST_TEST(said.empty(), said);

  // The metrics listener: /metrics without a token, /healthz, nothing else.
  auto private_base = "http://127.0.0.1:" + metrics_port;
  auto open = http_call("GET", private_base + "/metrics");
  BOOST_TEST(open.status == 200);
  BOOST_TEST(open.body.find("heaven_deployments_started_total{provider="
                            "\"shell\"} 2\n")
               != std::string::npos,
             open.body);
  BOOST_TEST(http_call("GET", private_base + "/healthz").status == 200);
  BOOST_TEST(http_call("GET", private_base + "/deployments").status == 404);
  BOOST_TEST(
    http_call("POST", private_base + "/events",
              {{"X-GitHub-Event", "ping"},
               {"X-GitHub-Delivery", "m-5"},
               {"X-Hub-Signature-256",
                "sha256=" + hmac_sha256_hex(e2e_webhook_secret, "{}")}},
              "{}")
      .status
    == 404);
  // The token never shows in heaven's own log.
  h.stop();
  auto own = read_text(tmp.string() + "/data.stderr");
  BOOST_TEST(own.find(api_token) == std::string::npos);
  BOOST_TEST(
    own.find("serves /metrics without a token on 127.0.0.1:" + metrics_port)
      != std::string::npos,
    own);
  fs::remove_all(tmp);
}
