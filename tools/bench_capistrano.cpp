// heaven_bench_capistrano: the wall time of deploying one release to N
// servers with heaven's native capistrano provider (providers/
// capistrano_native.hpp, run in a caf::actor_system of this process) and with
// the real `cap production deploy` (Capistrano 3.17), both against the same N
// real OpenSSH servers on 127.0.0.1 and the same git repository, each server
// deploying into a directory of its own. It reports figures; it asserts
// nothing. See tools/README.md.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include "base/payload_config.hpp"
#include "providers/capistrano_native.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/recorder.hpp"
#include "tools/support/sshd.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// What the command line asks for.
struct options {
  /// Server counts to measure, in order.
  std::vector<int> hosts{1, 4, 16};
  /// Repetitions per server count and tool.
  int repetitions = 3;
  /// Keep the temp dir (layouts, cap projects, cap output).
  bool keep = false;
  /// Which tools to measure.
  bool heaven = true;
  bool cap = true;
};

void usage() {
  std::cerr << "usage: heaven_bench_capistrano [--hosts 1,4,16] "
               "[--repetitions 3] [--tools heaven,cap] [--keep]\n";
}

/// Parses "1,4,16" into counts; empty when a part is not a positive number.
std::vector<int> parse_counts(const std::string& text) {
  std::vector<int> counts;
  std::stringstream in{text};
  for (std::string part; std::getline(in, part, ',');) {
    try {
      size_t used = 0;
      int n = std::stoi(part, &used);
      if (used != part.size() || n < 1)
        return {};
      counts.push_back(n);
    } catch (const std::exception&) {
      return {};
    }
  }
  return counts;
}

/// The options of `argv`, or nothing when they are wrong.
std::optional<options> parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc)
        return std::nullopt;
      return std::string{argv[++i]};
    };
    if (a == "--hosts") {
      auto v = next();
      if (!v || (o.hosts = parse_counts(*v)).empty())
        return std::nullopt;
    } else if (a == "--repetitions") {
      auto v = next();
      if (!v || (o.repetitions = std::atoi(v->c_str())) < 1)
        return std::nullopt;
    } else if (a == "--tools") {
      auto v = next();
      if (!v)
        return std::nullopt;
      o.heaven = o.cap = false;
      std::stringstream in{*v};
      for (std::string tool; std::getline(in, tool, ',');) {
        if (tool == "heaven")
          o.heaven = true;
        else if (tool == "cap")
          o.cap = true;
        else
          return std::nullopt;
      }
    } else if (a == "--keep") {
      o.keep = true;
    } else {
      return std::nullopt;
    }
  }
  return o;
}

std::string sh(const std::string& cmd) {
  return heaven::test::run_checked(cmd);
}

/// Seconds since `start`.
double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// The median of `xs` (not empty).
double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

/// "a / b / c" of `xs` with two decimals.
std::string list(const std::vector<double>& xs) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  for (size_t i = 0; i < xs.size(); ++i)
    out << (i ? " / " : "") << xs[i];
  return out.str();
}

/// The servers, the repository and what both tools are configured with.
struct bench {
  heaven::test::temp_dir tmp;
  std::vector<std::unique_ptr<heaven::test::sshd_server>> servers;
  fs::path repo = tmp.path / "repo";
  fs::path known_hosts = tmp.path / "known_hosts";
  fs::path key = tmp.path / "id_ed25519";
  std::string sha;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  /// Deploy directories made so far (a counter keeps names unique).
  int dirs = 0;
  /// Problems seen (a deploy failed or left a wrong layout).
  std::vector<std::string> problems;

  /// Starts `count` sshd's that all let in the first one's client key.
  explicit bench(int count) {
    std::vector<std::string> lines;
    for (int i = 0; i < count; ++i) {
      servers.push_back(std::make_unique<heaven::test::sshd_server>());
      if (i > 0)
        servers.back()->authorize(servers.front()->client_key().public_key);
      lines.push_back(servers.back()->host_key_line());
    }
    heaven::test::write_known_hosts(known_hosts, lines);
    std::ofstream{key} << servers.front()->client_key().private_key;
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    make_repo();
  }

