// heaven_bench: a load benchmark for operators. Starts the real
// `heaven serve` against a local GitHub stand-in, fires N signed deployment
// events from C concurrent senders and reports what it measured: webhook
// latency and throughput, time until every deployment ended, peak memory and
// threads, and how heaven shut down. It reports figures; it asserts nothing.

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
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "base/webhook.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto webhook_secret = "bench webhook secret";
constexpr auto api_token = "bench api token";

struct options {
  int deployments = 100;
  int concurrency = 16;
  int apps = -1; // -1: as many as deployments
  std::string binary = "build/heaven";
  int timeout_s = 240;
  bool keep = false;
};

void usage() {
  std::cout
    << "usage: heaven_bench [--deployments N] [--concurrency C] [--apps A]\n"
       "                    [--binary build/heaven] [--timeout SECONDS]\n"
       "                    [--keep]\n"
       "  N  deployment events to send (default 100)\n"
       "  C  concurrent senders (default 16)\n"
       "  A  distinct payload.name values; A < N makes some events meet a\n"
       "     running deployment of the same app (\"Already deploying.\")\n"
       "     (default N)\n"
       "  --timeout  how long to wait for every deployment to end (240)\n"
       "  --keep     keep the temp dir (heaven's data and stderr)\n";
}

std::optional<options> parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc)
        return std::nullopt;
      return std::string{argv[++i]};
    };
    std::optional<std::string> v;
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (!(v = value()))
      return std::nullopt;
    try {
      if (a == "--deployments")
        o.deployments = std::stoi(*v);
      else if (a == "--concurrency")
        o.concurrency = std::stoi(*v);
      else if (a == "--apps")
        o.apps = std::stoi(*v);
      else if (a == "--binary")
        o.binary = *v;
      else if (a == "--timeout")
        o.timeout_s = std::stoi(*v);
      else
        return std::nullopt;
    } catch (std::exception&) {
      return std::nullopt;
    }
  }
  if (o.apps <= 0)
    o.apps = o.deployments;
  if (o.deployments < 1 || o.concurrency < 1)
    return std::nullopt;
  return o;
}

/// Runs a shell command and returns its stdout; throws when it fails.
std::string sh(const std::string& cmd) {
  std::string out;
  auto pipe = popen(cmd.c_str(), "r");
  if (!pipe)
    throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
    out.append(buf, n);
  if (pclose(pipe) != 0)
    throw std::runtime_error("command failed: " + cmd + "\n" + out);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

/// A one-commit git repository holding `script/deploy`; returns its SHA.
std::string make_repo(const fs::path& dir) {
  fs::create_directories(dir / "script");
  auto script = dir / "script" / "deploy";
  std::ofstream{script} << "#!/bin/sh\necho deployed $SHA\n";
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  auto d = dir.string();
  sh("git -C '" + d + "' init -q --initial-branch=main");
  sh("cd '" + d
     + "' && git add -A && git -c user.name=bench -c user.email=b@b "
       "commit -q -m bench");
  return sh("git -C '" + d + "' rev-parse HEAD");
}

/// The JSON body of one `deployment` event (the shape GitHub sends).
std::string deployment_event(const std::string& clone_url,
                             const std::string& sha, int64_t github_id,
                             const std::string& app) {
  return heaven::test::deployment_event(
           {.id = github_id,
            .sha = sha,
            .clone_url = clone_url,
            .payload = {{"name", app},
                        {"config",
                         {{"provider", "shell"},
                          {"deploy_script", "script/deploy"}}}},
            .description = "heaven_bench",
            .login = "bench"})
    .dump();
}

/// Peaks of heaven's /proc figures, sampled by a thread during the run.
struct proc_sample {
  long hwm_kb = 0;
  long rss_kb = 0;
  long threads = 0;
  long fds = 0;
  long children = 0;
};

/// Reads VmHWM, VmRSS and Threads of `pid`.
proc_sample read_status(pid_t pid) {
  auto f = heaven::test::read_proc(pid, true);
  proc_sample s;
  s.hwm_kb = f.hwm_kb;
  s.rss_kb = f.rss_kb;
  s.threads = f.threads;
  s.fds = f.fds;
  return s;
}

/// The processes whose parent is `pid` (heaven's deploy scripts and gits).
long count_children(pid_t pid) {
  long n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator{"/proc", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])))
      continue;
    std::ifstream stat{it->path() / "stat"};
    std::string text{std::istreambuf_iterator<char>(stat), {}};
    auto close = text.rfind(')');
    if (close == std::string::npos)
      continue;
    // After ") S ": the parent's pid.
    if (std::atol(text.c_str() + close + 4) == pid)
      ++n;
  }
  return n;
}

