#include "tests/support/heaven_process.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/log_book.hpp"
#include "actors/webhook.hpp"
#include "tests/support/http_call.hpp"

namespace heaven::test {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

void pause_briefly(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/// The NAME=value environment of a test heaven.
std::vector<std::string> heaven_env(const fs::path& data,
                                    const std::string& api,
                                    const heaven_server::env_list& extra) {
  auto path = std::getenv("PATH");
  std::vector<std::string> env = {
    "PATH=" + std::string{path ? path : "/usr/bin:/bin"},
    "HOME=" + data.string(),
    "HEAVEN_LISTEN=127.0.0.1:0",
    "HEAVEN_DATA_DIR=" + data.string(),
    "GITHUB_WEBHOOK_SECRET=" + std::string{e2e_webhook_secret},
    "GITHUB_TOKEN=" + std::string{e2e_github_token},
    "OCTOKIT_API_ENDPOINT=" + api,
    "HEAVEN_PUBLIC_URL=" + std::string{e2e_public_url},
    "HEAVEN_CONFIG=/dev/null",
  };
  for (auto& [k, v] : extra)
    env.push_back(k + "=" + v);
  return env;
}

/// Reads `fd` until the line "heaven is ready on port N"; returns N, or 0
/// when the stream ends first.
uint16_t read_ready_port(int fd) {
  constexpr std::string_view ready = "heaven is ready on port ";
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1) {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (line.rfind(ready, 0) == 0)
      return static_cast<uint16_t>(std::stoi(line.substr(ready.size())));
    line.clear();
  }
  return 0;
}

} // namespace

fs::path make_temp_dir(const std::string& tag) {
  static int counter = 0;
  auto dir = fs::temp_directory_path()
             / ("heaven-e2e-" + tag + "-" + std::to_string(::getpid()) + "-"
                + std::to_string(++counter));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text(const fs::path& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>(in), {}};
}

heaven_server::heaven_server(const fs::path& data_dir, const std::string& api,
                             env_list extra)
  : data(data_dir), stderr_file(data_dir.string() + ".stderr") {
  // Everything the child needs is made before fork: it only execs.
  auto env = heaven_env(data, api, extra);
  std::vector<char*> envp;
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(HEAVEN_BINARY),
                  const_cast<char*>("serve"), nullptr};
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  pid = fork();
  if (pid < 0)
    throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out[1], 1);
    auto err = open(stderr_file.c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(err, 2);
    execve(HEAVEN_BINARY, argv, envp.data());
    _exit(127);
  }
  close(out[1]);
  port = read_ready_port(out[0]);
  close(out[0]);
  if (port == 0) {
    stop();
    throw std::runtime_error("heaven did not start: "
                             + read_text(stderr_file));
  }
}

int heaven_server::stop() {
  if (pid <= 0)
    return -1;
  kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 1200; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    pause_briefly(50);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  pid = -1;
  return -1;
}

heaven_server::~heaven_server() {
  stop();
}

std::string heaven_server::base() const {
  return "http://127.0.0.1:" + std::to_string(port);
}

http_response heaven_server::post_event(const std::string& type,
                                        const std::string& delivery,
                                        const std::string& body,
                                        std::optional<std::string> signature)
  const {
  auto sig = signature ? *signature
                       : "sha256=" + hmac_sha256_hex(e2e_webhook_secret, body);
  return http_call("POST", base() + "/events",
                   {{"Content-Type", "application/json"},
                    {"X-GitHub-Event", type},
                    {"X-GitHub-Delivery", delivery},
                    {"X-Hub-Signature-256", sig}},
                   body);
}

json heaven_server::deployments() const {
  auto res = http_call("GET", base() + "/deployments");
  if (res.status != 200)
    throw std::runtime_error("GET /deployments answered "
                             + std::to_string(res.status) + ": " + res.body);
  return json::parse(res.body);
}

json heaven_server::wait_finished(int64_t id, int seconds) const {
  for (int i = 0; i < seconds * 20; ++i) {
    for (auto& d : deployments())
      if (d.at("id") == id) {
        auto state = d.at("state").get<std::string>();
        if (state == "success" || state == "failure" || state == "error")
          return d;
      }
    pause_briefly(50);
  }
  throw std::runtime_error("deployment " + std::to_string(id)
                           + " did not finish");
}

std::string heaven_server::log_key() const {
  std::ifstream key_file{data / "log.key"};
  std::string key;
  std::getline(key_file, key);
  return key;
}

std::string heaven_server::log(int64_t id) const {
  auto res = http_call("GET", base() + "/deployments/" + std::to_string(id)
                                + "/log?token=" + log_token(log_key(), id));
  if (res.status != 200)
    throw std::runtime_error("the log of deployment " + std::to_string(id)
                             + " answered " + std::to_string(res.status));
  return res.body;
}

std::vector<recorded_request> statuses(const http_stub& github,
                                       int64_t github_id,
                                       const std::string& repo) {
  std::vector<recorded_request> result;
  auto path = "/repos/" + repo + "/deployments/" + std::to_string(github_id)
              + "/statuses";
  for (auto& r : github.requests())
    if (r.target == path)
      result.push_back(r);
  return result;
}

std::vector<std::string> states(const std::vector<recorded_request>& reqs) {
  std::vector<std::string> result;
  for (auto& r : reqs)
    result.push_back(json::parse(r.body).at("state"));
  return result;
}

int64_t id_of(const heaven_server& h, int64_t github_id) {
  for (int i = 0; i < 200; ++i) {
    for (auto& d : h.deployments())
      if (d.at("github_id") == github_id)
        return d.at("id");
    pause_briefly(25);
  }
  throw std::runtime_error("no deployment for GitHub id "
                           + std::to_string(github_id));
}

} // namespace heaven::test