  /// A repository of a small app (a few files) with one commit on main.
  void make_repo() {
    fs::create_directories(repo / "config");
    fs::create_directories(repo / "lib");
    std::ofstream{repo / "VERSION"} << "1\n";
    std::ofstream{repo / "config" / "app.rb"} << "# app\n";
    for (int i = 0; i < 20; ++i)
      std::ofstream{repo / "lib" / ("part" + std::to_string(i) + ".rb")}
        << "# part " << i << "\n"
        << std::string(2000, 'x') << "\n";
    sh("git -C " + repo.string() + " init -q --initial-branch=main");
    sh("cd " + repo.string()
       + " && git add -A && git -c user.name=b -c user.email=b@b commit -q "
         "-m v1");
    sha = sh("git -C " + repo.string() + " rev-parse HEAD");
  }

  /// A fresh deploy_to per server (first `n`), with the shared file both
  /// tools link into every release.
  std::vector<fs::path> fresh_dirs(const std::string& tool, int n) {
    std::vector<fs::path> result;
    for (int i = 0; i < n; ++i) {
      auto d = tmp.path / "deploy"
               / (tool + "-" + std::to_string(++dirs) + "-"
                  + std::to_string(servers[i]->port()));
      fs::create_directories(d / "shared" / "config");
      std::ofstream{d / "shared" / "config" / "database.yml"} << "db: x\n";
      result.push_back(d);
    }
    return result;
  }

  /// heaven's payload.config: the first dirs.size() servers, each with its
  /// deploy_to, and the settings of the cap project below.
  json heaven_config(const std::vector<fs::path>& dirs_) const {
    json hosts = json::array();
    for (size_t i = 0; i < dirs_.size(); ++i) {
      auto& s = *servers[i];
      hosts.push_back(
        {{"host", s.user() + "@" + s.host() + ":" + std::to_string(s.port())},
         {"deploy_to", dirs_[i].string()}});
    }
    return {{"provider", "capistrano"},
            {"hosts", hosts},
            {"keep_releases", 5},
            {"linked_files", {"config/database.yml"}},
            {"linked_dirs", {"log", "tmp/pids"}},
            {"after_publish", {"echo restarted > tmp/pids/restart.txt"}}};
  }

  /// One deploy with heaven's native provider; its wall time in seconds,
  /// or a negative number when it did not succeed.
  double heaven_deploy(const std::vector<fs::path>& dirs_) {
    auto rec = std::make_shared<heaven::test::record>();
    heaven::deployment_actor sink = sys.spawn(heaven::test::deployment_recorder,
                                              rec);
    heaven::provider_job job;
    job.id = 1;
    job.request.repo = "bench/app";
    job.request.clone_url = "file://" + repo.string();
    job.request.sha = sha;
    job.request.ref = "main";
    job.request.environment = "production";
    job.request.task = "deploy";
    job.request.actor = "bench";
    job.request.payload_json = json{{"config", heaven_config(dirs_)}}.dump();
    job.config = heaven::read_payload_config(job.request);
    heaven::remote_config c;
    c.known_hosts = known_hosts.string();
    c.private_key = servers.front()->client_key().private_key;
    auto start = clock_type::now();
    sys.spawn(heaven::capistrano_native, job, sink, c);
    if (!rec->wait([&] { return !rec->results.empty(); }, 600s)) {
      problems.push_back("heaven: no outcome within 600 s");
      return -1;
    }
    auto took = seconds_since(start);
    std::lock_guard<std::mutex> guard{rec->mx};
    auto& out = rec->results.front();
    if (out.state != heaven::deploy_state::success) {
      problems.push_back("heaven: " + to_string(out.state) + ": "
                         + out.description);
      return -1;
    }
    return took;
  }

