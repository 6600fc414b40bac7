#include "tools/support/heaven_process.hpp"

#include <cstdio>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log_book.hpp"
#include "base/webhook.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/store_view.hpp"

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
    "HEAVEN_API_TOKEN=" + std::string{e2e_api_token},
    "HEAVEN_CONFIG=/dev/null",
  };
  // A setting in `extra` replaces the default of that name (a process
  // reads the first of two).
  for (auto& [k, v] : extra)
    std::erase_if(env, [&k](const std::string& e) {
      return e.starts_with(k + "=");
    });
  for (auto& [k, v] : extra)
    env.push_back(k + "=" + v);
  return env;
}

/// The directories make_temp_dir made, removed when the process that made
/// them exits normally: a test that forgets its own leaves nothing in /tmp.
/// A forked child that calls exit() removes none of them.
struct made_dirs {
  std::mutex mx;
  std::vector<fs::path> paths;
  pid_t owner = ::getpid();

  ~made_dirs() {
    if (::getpid() != owner)
      return;
    for (auto& p : paths) {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  }
};

made_dirs& made() {
  static made_dirs dirs;
  return dirs;
}

} // namespace

fs::path make_temp_dir(const std::string& tag) {
  auto& dirs = made();
  std::lock_guard<std::mutex> guard{dirs.mx};
  auto dir = fs::temp_directory_path()
             / ("heaven-e2e-" + tag + "-" + std::to_string(::getpid()) + "-"
                + std::to_string(dirs.paths.size() + 1));
  fs::remove_all(dir);
  fs::create_directories(dir);
  dirs.paths.push_back(dir);
  return dir;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string read_text(const fs::path& path) {
  std::ifstream in{path};
  try {
    return {std::istreambuf_iterator<char>(in), {}};
  } catch (const std::exception&) {
    // A /proc file of a process that exited while it was read.
    return {};
  }
}

json deployment_event(const deployment_fields& f) {
  return {
    {"action", "created"},
    {"deployment",
     {{"id", f.id},
      {"url", "https://api.github.com/repos/" + f.repo + "/deployments/"
                + std::to_string(f.id)},
      {"sha", f.sha},
      {"ref", "main"},
      {"task", "deploy"},
      {"environment", f.environment},
      {"description", f.description},
      {"creator", {{"login", f.login}}},
      {"payload", f.payload}}},
    {"repository",
     {{"name", "app"}, {"full_name", f.repo}, {"clone_url", f.clone_url}}},
    {"sender", {{"login", f.login}}},
  };
}

std::thread drain_to_file(int fd, fs::path path) {
  return std::thread{[fd, path = std::move(path)] {
    std::ofstream log{path};
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
      log.write(buf, n);
    close(fd);
  }};
}

proc_figures read_proc(pid_t pid, bool count_fds) {
  proc_figures f;
  auto dir = "/proc/" + std::to_string(pid);
  std::ifstream status{dir + "/status"};
  for (std::string line; std::getline(status, line);) {
    auto num = [&] { return std::atol(line.c_str() + line.find(':') + 1); };
    if (line.rfind("VmHWM:", 0) == 0)
      f.hwm_kb = num();
    else if (line.rfind("VmRSS:", 0) == 0)
      f.rss_kb = num();
    else if (line.rfind("Threads:", 0) == 0)
      f.threads = num();
  }
  auto text = read_text(dir + "/stat");
  if (auto close = text.rfind(')'); close != std::string::npos) {
    // After ")": state and ten more fields, then utime and stime (ticks).
    std::istringstream in{text.substr(close + 1)};
    std::string skip;
    for (int k = 0; k < 11; ++k)
      in >> skip;
    double utime = 0, stime = 0;
    in >> utime >> stime;
    f.cpu_s = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::error_code ec;
  if (count_fds)
    for (fs::directory_iterator it{dir + "/fd", ec};
         !ec && it != fs::directory_iterator{}; it.increment(ec))
      ++f.fds;
  return f;
}

stop_outcome stop_process(pid_t pid, int timeout_s, int poll_ms) {
  using clock = std::chrono::steady_clock;
  stop_outcome o;
  auto start = clock::now();
  kill(pid, SIGTERM);
  while (!o.exited && clock::now() - start < std::chrono::seconds(timeout_s)) {
    o.exited = waitpid(pid, &o.status, WNOHANG) == pid;
    if (!o.exited)
      pause_briefly(poll_ms);
  }
  o.seconds = std::chrono::duration<double>(clock::now() - start).count();
  if (!o.exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &o.status, 0);
  }
  return o;
}

heaven_server::heaven_server(const fs::path& data_dir, const std::string& api,
                             env_list extra)
  : data(data_dir), stderr_file(data_dir.string() + ".stderr"),
    api_token(e2e_api_token) {
  for (auto& [k, v] : extra)
    if (k == "HEAVEN_API_TOKEN")
      api_token = v;
  // A test binary that crashes or is killed (a ctest timeout) leaves no
  // heaven behind: it gets SIGTERM when the test's main thread ends.
  auto started = launch_heaven(HEAVEN_BINARY, heaven_env(data, api, extra),
                               stderr_file, true);
  pid = started.pid;
  port = started.port;
  close(started.stdout_fd);
  if (port == 0) {
    stop();
    throw std::runtime_error("heaven did not start: " + read_text(stderr_file));
  }
}

int heaven_server::stop() {
  if (pid <= 0)
    return -1;
  auto ended = stop_process(pid, 60, 50);
  pid = -1;
  if (!ended.exited)
    return -1;
  return WIFEXITED(ended.status) ? WEXITSTATUS(ended.status) : -1;
}

heaven_server::~heaven_server() {
  stop();
}

std::string heaven_server::base() const {
  return "http://127.0.0.1:" + std::to_string(port);
}

http_response
heaven_server::post_event(const std::string& type, const std::string& delivery,
                          const std::string& body,
                          std::optional<std::string> signature) const {
  auto sig = signature ? *signature
                       : "sha256=" + hmac_sha256_hex(e2e_webhook_secret, body);
  return http_call("POST", base() + "/events",
                   {{"Content-Type", "application/json"},
                    {"X-GitHub-Event", type},
                    {"X-GitHub-Delivery", delivery},
                    {"X-Hub-Signature-256", sig}},
                   body);
}

string_pairs heaven_server::authorization() const {
  return {{"Authorization", "Bearer " + api_token}};
}

json heaven_server::deployments() const {
  auto res = http_call("GET", base() + "/deployments", authorization());
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

void heaven_server::wait_quiet(int seconds) const {
  auto s = heaven::test::wait_quiet(data, std::chrono::seconds(seconds));
  if (!s.quiet())
    throw std::runtime_error("heaven was not quiet after "
                             + std::to_string(seconds) + " s: " + s.describe());
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

namespace {

/// `text` as heaven's pages write it in HTML.
std::string html_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

} // namespace

std::string
heaven_server::unstarted_log_problems(int64_t id,
                                      const std::string& line) const {
  std::string wrong;
  auto name = std::to_string(id);
  for (auto ext : {".log", ".times"})
    if (std::filesystem::exists(data / "logs" / (name + ext)))
      wrong += "data/logs/" + name + ext + " exists\n";
  auto link = [&](int64_t of) {
    return http_call("GET", base() + "/deployments/" + std::to_string(of)
                              + "/log?token=" + log_token(log_key(), of));
  };
  auto res = link(id);
  if (res.status != 200)
    wrong += "the log link answered " + std::to_string(res.status) + "\n";
  if (res.body != line)
    wrong += "the log link sent '" + res.body + "', not '" + line + "'\n";
  if (headers_of(res, "transfer-encoding")
      != std::vector<std::string>{"chunked"})
    wrong += "the log link's answer is not chunked\n";
  if (headers_of(res, "content-type")
      != std::vector<std::string>{"text/plain; charset=utf-8"})
    wrong += "the log link's answer is not plain text\n";
  std::string finished;
  for (auto& d : deployments())
    if (d.at("id") == id && d.contains("finished_at")
        && d.at("finished_at").is_string())
      finished = d.at("finished_at").get<std::string>();
  if (finished.size() < 19)
    wrong += "its row has no finished_at\n";
  auto page = http_call("GET", base() + "/ui/deployments/" + name,
                        authorization());
  auto shown = "<time>"
               + finished.substr(std::min<std::size_t>(11, finished.size()), 8)
               + "</time><span class=\"text\">"
               + html_escaped(line.substr(0, line.find('\n'))) + "</span>";
  if (page.status != 200)
    wrong += "its page answered " + std::to_string(page.status) + "\n";
  if (page.body.find(shown) == std::string::npos)
    wrong += "its page does not show " + shown + "\n";
  auto unknown = link(id + 100000);
  if (unknown.status != 404)
    wrong += "an unknown id's log link answered "
             + std::to_string(unknown.status) + "\n";
  return wrong;
}

std::vector<recorded_request>
statuses(const http_stub& github, int64_t github_id, const std::string& repo) {
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

command_result run_command(const std::string& cmd) {
  command_result r;
  auto pipe = popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    throw std::runtime_error("popen failed: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
    r.out.append(buf, n);
  auto rc = pclose(pipe);
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

std::string run_checked(const std::string& cmd) {
  auto r = run_command(cmd);
  if (r.status != 0)
    throw std::runtime_error(cmd + " failed:\n" + r.out);
  while (!r.out.empty() && r.out.back() == '\n')
    r.out.pop_back();
  return r.out;
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
