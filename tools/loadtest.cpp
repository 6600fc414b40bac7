#include "tools/loadtest.hpp"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include "tools/loadtest_engine.hpp"
#include "tools/loadtest_events.hpp"
#include "tools/loadtest_report.hpp"
#include "tools/support/launch.hpp"

namespace heaven::loadtest {

namespace fs = std::filesystem;

namespace {

/// Below this share of the asked rate, a run did not do what was asked.
constexpr double rate_tolerance = 0.9;

struct cli {
  std::string target;
  std::string event = "deployment_status";
  double rate = 0;
  double duration_s = 10;
  int connections = 64;
  double timeout_s = 10;
  std::string secret_file;
  bool json = false;
  bool progress = false;
  std::string report;
};

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// "2000/s", "2000", "120/m" as requests per second.
std::optional<double> parse_rate(const std::string& text) {
  auto slash = text.find('/');
  auto number = text.substr(0, slash);
  auto unit = slash == std::string::npos ? "s" : text.substr(slash + 1);
  char* end = nullptr;
  double n = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !std::isfinite(n) || n <= 0)
    return std::nullopt;
  if (unit == "s")
    return n;
  if (unit == "m" || unit == "min")
    return n / 60;
  return std::nullopt;
}

/// "60s", "2m", "500ms", "1h", "60" as seconds.
std::optional<double> parse_duration(const std::string& text) {
  char* end = nullptr;
  double n = std::strtod(text.c_str(), &end);
  std::string unit = end;
  if (text.empty() || end == text.c_str() || !std::isfinite(n) || n <= 0)
    return std::nullopt;
  if (unit.empty() || unit == "s")
    return n;
  if (unit == "ms")
    return n / 1000;
  if (unit == "m")
    return n * 60;
  if (unit == "h")
    return n * 3600;
  return std::nullopt;
}

cli parse_cli(const std::vector<std::string>& args) {
  cli c;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto flag = args[i];
    std::optional<std::string> inline_value;
    if (auto eq = flag.find('='); eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value)
        return *inline_value;
      if (i + 1 >= args.size())
        throw usage_error(flag + " needs a value");
      return args[++i];
    };
    if (flag == "--target") {
      c.target = value();
    } else if (flag == "--event") {
      c.event = value();
      if (!parse_event_choice(c.event))
        throw usage_error("unknown --event '" + c.event
                          + "' (deployment, deployment_status, status, ping "
                            "or mix)");
    } else if (flag == "--rate") {
      auto text = value();
      auto r = parse_rate(text);
      if (!r)
        throw usage_error("bad --rate '" + text + "' (e.g. 2000/s)");
      c.rate = *r;
    } else if (flag == "--duration" || flag == "--timeout") {
      auto text = value();
      auto d = parse_duration(text);
      if (!d)
        throw usage_error("bad " + flag + " '" + text + "' (e.g. 60s, 2m)");
      (flag == "--duration" ? c.duration_s : c.timeout_s) = *d;
    } else if (flag == "--connections") {
      auto text = value();
      char* end = nullptr;
      long n = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || n < 1 || n > 100000)
        throw usage_error("bad --connections '" + text + "' (1 to 100000)");
      c.connections = static_cast<int>(n);
    } else if (flag == "--webhook-secret-file") {
      c.secret_file = value();
    } else if (flag == "--webhook-secret" || flag == "--secret") {
      throw usage_error("secrets are never read from the command line (it "
                        "shows in process lists): set "
                        "GITHUB_WEBHOOK_SECRET or pass --webhook-secret-file");
    } else if (flag == "--report") {
      c.report = value();
    } else if ((flag == "--json" || flag == "--progress") && !inline_value) {
      (flag == "--json" ? c.json : c.progress) = true;
    } else {
      throw usage_error("unknown argument '" + args[i] + "'");
    }
  }
  if (c.rate > 0 && c.rate * c.duration_s > 1e9)
    throw usage_error("--rate times --duration is over a billion requests");
  return c;
}

/// "http://host:port/path" split; path "/events" when none is given.
struct target_url {
  std::string host;
  uint16_t port = 80;
  std::string host_header;
  std::string path = "/events";
};