  /// Capistrano's project for the first dirs_.size() servers: one `server`
  /// line per sshd with its own `deploy_to` property, which the patch at
  /// the top of deploy.rb makes Capistrano's paths use (see tools/README.md).
  fs::path cap_project(const std::vector<fs::path>& dirs_) {
    auto p = tmp.path / ("cap-project-" + std::to_string(++dirs));
    fs::create_directories(p / "config" / "deploy");
    std::ofstream{p / "Capfile"} << "require 'capistrano/setup'\n"
                                    "require 'capistrano/deploy'\n"
                                    "require 'capistrano/scm/git'\n"
                                    "install_plugin Capistrano::SCM::Git\n";
    std::ofstream{p / "config" / "deploy.rb"}
      << "# Per-server deploy_to: inside an `on` block (and in plugins,\n"
         "# which run inside one) the current SSHKit backend names the host.\n"
         "# repo_path's default is a lambda whose first value fetch would\n"
         "# keep for every host.\n"
         "module Capistrano::DSL::Paths\n"
         "  def deploy_to\n"
         "    b = SSHKit::Backend.current\n"
         "    (b && b.host.properties.fetch(:deploy_to)) || fetch(:deploy_to)\n"
         "  end\n"
         "  def repo_path\n"
         "    deploy_path.join('repo')\n"
         "  end\n"
         "  def release_path\n"
         "    r = fetch(:release_path)\n"
         "    r ? releases_path.join(Pathname.new(r.to_s).basename) "
         ": current_path\n"
         "  end\n"
         "end\n"
         "set :application, 'app'\n"
         "set :repo_url, 'file://"
      << repo.string() << "'\n"
      << "set :deploy_to, '" << (tmp.path / "unused").string() << "'\n"
      << "set :branch, 'main'\n"
         "set :keep_releases, 5\n"
         "set :local_user, 'bench'\n"
         "set :format_options, log_file: nil\n"
         "append :linked_files, 'config/database.yml'\n"
         "append :linked_dirs, 'log', 'tmp/pids'\n"
         "set :ssh_options, { keys: ['"
      << key.string() << "'], "
      << "auth_methods: %w(publickey), user_known_hosts_file: '"
      << known_hosts.string() << "', verify_host_key: :always }\n"
      << "namespace :deploy do\n"
         "  after :published, :restart_app do\n"
         "    on roles(:app) do\n"
         "      within current_path do\n"
         "        execute :sh, '-c', "
         "%q('echo restarted > tmp/pids/restart.txt')\n"
         "      end\n"
         "    end\n"
         "  end\n"
         "end\n";
    std::ofstream stage{p / "config" / "deploy" / "production.rb"};
    for (size_t i = 0; i < dirs_.size(); ++i) {
      auto& s = *servers[i];
      stage << "server '127.0.0.1', user: '" << s.user()
            << "', port: " << s.port() << ", roles: %w{app}, deploy_to: '"
            << dirs_[i].string() << "'\n";
    }
    return p;
  }

  /// One `cap production deploy` in `project`; its wall time in seconds,
  /// or a negative number when it failed.
  double cap_deploy(const fs::path& project) {
    auto start = clock_type::now();
    auto r = heaven::test::run_command("cd " + project.string()
                                       + " && cap production deploy");
    auto took = seconds_since(start);
    std::ofstream{project / "cap-output.txt", std::ios::app} << r.out;
    if (r.status != 0) {
      problems.push_back("cap exited with " + std::to_string(r.status) + ":\n"
                         + r.out);
      return -1;
    }
    return took;
  }

  /// Checks every dir holds `releases` releases and `current` has the sha.
  void check_layout(const std::string& tool, const std::vector<fs::path>& dirs_,
                    size_t releases) {
    for (auto& d : dirs_) {
      size_t count = 0;
      if (fs::exists(d / "releases"))
        for ([[maybe_unused]] auto& e : fs::directory_iterator(d / "releases"))
          ++count;
      std::ifstream in{d / "current" / "REVISION"};
      std::string revision;
      std::getline(in, revision);
      if (count != releases || revision != sha
          || !fs::is_symlink(d / "current" / "config" / "database.yml")
          || !fs::exists(d / "current" / "tmp" / "pids" / "restart.txt"))
        problems.push_back(tool + ": " + d.string() + " has "
                           + std::to_string(count) + " releases (expected "
                           + std::to_string(releases) + "), REVISION '"
                           + revision
                           + "', or misses a link or the restart "
                             "mark");
    }
  }
};

/// Times of one tool at one server count.
struct times {
  std::vector<double> first;
  std::vector<double> second;
};

/// Releases are named by the second: wait before the next deploy to the
/// same directories so it makes a new one.
void next_second() {
  std::this_thread::sleep_for(1100ms);
}