/// A running `heaven serve`.
struct heaven_child {
  pid_t pid = -1;
  uint16_t port = 0;
  std::thread drain;
};

void start_heaven(heaven_child& h, const options& o, const fs::path& tmp,
                  const std::string& api) {
  auto data = tmp / "data";
  std::vector<std::string> env = {
    "PATH=" + std::string{getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"},
    "HOME=" + tmp.string(),
    "HEAVEN_LISTEN=127.0.0.1:0",
    "HEAVEN_DATA_DIR=" + data.string(),
    "GITHUB_WEBHOOK_SECRET=" + std::string{webhook_secret},
    "GITHUB_TOKEN=bench",
    "HEAVEN_API_TOKEN=" + std::string{api_token},
    "OCTOKIT_API_ENDPOINT=" + api,
    "HEAVEN_CONFIG=/dev/null",
    "HEAVEN_LOG_LEVEL=warn",
  };
  auto started = heaven::test::launch_heaven(o.binary, env,
                                             tmp / "heaven.stderr");
  h.pid = started.pid;
  h.port = started.port;
  // heaven's log (spdlog's default logger) goes to stdout too; it is
  // drained so heaven never blocks on a full pipe.
  h.drain = heaven::test::drain_to_file(started.stdout_fd,
                                        tmp / "heaven.stdout");
}

size_t write_to_string(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// GET `url` with the API token; returns the body, or nullopt unless the
/// answer is 200.
std::optional<std::string> http_get(const std::string& url) {
  auto e = curl_easy_init();
  std::string body;
  auto auth = "Authorization: Bearer " + std::string{api_token};
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_to_string);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  auto rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(e);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK || status != 200)
    return std::nullopt;
  return body;
}