target_url parse_target(const std::string& url) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw usage_error("--target must be an http:// URL (heaven loadtest "
                      "speaks plain HTTP; put it next to heaven, not behind "
                      "TLS): '"
                      + url + "'");
  target_url t;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  t.host_header = rest.substr(0, slash);
  if (slash != std::string::npos && slash + 1 < rest.size())
    t.path = rest.substr(slash);
  auto authority = t.host_header;
  auto colon = authority.rfind(':');
  bool v6 = !authority.empty() && authority.front() == '[';
  auto close = authority.find(']');
  if (colon != std::string::npos && (!v6 || colon > close)) {
    auto port_text = authority.substr(colon + 1);
    char* end = nullptr;
    long port = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || port < 1 || port > 65535)
      throw usage_error("bad port in --target '" + url + "'");
    t.port = static_cast<uint16_t>(port);
    authority = authority.substr(0, colon);
  }
  if (v6 && authority.size() >= 2)
    authority = authority.substr(1, authority.size() - 2);
  if (authority.empty())
    throw usage_error("no host in --target '" + url + "'");
  t.host = authority;
  return t;
}

std::string read_secret_file(const std::string& path) {
  std::ifstream in{path};
  std::string secret;
  if (!in || !std::getline(in, secret))
    throw usage_error("cannot read the webhook secret from " + path);
  while (
    !secret.empty()
    && (secret.back() == '\r' || secret.back() == ' ' || secret.back() == '\t'))
    secret.pop_back();
  if (secret.empty())
    throw usage_error("the webhook secret file " + path + " is empty");
  return secret;
}

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes; ++i) {
    auto b = rd() & 0xFF;
    out += hex[b >> 4];
    out += hex[b & 0xF];
  }
  return out;
}

/// A `heaven serve` of loadtest's own: a temporary data dir, any free port
/// on 127.0.0.1, no config file, a fresh secret. Stopped and removed on
/// destruction.
class local_heaven {
public:
  local_heaven(const std::string& binary, const std::string& secret) {
    std::string tmpl
      = (fs::temp_directory_path() / "heaven-loadtest-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot make a temporary data directory");
    data_ = tmpl;
    auto path = std::getenv("PATH");
    std::vector<std::string> env = {
      "PATH=" + std::string{path ? path : "/usr/bin:/bin"},
      "HOME=" + data_.string(),
      "HEAVEN_LISTEN=127.0.0.1:0",
      "HEAVEN_CONFIG=/dev/null",
      "HEAVEN_DATA_DIR=" + (data_ / "data").string(),
      "GITHUB_WEBHOOK_SECRET=" + secret,
    };
    auto started = test::launch_heaven(binary, env, data_ / "heaven.log");
    pid_ = started.pid;
    stdout_fd_ = started.stdout_fd;
    port_ = started.port;
    if (port_ == 0) {
      auto log = tail_of_log();
      stop();
      throw std::runtime_error("the local heaven did not start; its log "
                               "ends:\n"
                               + log);
    }
  }

  ~local_heaven() {
    stop();
  }

  uint16_t port() const {
    return port_;
  }

  /// Stops heaven (SIGTERM; SIGKILL after a minute) and removes its data.
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 600 && waitpid(pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (kill(pid_, 0) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
    if (stdout_fd_ >= 0)
      close(stdout_fd_);
    stdout_fd_ = -1;
    std::error_code ec;
    if (!data_.empty())
      fs::remove_all(data_, ec);
    data_.clear();
  }

private:
  std::string tail_of_log() const {
    std::ifstream in{data_ / "heaven.log"};
    std::string text{std::istreambuf_iterator<char>(in), {}};
    return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
  }

  fs::path data_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::trunc};
  out << text;
  if (!out.flush())
    throw std::runtime_error("cannot write " + path);
}

} // namespace