/// Runs both tools `o.repetitions` times at `n` servers.
std::pair<times, times> measure(bench& b, int n, const options& o) {
  times heaven_t, cap_t;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    std::ostringstream line;
    line << "N=" << n << " repetition " << rep + 1 << ":";
    if (o.heaven) {
      auto mine = b.fresh_dirs("heaven", n);
      next_second();
      heaven_t.first.push_back(b.heaven_deploy(mine));
      b.check_layout("heaven", mine, 1);
      next_second();
      heaven_t.second.push_back(b.heaven_deploy(mine));
      b.check_layout("heaven", mine, 2);
      line << " heaven " << heaven_t.first.back() << " s / "
           << heaven_t.second.back() << " s";
    }
    if (o.cap) {
      auto theirs = b.fresh_dirs("cap", n);
      auto project = b.cap_project(theirs);
      next_second();
      cap_t.first.push_back(b.cap_deploy(project));
      b.check_layout("cap", theirs, 1);
      next_second();
      cap_t.second.push_back(b.cap_deploy(project));
      b.check_layout("cap", theirs, 2);
      line << " cap " << cap_t.first.back() << " s / " << cap_t.second.back()
           << " s";
    }
    std::cerr << line.str() << "\n";
  }
  return {heaven_t, cap_t};
}

int run_bench(const options& o) {
  int most = *std::max_element(o.hosts.begin(), o.hosts.end());
  std::cout << "starting " << most << " sshd's on 127.0.0.1\n";
  bench b{most};
  if (o.keep) {
    // temp_dir removes its path; keep a copy next to it instead.
    std::cout << "keeping a copy of " << b.tmp.path << " at "
              << b.tmp.path.string() + "-kept"
              << " when done\n";
  }
  std::cout << "cap: " << sh("cap --version") << "; "
            << std::thread::hardware_concurrency() << " cores; "
            << o.repetitions << " repetitions\n";
  // What one remote command costs here, whatever runs it: OpenSSH's own
  // client running `true` (sign-in, the login shell's start-up, exit).
  std::vector<double> round_trips;
  for (int i = 0; i < 3; ++i) {
    auto start = clock_type::now();
    sh("ssh -q -i " + b.key.string() + " -p "
       + std::to_string(b.servers.front()->port())
       + " -o BatchMode=yes -o UserKnownHostsFile=" + b.known_hosts.string()
       + " " + b.servers.front()->user() + "@127.0.0.1 true");
    round_trips.push_back(seconds_since(start));
  }
  std::cout << std::fixed << std::setprecision(2)
            << "one remote command (ssh ... true): " << median(round_trips)
            << " s (" << list(round_trips) << ")\n";
  std::cout << "| N | tool | first deploy median (runs) s | second deploy "
               "median (runs) s |\n|---|---|---|---|\n";
  std::vector<std::string> rows;
  for (int n : o.hosts) {
    auto [h, c] = measure(b, n, o);
    std::ostringstream row;
    row << std::fixed << std::setprecision(2);
    if (o.heaven)
      row << "| " << n << " | heaven native | " << median(h.first) << " ("
          << list(h.first) << ") | " << median(h.second) << " ("
          << list(h.second) << ") |\n";
    if (o.cap)
      row << "| " << n << " | cap 3.17 | " << median(c.first) << " ("
          << list(c.first) << ") | " << median(c.second) << " ("
          << list(c.second) << ") |\n";
    std::cout << row.str() << std::flush;
  }
  if (b.problems.empty()) {
    std::cout << "every deploy succeeded and left the expected layout\n";
  } else {
    std::cout << b.problems.size()
              << " problems (negative times are failed "
                 "deploys):\n";
    for (auto& p : b.problems)
      std::cout << "- " << p << "\n";
  }
  if (o.keep)
    sh("cp -a " + b.tmp.path.string() + " " + b.tmp.path.string() + "-kept");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  if (!o) {
    usage();
    return 2;
  }
  try {
    return run_bench(*o);
  } catch (const std::exception& e) {
    std::cerr << "heaven_bench_capistrano: " << e.what() << "\n";
    return 1;
  }
}