/// One webhook answer as the sender saw it.
struct answer {
  long status = 0; // 0: no HTTP answer (network error)
  double ms = 0;
  std::string body;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

std::string fmt(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

/// Counts of what the GitHub stand-in received, kept by its handler.
struct github_counts {
  std::mutex mtx;
  size_t requests = 0;
  std::map<std::string, size_t> states; // status POSTs by state
  std::map<std::string, size_t> terminal_descriptions;
  size_t terminal = 0;
  clock_type::time_point last_terminal;
};

bool is_terminal(const std::string& s) {
  return s == "success" || s == "failure" || s == "error";
}

int run(const options& o) {
  auto tmp = fs::temp_directory_path()
             / ("heaven-bench-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  struct cleanup {
    fs::path dir;
    bool keep;
    ~cleanup() {
      if (keep) {
        std::cout << "kept " << dir << "\n";
        return;
      }
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleaner{tmp, o.keep};

  auto sha = make_repo(tmp / "app");
  auto clone_url = "file://" + (tmp / "app").string();

  heaven::test::http_stub github;
  github_counts counts;
  github.respond_with([&](const heaven::test::recorded_request& r) {
    std::string state, description;
    if (r.method == "POST" && r.target.find("/statuses") != std::string::npos) {
      auto j = json::parse(r.body, nullptr, false);
      if (j.is_object()) {
        state = j.value("state", "");
        description = j.value("description", "");
      }
    }
    std::lock_guard guard{counts.mtx};
    ++counts.requests;
    if (!state.empty()) {
      ++counts.states[state];
      if (is_terminal(state)) {
        ++counts.terminal;
        counts.last_terminal = clock_type::now();
        if (state != "success")
          ++counts.terminal_descriptions[state + ": " + description];
      }
    }
    return heaven::test::stub_response{};
  });

  heaven_child h;
  start_heaven(h, o, tmp, github.base_url());
  auto stderr_path = tmp / "heaven.stderr";
  if (h.port == 0) {
    int status = 0;
    waitpid(h.pid, &status, 0);
    if (h.drain.joinable())
      h.drain.join();
    std::ifstream in{stderr_path};
    std::cerr << "heaven did not start:\n" << in.rdbuf() << "\n";
    return 1;
  }
  auto base = "http://127.0.0.1:" + std::to_string(h.port);

  std::cout << "heaven_bench: N=" << o.deployments << " C=" << o.concurrency
            << " A=" << o.apps << " binary=" << o.binary << " (pid " << h.pid
            << ", port " << h.port << ")\n";

  // Sample heaven's memory, threads, fds and children while it works.
  proc_sample peak;
  std::atomic<bool> sampling{true};
  std::mutex peak_mtx;
  std::thread sampler{[&] {
    int tick = 0;
    while (sampling) {
      auto s = read_status(h.pid);
      long kids = (tick++ % 4 == 0) ? count_children(h.pid) : 0;
      {
        std::lock_guard guard{peak_mtx};
        peak.hwm_kb = std::max(peak.hwm_kb, s.hwm_kb);
        peak.rss_kb = std::max(peak.rss_kb, s.rss_kb);
        peak.threads = std::max(peak.threads, s.threads);
        peak.fds = std::max(peak.fds, s.fds);
        peak.children = std::max(peak.children, kids);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }};
  auto idle = read_status(h.pid);

  // Bodies and signatures are made before the clock starts: the figures are
  // heaven's, not the sender's HMAC.
  struct event {
    std::string body, signature, delivery;
  };
  std::vector<event> events(o.deployments);
  auto run_tag = std::to_string(::getpid());
  for (int i = 0; i < o.deployments; ++i) {
    auto& ev = events[i];
    ev.body = deployment_event(clone_url, sha, 100000 + i,
                               "app-" + std::to_string(i % o.apps));
    ev.signature = "X-Hub-Signature-256: sha256="
                   + heaven::hmac_sha256_hex(webhook_secret, ev.body);
    ev.delivery = "X-GitHub-Delivery: bench-" + run_tag + "-"
                  + std::to_string(i);
  }

  std::vector<answer> answers(o.deployments);
  std::atomic<int> next{0};
  auto t0 = clock_type::now();
  std::vector<std::thread> senders;
  for (int c = 0; c < o.concurrency; ++c)
    senders.emplace_back([&] {
      auto e = curl_easy_init();
      auto url = base + "/events";
      for (int i; (i = next++) < o.deployments;) {
        auto& ev = events[i];
        auto& a = answers[i];
        curl_slist* hdrs = nullptr;
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "X-GitHub-Event: deployment");
        hdrs = curl_slist_append(hdrs, ev.delivery.c_str());
        hdrs = curl_slist_append(hdrs, ev.signature.c_str());
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(e, CURLOPT_URL, url.c_str());
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, ev.body.c_str());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         static_cast<long>(ev.body.size()));
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_to_string);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &a.body);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        auto start = clock_type::now();
        auto rc = curl_easy_perform(e);
        a.ms = std::chrono::duration<double, std::milli>(clock_type::now()
                                                         - start)
                 .count();
        if (rc == CURLE_OK)
          curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a.status);
        else
          a.body = curl_easy_strerror(rc);
        curl_slist_free_all(hdrs);
      }
      curl_easy_cleanup(e);
    });
  for (auto& t : senders)
    t.join();
  auto t_sent = clock_type::now();
  double send_s = std::chrono::duration<double>(t_sent - t0).count();

  std::vector<double> ok_ms;
  std::map<std::string, int> other; // "status body" -> count
  for (auto& a : answers) {
    if (a.status == 201)
      ok_ms.push_back(a.ms);
    else
      ++other[std::to_string(a.status) + " " + a.body.substr(0, 120)];
  }
  size_t accepted = ok_ms.size();