std::string usage_text() {
  return "usage: heaven loadtest [--target URL] [options]\n\n"
         "Sends signed GitHub events to a heaven and measures its answers.\n"
         "Without --target it starts a heaven of its own (this binary, a\n"
         "temporary data dir, 127.0.0.1, a generated secret).\n\n"
         "  --target URL              http://host:port/events of a running "
         "heaven\n"
         "  --event KIND              deployment, deployment_status, status,\n"
         "                            ping or mix [default: "
         "deployment_status]\n"
         "  --rate N/s                open loop: N requests a second, "
         "latency\n"
         "                            from when each was due; without it,\n"
         "                            closed loop\n"
         "  --duration D              60s, 2m, 500ms [default: 10s]\n"
         "  --connections N           keep-alive connections, the most\n"
         "                            requests in flight [default: 64]\n"
         "  --timeout D               how long answers are awaited after\n"
         "                            the last request was due [default: "
         "10s]\n"
         "  --webhook-secret-file F   the target's secret (else "
         "GITHUB_WEBHOOK_SECRET)\n"
         "  --json                    the summary as one JSON object on "
         "stdout\n"
         "  --progress                a progress line on stderr each "
         "second\n"
         "                            (always when stderr is a terminal)\n"
         "  --report FILE.html        an HTML report with charts [default: "
         "none]\n\n"
         "Exit status: 0 done as asked; 1 the target could not be reached,\n"
         "the rate achieved was below 90 % of the rate asked, or requests\n"
         "went unanswered; 2 usage errors.\n";
}

int loadtest_command(const std::vector<std::string>& args,
                     const std::string& self) {
  for (auto& a : args)
    if (a == "--help" || a == "-h") {
      std::cout << usage_text();
      return 0;
    }
  cli c;
  target_url target;
  std::string secret;
  try {
    c = parse_cli(args);
    if (!c.target.empty()) {
      target = parse_target(c.target);
      if (!c.secret_file.empty()) {
        secret = read_secret_file(c.secret_file);
      } else if (auto env = std::getenv("GITHUB_WEBHOOK_SECRET"); env && *env) {
        secret = env;
      } else {
        throw usage_error("no webhook secret: set GITHUB_WEBHOOK_SECRET or "
                          "pass --webhook-secret-file with the target's "
                          "secret");
      }
    }
  } catch (const usage_error& e) {
    std::cerr << "heaven loadtest: " << e.what()
              << " (try heaven loadtest --help)\n";
    return 2;
  }
  std::optional<local_heaven> local;
  try {
    if (c.target.empty()) {
      secret = random_hex(32);
      local.emplace(self, secret);
      target.host = "127.0.0.1";
      target.port = local->port();
      target.host_header = "127.0.0.1:" + std::to_string(local->port());
      c.target = "http://" + target.host_header + target.path;
    }
    std::random_device rd;
    uint64_t run_id = (uint64_t{rd()} << 32) | rd();
    request_maker maker{target.host_header, target.path,
                        *parse_event_choice(c.event), secret, run_id};
    run_options opts;
    opts.host = target.host;
    opts.port = target.port;
    opts.rate = c.rate;
    opts.duration_s = c.duration_s;
    opts.connections = c.connections;
    opts.timeout_s = c.timeout_s;
    opts.progress_tty = isatty(2) == 1;
    opts.progress = c.progress || opts.progress_tty;
    auto results = run_load(opts, maker);
    if (local)
      local->stop();
    run_description d{c.target,     c.event,       c.rate,
                      c.duration_s, c.connections, local.has_value()};
    if (c.json)
      std::cout << summary_json(d, results) << std::endl;
    else
      std::cout << summary_text(d, results) << std::flush;
    if (!c.report.empty())
      write_file(c.report, html_report(d, results));
    int status = 0;
    auto complain = [&](const std::string& msg) {
      std::cerr << "heaven loadtest: " << msg << "\n";
      status = 1;
    };
    if (results.interrupted)
      complain("interrupted: the run was cut short");
    if (results.sent == 0)
      complain(
        "no request could be sent to " + c.target
        + (results.first_error.empty() ? "" : ": " + results.first_error));
    if (c.rate > 0 && !results.interrupted
        && results.achieved_rate < rate_tolerance * c.rate) {
      char msg[200];
      std::snprintf(msg, sizeof(msg),
                    "the rate asked was not reached: %.1f/s of %.1f/s "
                    "(below %.0f %%); more --connections, or the target "
                    "is saturated",
                    results.achieved_rate, c.rate, rate_tolerance * 100);
      complain(msg);
    }
    if (results.errors > 0)
      complain(std::to_string(results.errors)
               + " request(s) got no answer (first: " + results.first_error
               + ")");
    return status;
  } catch (const std::exception& e) {
    std::cerr << "heaven loadtest: " << e.what() << "\n";
    if (!local && !c.target.empty())
      std::cerr << "heaven loadtest: is the target up at " << c.target << "?\n";
    return 1;
  }
}

} // namespace heaven::loadtest
