// heaven_bench_instances: several heaven instances on one PostgreSQL against
// one instance on SQLite (issue 14, "Benchmark"). For each configuration
// (SQLite x1, PostgreSQL x1, x2, x3) it measures
//   intake      signed deployment_status events (a delivery id each) from
//               keep-alive connections spread round-robin over the
//               instances, closed loop: answers/s, p50 and p99;
//   end to end  N shell deployments (an app each, a real local git
//               repository, GitHub played by the loadtest stand-in) sent
//               over the same kind of connections: the time from the first
//               webhook to the last terminal status, deployments/s, and how
//               many each instance ran (deployments.owner).
// Every configuration gets fresh instances and, for PostgreSQL, a fresh
// throwaway cluster (tools/support/pg_cluster: fsync off). It prints a
// table; it asserts nothing. See tools/README.md, "Several instances".

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <csignal>
#include <unistd.h>

#include "actors/pg.hpp"
#include "tools/loadtest_engine.hpp"
#include "tools/loadtest_events.hpp"
#include "tools/loadtest_github.hpp"
#include "tools/loadtest_local.hpp"
#include "tools/support/pg_cluster.hpp"

namespace fs = std::filesystem;
namespace lt = heaven::loadtest;

namespace {

struct options {
  std::string binary = HEAVEN_BINARY;
  double intake_s = 10;
  lt::event_choice intake_event = lt::event_choice::deployment_status;
  int connections = 64;
  int deployments = 200;
  double deploy_timeout_s = 600;
  /// "sqlite:1", "pg:1", "pg:2", "pg:3" by default.
  std::vector<std::pair<std::string, int>> configs;
  int runs = 1;
};

void usage() {
  std::cout
    << "usage: heaven_bench_instances [--binary build/heaven]\n"
       "         [--intake SECONDS] [--connections C] [--deployments N]\n"
       "         [--deploy-timeout SECONDS] [--runs R]\n"
       "         [--intake-event deployment_status|status|ping]\n"
       "         [--config sqlite:1|pg:K ...]\n"
       "  intake      C keep-alive connections (default 64), spread over the\n"
       "              instances, send deployment_status events for SECONDS\n"
       "              (default 10); --intake-event another kind\n"
       "  end to end  N shell deployments (default 200); the time from the\n"
       "              first webhook to the last terminal status\n"
       "  --config    a configuration to run (repeatable; default sqlite:1\n"
       "              pg:1 pg:2 pg:3); R runs of each (default 1)\n";
}

std::optional<options> parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc)
        return std::nullopt;
      return std::string{argv[++i]};
    };
    auto v = next();
    if (!v)
      return std::nullopt;
    char* end = nullptr;
    if (a == "--binary") {
      o.binary = *v;
      continue;
    } else if (a == "--intake") {
      o.intake_s = std::strtod(v->c_str(), &end);
    } else if (a == "--intake-event") {
      auto choice = lt::parse_event_choice(*v);
      if (!choice || *choice == lt::event_choice::mix
          || *choice == lt::event_choice::deployment)
        return std::nullopt;
      o.intake_event = *choice;
      continue;
    } else if (a == "--connections") {
      o.connections = static_cast<int>(std::strtol(v->c_str(), &end, 10));
    } else if (a == "--deployments") {
      o.deployments = static_cast<int>(std::strtol(v->c_str(), &end, 10));
    } else if (a == "--deploy-timeout") {
      o.deploy_timeout_s = std::strtod(v->c_str(), &end);
    } else if (a == "--runs") {
      o.runs = static_cast<int>(std::strtol(v->c_str(), &end, 10));
    } else if (a == "--config") {
      auto colon = v->find(':');
      if (colon == std::string::npos)
        return std::nullopt;
      auto store = v->substr(0, colon);
      auto count = v->substr(colon + 1);
      int k = static_cast<int>(std::strtol(count.c_str(), &end, 10));
      if ((store != "sqlite" && store != "pg") || *end != '\0' || k < 1
          || (store == "sqlite" && k != 1))
        return std::nullopt;
      o.configs.emplace_back(store, k);
      continue;
    } else {
      return std::nullopt;
    }
    if (end == nullptr || *end != '\0')
      return std::nullopt;
  }
  if (o.intake_s <= 0 || o.connections < 1 || o.deployments < 1 || o.runs < 1
      || o.deploy_timeout_s <= 0)
    return std::nullopt;
  if (o.configs.empty())
    o.configs = {{"sqlite", 1}, {"pg", 1}, {"pg", 2}, {"pg", 3}};
  return o;
}

