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
#include "tools/loadtest_github.hpp"
#include "tools/loadtest_local.hpp"
#include "tools/loadtest_report.hpp"

namespace heaven::loadtest {

namespace fs = std::filesystem;

namespace {

/// Below this share of the asked rate, a run did not do what was asked.
constexpr double rate_tolerance = 0.9;

struct cli {
  std::string target;
  /// Further --target URLs (instances of one service sharing a store).
  std::vector<std::string> more_targets;
  std::string event = "deployment_status";
  double rate = 0;
  double duration_s = 10;
  int connections = 64;
  double timeout_s = 10;
  std::string secret_file;
  bool json = false;
  bool progress = false;
  std::string report;
  bool stand_in = false;
  bool event_set = false;
  std::vector<std::string> providers = {"shell", "heroku"};
  /// How long deployments may take to end (--github-stand-in).
  double settle_s = 120;
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
      (c.target.empty() ? c.target : c.more_targets.emplace_back()) = value();
    } else if (flag == "--event") {
      c.event = value();
      c.event_set = true;
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
    } else if (flag == "--duration" || flag == "--timeout"
               || flag == "--deploy-timeout") {
      auto text = value();
      auto d = parse_duration(text);
      if (!d)
        throw usage_error("bad " + flag + " '" + text + "' (e.g. 60s, 2m)");
      (flag == "--duration"  ? c.duration_s
       : flag == "--timeout" ? c.timeout_s
                             : c.settle_s)
        = *d;
    } else if (flag == "--providers") {
      auto text = value();
      c.providers.clear();
      for (std::size_t at = 0; at <= text.size();) {
        auto comma = std::min(text.find(',', at), text.size());
        auto p = text.substr(at, comma - at);
        if (p != "shell" && p != "heroku")
          throw usage_error("unknown provider '" + p
                            + "' in --providers (shell, heroku)");
        c.providers.push_back(p);
        at = comma + 1;
      }
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
    } else if ((flag == "--json" || flag == "--progress"
                || flag == "--github-stand-in")
               && !inline_value) {
      (flag == "--json"       ? c.json
       : flag == "--progress" ? c.progress
                              : c.stand_in)
        = true;
    } else {
      throw usage_error("unknown argument '" + args[i] + "'");
    }
  }
  if (c.stand_in && !c.target.empty())
    throw usage_error("--github-stand-in plays GitHub for the heaven "
                      "loadtest starts itself: it cannot go with --target");
  if (c.stand_in && !c.event_set)
    c.event = "deployment";
  if (c.stand_in && c.event != "deployment" && c.event != "mix")
    throw usage_error("--github-stand-in measures deployments: --event "
                      "deployment or mix");
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
         "                            (repeatable: instances sharing one\n"
         "                            database; connections go to each in\n"
         "                            turn)\n"
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
         "none]\n"
         "  --github-stand-in         (without --target) also play GitHub's\n"
         "                            and Heroku's APIs for the heaven it\n"
         "                            starts, and tell the time from webhook\n"
         "                            to each deployment status, per provider\n"
         "                            (--event deployment by default)\n"
         "  --providers LIST          the deployments' providers, in turn\n"
         "                            [default: shell,heroku]\n"
         "  --deploy-timeout D        how long deployments may take to end\n"
         "                            [default: 120s]\n\n"
         "Exit status: 0 done as asked; 1 the target could not be reached,\n"
         "the rate achieved was below 90 % of the rate asked, requests went\n"
         "unanswered, or deployments did not end; 2 usage errors.\n";
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
  std::vector<endpoint> more_targets;
  std::string secret;
  try {
    c = parse_cli(args);
    if (!c.target.empty()) {
      target = parse_target(c.target);
      for (auto& url : c.more_targets) {
        auto t = parse_target(url);
        if (t.path != target.path)
          throw usage_error("every --target must have the same path: '" + url
                            + "'");
        more_targets.push_back({t.host, t.port});
      }
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
  // Destroyed in reverse: heaven stops before its stand-in and its files.
  std::optional<temp_dir> work;
  std::optional<github_stand_in> github;
  std::optional<local_heaven> local;
  try {
    std::vector<std::string> heaven_env;
    if (c.stand_in) {
      work.emplace("heaven-loadtest-github-");
      github.emplace(work->path);
      heaven_env = {
        "GITHUB_TOKEN=" + std::string{stand_in_github_token},
        "OCTOKIT_API_ENDPOINT=" + github->base_url(),
        "HEROKU_API_KEY=" + std::string{stand_in_heroku_key},
        "HEAVEN_HEROKU_ENDPOINT=" + github->base_url(),
        "HEAVEN_POLL_INTERVAL_MS=100",
      };
    }
    if (c.target.empty()) {
      secret = random_hex(32);
      local.emplace(self, secret, heaven_env);
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
    opts.more_targets = more_targets;
    opts.rate = c.rate;
    opts.duration_s = c.duration_s;
    opts.connections = c.connections;
    opts.timeout_s = c.timeout_s;
    opts.progress_tty = isatty(2) == 1;
    opts.progress = c.progress || opts.progress_tty;
    std::map<int64_t, accepted_deployment> accepted;
    if (github) {
      maker.set_deploy_plan({c.providers, github->clone_url(), github->sha()});
      opts.on_answer = [&](uint64_t n, int64_t sent_ns, int status) {
        if (status == 201 && maker.event_of(n) == "deployment")
          accepted[maker.deployment_id(n)] = {maker.provider_of(n), sent_ns};
      };
    }
    auto results = run_load(opts, maker);
    deployment_figures deployments;
    uint64_t unfinished = 0;
    if (github)
      deployments = settle(*github, accepted, c.settle_s, unfinished);
    if (local)
      local->stop();
    run_description d{c.target,     c.event,       c.rate,
                      c.duration_s, c.connections, local.has_value()};
    if (c.json)
      std::cout << summary_json(d, results, deployments) << std::endl;
    else
      std::cout << summary_text(d, results, deployments) << std::flush;
    if (!c.report.empty())
      write_file(c.report, html_report(d, results, deployments));
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
    if (unfinished > 0)
      complain(std::to_string(unfinished)
               + " deployment(s) had no terminal status within "
                 "--deploy-timeout");
    return status;
  } catch (const std::exception& e) {
    std::cerr << "heaven loadtest: " << e.what() << "\n";
    if (!local && !c.target.empty())
      std::cerr << "heaven loadtest: is the target up at " << c.target << "?\n";
    return 1;
  }
}

} // namespace heaven::loadtest