  // Every accepted deployment ends with one terminal status at GitHub
  // (queued and in_progress come first unless it was refused).
  auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  size_t terminal = 0;
  clock_type::time_point last_terminal = t0;
  for (;;) {
    {
      std::lock_guard guard{counts.mtx};
      terminal = counts.terminal;
      last_terminal = counts.last_terminal;
    }
    if (terminal >= accepted || clock_type::now() > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bool all_done = terminal >= accepted;
  double done_s = std::chrono::duration<double>(
                    (all_done ? last_terminal : clock_type::now()) - t0)
                    .count();

  // The newest rows heaven lists (it caps the list at 500).
  std::map<std::string, int> row_states;
  int rows = 0;
  if (auto list = http_get(base + "/deployments?limit=500")) {
    auto arr = json::parse(*list, nullptr, false);
    if (arr.is_array())
      for (auto& d : arr) {
        ++rows;
        ++row_states[d.value("state", "?")];
      }
  }
  // Give heaven a moment to reap its last children and release fds.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  auto after = read_status(h.pid);
  auto kids_after = count_children(h.pid);
  sampling = false;
  sampler.join();

  // Stop heaven the way an operator (or systemd) would.
  auto stopped = heaven::test::stop_process(h.pid, 30, 20);
  bool exited = stopped.exited;
  int wstatus = stopped.status;
  double stop_s = stopped.seconds;
  h.drain.join();

  // ---- report --------------------------------------------------------------
  std::lock_guard guard{counts.mtx};
  std::cout << "webhooks: " << accepted << "/" << o.deployments
            << " answered 201 in " << fmt(send_s, 2)
            << " s = " << fmt(accepted / send_s) << " events/s\n";
  std::cout << "  latency of 201 answers (ms): p50 "
            << fmt(percentile(ok_ms, 50)) << "  p95 "
            << fmt(percentile(ok_ms, 95)) << "  p99 "
            << fmt(percentile(ok_ms, 99)) << "  max "
            << fmt(ok_ms.empty()
                     ? 0
                     : *std::max_element(ok_ms.begin(), ok_ms.end()))
            << "\n";
  size_t non201 = o.deployments - accepted;
  std::cout << "  non-201 answers: " << non201 << "\n";
  for (auto& [what, n] : other)
    std::cout << "    " << n << " x " << what << "\n";
  std::cout << "deployments: " << terminal << "/" << accepted
            << " terminal after " << fmt(done_s, 2) << " s"
            << (all_done ? "" : " (TIMED OUT)") << " = "
            << fmt(terminal / done_s) << " deployments/s end to end\n";
  std::cout << "  GitHub stand-in: " << counts.requests << " requests;";
  for (auto& [state, n] : counts.states)
    std::cout << " " << state << "=" << n;
  std::cout << "\n";
  for (auto& [what, n] : counts.terminal_descriptions)
    std::cout << "    " << n << " x " << what.substr(0, 140) << "\n";
  std::cout << "  /deployments?limit=500 (newest " << rows << " rows):";
  for (auto& [state, n] : row_states)
    std::cout << " " << state << "=" << n;
  std::cout << "\n";
  std::cout << "heaven process: idle RSS " << idle.rss_kb / 1024 << " MiB, "
            << idle.threads << " threads, " << idle.fds << " fds\n";
  std::cout << "  peak during run: VmHWM " << fmt(peak.hwm_kb / 1024.0)
            << " MiB, " << peak.threads << " threads, " << peak.fds << " fds, "
            << peak.children << " child processes\n";
  std::cout << "  1 s after the last deployment: RSS "
            << fmt(after.rss_kb / 1024.0) << " MiB, " << after.threads
            << " threads, " << after.fds << " fds, " << kids_after
            << " child processes\n";
  if (exited)
    std::cout << "SIGTERM: heaven exited after " << fmt(stop_s, 2) << " s with "
              << (WIFEXITED(wstatus)
                    ? "status " + std::to_string(WEXITSTATUS(wstatus))
                    : "signal " + std::to_string(WTERMSIG(wstatus)))
              << "\n";
  else
    std::cout << "SIGTERM: heaven did NOT exit within 30 s (killed)\n";

  // heaven logs at warn: every line it wrote is worth a look.
  std::string line;
  std::map<std::string, int> lines;
  int nlines = 0;
  for (auto path : {tmp / "heaven.stdout", stderr_path}) {
    std::ifstream in{path};
    while (std::getline(in, line)) {
      ++nlines;
      // Drop spdlog's "[time] " prefix and the numbers so that equal
      // messages group.
      auto at = line.find("] ");
      auto text = at == std::string::npos ? line : line.substr(at + 2);
      std::string shape;
      for (char c : text)
        if (!std::isdigit(static_cast<unsigned char>(c)))
          shape += c;
        else if (shape.empty() || shape.back() != '#')
          shape += '#';
      ++lines[shape];
    }
  }
  std::cout << "heaven log (stdout and stderr): " << nlines << " lines\n";
  int shown = 0;
  for (auto& [text, n] : lines) {
    if (++shown > 10) {
      std::cout << "    ... " << lines.size() - 10 << " more kinds\n";
      break;
    }
    std::cout << "    " << n << " x " << text.substr(0, 200) << "\n";
  }
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
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = 0;
  try {
    rc = run(*o);
  } catch (std::exception& e) {
    std::cerr << "heaven_bench: " << e.what() << "\n";
    rc = 1;
  }
  curl_global_cleanup();
  return rc;
}