uint64_t random_run_id() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

/// The store and heaven instances of one configuration: a fresh cluster
/// for PostgreSQL, fresh data directories. Destroyed in reverse: the
/// instances stop before the cluster.
struct setup {
  std::optional<heaven::test::pg_cluster> pg;
  std::vector<std::unique_ptr<lt::local_heaven>> instances;

  setup(const options& o, const std::string& store, int count,
        const std::string& secret, std::vector<std::string> env) {
    if (store == "pg") {
      pg.emplace();
      env.push_back("HEAVEN_DATABASE_URL=" + pg->url());
    }
    for (int i = 0; i < count; ++i)
      instances.push_back(
        std::make_unique<lt::local_heaven>(o.binary, secret, env));
  }

  ~setup() {
    for (auto& h : instances)
      h->stop();
  }

  /// Aims `opts` at every instance, connections round-robin.
  void aim(lt::run_options& opts) const {
    opts.host = "127.0.0.1";
    opts.port = instances.front()->port();
    for (std::size_t i = 1; i < instances.size(); ++i)
      opts.more_targets.push_back({"127.0.0.1", instances[i]->port()});
  }

  std::string host_header() const {
    return "127.0.0.1:" + std::to_string(instances.front()->port());
  }
};

struct intake_figures {
  uint64_t ok = 0;
  uint64_t other = 0;
  uint64_t errors = 0;
  double per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

intake_figures intake(const options& o, const std::string& store, int count) {
  auto secret = lt::random_hex(32);
  setup s{o, store, count, secret, {}};
  lt::request_maker maker{s.host_header(), "/events", o.intake_event, secret,
                          random_run_id()};
  lt::run_options opts;
  s.aim(opts);
  opts.duration_s = o.intake_s;
  opts.connections = o.connections;
  auto r = lt::run_load(opts, maker);
  intake_figures f;
  for (auto& [status, n] : r.answers)
    (status >= 200 && status < 300 ? f.ok : f.other) += n;
  f.errors = r.errors;
  f.per_s = r.elapsed_seconds > 0 ? f.ok / r.elapsed_seconds : 0;
  f.p50_ms = r.latency.percentile(50) / 1000.0;
  f.p99_ms = r.latency.percentile(99) / 1000.0;
  return f;
}

struct e2e_figures {
  uint64_t accepted = 0;
  uint64_t succeeded = 0;
  uint64_t unfinished = 0;
  double seconds = 0;
  double per_s = 0;
  /// Median time from a webhook to its terminal status.
  double p50_s = 0;
  /// Deployments each instance ran, most first.
  std::vector<uint64_t> spread;
};

e2e_figures end_to_end(const options& o, const std::string& store, int count) {
  auto secret = lt::random_hex(32);
  lt::temp_dir work{"heaven-bench-instances-"};
  lt::github_stand_in github{work.path};
  setup s{o,
          store,
          count,
          secret,
          {
            "GITHUB_TOKEN=" + std::string{lt::stand_in_github_token},
            "OCTOKIT_API_ENDPOINT=" + github.base_url(),
            "HEAVEN_POLL_INTERVAL_MS=100",
          }};
  lt::request_maker maker{s.host_header(), "/events",
                          lt::event_choice::deployment, secret,
                          random_run_id()};
  maker.set_deploy_plan({{"shell"}, github.clone_url(), github.sha()});
  lt::run_options opts;
  s.aim(opts);
  opts.connections = std::min(o.connections, o.deployments);
  // Open loop, all N due within 10 ms: they leave as fast as the
  // connections let them.
  opts.duration_s = 0.01;
  opts.rate = o.deployments / opts.duration_s;
  opts.timeout_s = 60;
  std::map<int64_t, lt::accepted_deployment> accepted;
  opts.on_answer = [&](uint64_t n, int64_t sent_ns, int status) {
    if (status == 201)
      accepted[maker.deployment_id(n)] = {"shell", sent_ns};
  };
  lt::run_load(opts, maker);
  e2e_figures f;
  f.accepted = accepted.size();
  auto figures = lt::settle(github, accepted, o.deploy_timeout_s, f.unfinished);
  f.succeeded = figures["shell"].endings["success"];
  f.p50_s = figures["shell"].to_terminal.percentile(50) / 1e6;
  int64_t first = INT64_MAX;
  int64_t last = 0;
  for (auto& [id, d] : accepted)
    first = std::min(first, d.sent_ns);
  for (auto& [id, seen] : github.statuses()) {
    if (!accepted.count(id))
      continue;
    for (auto& st : seen)
      if (lt::terminal_state(st.state))
        last = std::max(last, st.at_ns);
  }
  if (last > first) {
    f.seconds = static_cast<double>(last - first) / 1e9;
    f.per_s = static_cast<double>(f.accepted - f.unfinished) / f.seconds;
  }
  if (s.pg) {
    heaven::pg::connection conn{s.pg->url()};
    auto res = conn.query("SELECT count(*) FROM deployments "
                          "GROUP BY owner ORDER BY 1 DESC");
    for (int i = 0; i < res.rows(); ++i)
      f.spread.push_back(static_cast<uint64_t>(res.int64(i, 0)));
  } else {
    f.spread.push_back(f.accepted);
  }
  return f;
}

std::string spread_text(const std::vector<uint64_t>& spread) {
  std::string out;
  for (auto n : spread)
    out += (out.empty() ? "" : "/") + std::to_string(n);
  return out;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  if (!o) {
    usage();
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::printf("%-10s %3s | %9s %8s %8s %6s | %5s %7s %7s %7s %-12s\n", "store",
              "k", "events/s", "p50 ms", "p99 ms", "non2xx", "deps", "seconds",
              "deps/s", "p50 s", "ran by");
  std::fflush(stdout);
  int rc = 0;
  for (int run = 0; run < o->runs; ++run)
    for (auto& [store, count] : o->configs) {
      try {
        auto in = intake(*o, store, count);
        auto e2e = end_to_end(*o, store, count);
        std::printf("%-10s %3d | %9.0f %8.1f %8.1f %6llu | %5llu %7.2f "
                    "%7.1f %7.2f %-12s\n",
                    store == "pg" ? "postgresql" : "sqlite", count, in.per_s,
                    in.p50_ms, in.p99_ms,
                    static_cast<unsigned long long>(in.other + in.errors),
                    static_cast<unsigned long long>(e2e.accepted), e2e.seconds,
                    e2e.per_s, e2e.p50_s, spread_text(e2e.spread).c_str());
        if (e2e.accepted != static_cast<uint64_t>(o->deployments)
            || e2e.unfinished > 0 || e2e.succeeded != e2e.accepted)
          std::printf("  (of %d deployments %llu accepted, %llu succeeded, "
                      "%llu unfinished)\n",
                      o->deployments,
                      static_cast<unsigned long long>(e2e.accepted),
                      static_cast<unsigned long long>(e2e.succeeded),
                      static_cast<unsigned long long>(e2e.unfinished));
        std::fflush(stdout);
      } catch (const std::exception& e) {
        std::cerr << "heaven_bench_instances: " << store << " x" << count
                  << ": " << e.what() << "\n";
        rc = 1;
      }
    }
  return rc;
}
