// Fault tests of heaven's durable lifecycle through the real `heaven serve`
// binary: each case forces one fault — SIGKILL and SIGTERM in the middle of
// a burst, a GitHub outage with lost and late answers, a full disk, a
// provider that cannot read its config, an SSH server killed mid-command, a
// daemon that outlives a killed heaven — and then checks every deployment
// the same way: GitHub keeps exactly one terminal status for it, after
// `queued` and `in_progress` and in that order, nothing posted twice; its
// deploy script ran at most once (each run appends to a marker file of its
// own); none of its processes still ran when GitHub heard how it ended;
// and none is left afterwards (the scripts start a background `sleep` and
// a double-forked `setsid` daemon with arguments no other process has, and
// note their pids in the marker; zombies don't count).
//
// GitHub is a double over a real socket that keeps the statuses it accepts
// and lists them back as GitHub does (newest first), so that heaven's
// look-ups before a second attempt see what really arrived; it can fail
// each request on the test's orders. Figures (times, counts) are reported
// with BOOST_TEST_MESSAGE (`--log_level=message`); nothing is asserted on
// time. The long case (a 65 s outage) says so in its name.

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/sshd.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

using steady = std::chrono::steady_clock;

/// What a deployment left running by a killed heaven ends with.
const std::string restarted = "heaven restarted during this deployment; its "
                              "outcome is unknown: deploy again";

/// What a deployment still running when the drain ends ends with.
const std::string stopped = "heaven was stopped during the deployment";

/// The wall clock in Unix milliseconds (what `date +%s%N` also reads).
int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

void pause_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

/// Polls `pred` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout) {
  auto deadline = steady::now() + timeout;
  while (!pred()) {
    if (steady::now() > deadline)
      return false;
    pause_ms(20);
  }
  return true;
}

bool terminal(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : ",") + x;
  return "[" + out + "]";
}

/// A number of seconds no other process on the machine sleeps for.
std::string unique_seconds() {
  static int n = 0;
  return std::to_string(6000000 + (::getpid() % 100000) * 40 + ++n);
}

// -- processes ----------------------------------------------------------------

/// The state letter of `pid` in /proc ('Z' for a zombie), or 0 when gone.
char proc_state(pid_t pid) {
  auto stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size())
    return 0;
  return stat[paren + 2];
}

/// True while `pid` runs: exists and is not a zombie (this machine's init
/// does not reap).
bool running(pid_t pid) {
  auto s = proc_state(pid);
  return s != 0 && s != 'Z';
}

/// The argv of a live process, joined by spaces; "" for a zombie or a
/// kernel thread.
std::string live_cmdline(const fs::path& proc_dir) {
  auto stat = read_text(proc_dir / "stat");
  auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()
      || stat[paren + 2] == 'Z')
    return {};
  auto text = read_text(proc_dir / "cmdline");
  for (auto& c : text)
    if (c == '\0')
      c = ' ';
  while (!text.empty() && text.back() == ' ')
    text.pop_back();
  return text;
}

/// Calls `fn(pid, parent, state)` for every process in /proc.
void each_process(const std::function<void(pid_t, pid_t, char)>& fn) {
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != name.npos)
      continue;
    auto stat = read_text(it->path() / "stat");
    auto paren = stat.rfind(')');
    if (paren == std::string::npos)
      continue;
    std::istringstream fields{stat.substr(paren + 1)};
    char state = 0;
    long ppid = 0;
    fields >> state >> ppid;
    fn(static_cast<pid_t>(std::stol(name)), static_cast<pid_t>(ppid), state);
  }
}

/// How many live processes have an argv (joined by spaces) `match` takes.
int count_processes(const std::function<bool(const std::string&)>& match) {
  int count = 0;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto cmd = live_cmdline(it->path());
    if (!cmd.empty() && match(cmd))
      ++count;
  }
  return count;
}

int count_exact(const std::string& command) {
  return count_processes([&](const std::string& c) { return c == command; });
}

/// How many live (not zombie) processes have `parent` as their parent.
int live_children(pid_t parent) {
  int n = 0;
  each_process([&](pid_t, pid_t ppid, char state) {
    if (ppid == parent && state != 'Z')
      ++n;
  });
  return n;
}

/// Every descendant of `root` (children first found, then theirs).
std::vector<pid_t> descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  each_process(
    [&](pid_t pid, pid_t ppid, char) { children.emplace(ppid, pid); });
  std::vector<pid_t> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    auto p = todo.back();
    todo.pop_back();
    auto [from, to] = children.equal_range(p);
    for (auto i = from; i != to; ++i) {
      out.push_back(i->second);
      todo.push_back(i->second);
    }
  }
  return out;
}

/// Waits for `pid` (a child of ours) to exit, up to `timeout`; its waitpid
/// status, or nullopt when it did not.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  if (eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; },
                 timeout))
    return status;
  return std::nullopt;
}

/// Kills heaven with SIGKILL (nothing of it runs afterwards) and reaps it.
void kill_hard(heaven_server& h) {
  ::kill(h.pid, SIGKILL);
  ::waitpid(h.pid, nullptr, 0);
  h.pid = -1;
}

/// The sum of N over heaven's lines "heaven ended N process(es) that
/// deployment X left running" (what a start found of a killed heaven's).
int leftovers_ended(const std::string& own_log) {
  static const std::regex line{
    R"(heaven ended (\d+) process\(es\) that deployment \d+ left running)"};
  int total = 0;
  for (std::sregex_iterator it{own_log.begin(), own_log.end(), line}, end;
       it != end; ++it)
    total += std::stoi((*it)[1].str());
  return total;
}

// -- the GitHub double -------------------------------------------------------

/// What the GitHub double does with one request.
enum class fault {
  /// Keeps the status, answers 201 (a GET: the list).
  none,
  /// Answers 502 without keeping anything.
  refuse,
  /// Keeps the status, then answers 502: a proxy failing after GitHub wrote.
  keep_then_refuse,
  /// Keeps the status, then closes the connection without an answer.
  keep_then_drop,
  /// Keeps the status and answers after heaven's client gave up (30 s).
  keep_then_late,
};

/// A status GitHub kept, and when (Unix ms).
struct kept_status {
  std::string state;
  std::string description;
  int64_t at_ms = 0;
};

/// GitHub's deployment statuses API over a real socket: keeps what it
/// accepts, lists it newest first for `GET ...statuses?per_page=100`,
/// answers `GET /rate_limit`, and fails requests as `policy` says.
class github_double {
public:
  using policy = std::function<fault(const recorded_request&, int64_t)>;

  github_double() {
    stub_.respond_with([this](const recorded_request& r) { return answer(r); });
  }

  std::string base_url() const {
    return stub_.base_url();
  }

  /// Called with each terminal status POSTed, before it is answered: the
  /// moment GitHub hears how a deployment ended. Set before heaven starts.
  std::function<void(int64_t, const std::string&)> before_terminal;

  void set_policy(policy p) {
    std::lock_guard guard{mx_};
    policy_ = std::move(p);
  }

  /// How long every kept status waits for its answer (0: none), so that
  /// statuses are in flight when heaven dies.
  void set_answer_delay_ms(int ms) {
    std::lock_guard guard{mx_};
    delay_ms_ = ms;
  }

  /// How long a `keep_then_late` answer waits.
  void set_late_ms(int ms) {
    std::lock_guard guard{mx_};
    late_ms_ = ms;
  }

  std::vector<kept_status> kept(int64_t github_id) const {
    std::lock_guard guard{mx_};
    auto i = kept_.find(github_id);
    return i == kept_.end() ? std::vector<kept_status>{} : i->second;
  }

  std::vector<std::string> kept_states(int64_t github_id) const {
    std::vector<std::string> out;
    for (auto& s : kept(github_id))
      out.push_back(s.state);
    return out;
  }

  /// The POSTs of each state for `github_id` (attempts, kept or not).
  std::map<std::string, int> posts(int64_t github_id) const {
    std::lock_guard guard{mx_};
    auto i = posts_.find(github_id);
    return i == posts_.end() ? std::map<std::string, int>{} : i->second;
  }

  int lookups(int64_t github_id) const {
    std::lock_guard guard{mx_};
    auto i = lookups_.find(github_id);
    return i == lookups_.end() ? 0 : i->second;
  }

  /// How many requests got `f`.
  int served(fault f) const {
    std::lock_guard guard{mx_};
    auto i = served_.find(f);
    return i == served_.end() ? 0 : i->second;
  }

  /// Waits until every one of `ids` has a terminal status kept.
  bool wait_terminal(const std::vector<int64_t>& ids,
                     std::chrono::milliseconds timeout) const {
    return eventually(
      [&] {
        for (auto id : ids) {
          auto s = kept_states(id);
          if (s.empty() || !terminal(s.back()))
            return false;
        }
        return true;
      },
      timeout);
  }

private:
  stub_response answer(const recorded_request& r) {
    static const std::regex path{
      R"(^/repos/[^/]+/[^/]+/deployments/(\d+)/statuses(\?.*)?$)"};
    policy p;
    int late = 0, delay = 0;
    {
      std::lock_guard guard{mx_};
      p = policy_;
      late = late_ms_;
      delay = delay_ms_;
    }
    if (r.target == "/rate_limit")
      return {
        200, {{"Content-Type", "application/json"}}, R"({"resources":{}})"};
    std::smatch m;
    if (!std::regex_match(r.target, m, path))
      return {404,
              {{"Content-Type", "application/json"}},
              R"({"message":"Not Found"})"};
    auto id = std::stoll(m[1].str());
    auto f = p ? p(r, id) : fault::none;
    stub_response bad_gateway{
      502, {{"Content-Type", "text/html"}}, "<html>502 Bad Gateway</html>"};
    auto body = json::parse(r.body, nullptr, false);
    std::string state = body.is_object() ? body.value("state", "") : "";
    std::string description = body.is_object() ? body.value("description", "")
                                               : "";
    if (r.method == "POST" && terminal(state) && before_terminal)
      before_terminal(id, state);
    std::unique_lock guard{mx_};
    ++served_[f];
    if (r.method == "GET") {
      ++lookups_[id];
      if (f != fault::none)
        return bad_gateway;
      auto list = json::array();
      auto& ks = kept_[id];
      for (auto i = ks.size(); i-- > 0;)
        list.push_back({{"id", static_cast<int64_t>(i + 1)},
                        {"state", ks[i].state},
                        {"description", ks[i].description}});
      return {200, {{"Content-Type", "application/json"}}, list.dump()};
    }
    ++posts_[id][state];
    if (f == fault::refuse)
      return bad_gateway;
    kept_[id].push_back({state, description, wall_ms()});
    json created = {{"id", static_cast<int64_t>(kept_[id].size())},
                    {"state", state}};
    guard.unlock();
    switch (f) {
      case fault::keep_then_refuse:
        return bad_gateway;
      case fault::keep_then_drop: {
        stub_response dropped;
        dropped.drop = true;
        return dropped;
      }
      case fault::keep_then_late:
        pause_ms(late);
        break;
      default:
        pause_ms(delay);
        break;
    }
    return {201, {{"Content-Type", "application/json"}}, created.dump()};
  }

  mutable std::mutex mx_;
  policy policy_;
  int late_ms_ = 32000;
  int delay_ms_ = 0;
  std::map<int64_t, std::vector<kept_status>> kept_;
  std::map<int64_t, std::map<std::string, int>> posts_;
  std::map<int64_t, int> lookups_;
  std::map<fault, int> served_;
  /// Last: it stops (joining its threads, which use the rest) first.
  http_stub stub_;
};

// -- the fixture -------------------------------------------------------------

/// One test's world: a GitHub double, a repository of deploy scripts that
/// leave markers and processes behind, and the directories they write to.
struct fixture {
  fs::path tmp = make_temp_dir("faults");
  /// The scripts' markers, one file per deployment (named by environment).
  fs::path marks = tmp / "marks";
  /// How long script/work sleeps, one file per environment.
  fs::path durations = tmp / "durations";
  /// script/gated waits for a file here named by its environment.
  fs::path gates = tmp / "gates";
  /// script/daemon's daemon writes its clock here, a file per environment.
  fs::path daemons = tmp / "daemons";
  fs::path app = tmp / "app";
  std::string sha;
  /// The argument of the scripts' background sleep and of their daemon:
  /// numbers no other process sleeps for.
  std::string bg = unique_seconds();
  std::string daemon = unique_seconds();
  /// File systems mounted for the test, unmounted at its end.
  std::vector<fs::path> mounts;

  /// What the deployments' processes were doing when GitHub heard how the
  /// deployment ended.
  struct end_checks {
    std::mutex mx;
    /// The environment of each deployment (it names its marker).
    std::map<int64_t, std::string> environments;
    /// Per deployment, the processes of its that still ran then.
    std::map<int64_t, std::vector<std::string>> alive;
    int checked = 0;
  };
  std::shared_ptr<end_checks> checks = std::make_shared<end_checks>();
  github_double github;

  fixture() {
    for (auto& d : {marks, durations, gates, daemons})
      fs::create_directories(d);
    make_repository();
    // When a terminal status reaches GitHub, every process the marker names
    // (the script, its background job, its daemon) must have been ended.
    github.before_terminal = [checks = checks, marks = marks,
                              ours = ours()](int64_t id, const std::string&) {
      std::string environment;
      {
        std::lock_guard guard{checks->mx};
        auto i = checks->environments.find(id);
        if (i == checks->environments.end())
          return;
        environment = i->second;
        ++checks->checked;
      }
      std::istringstream in{read_text(marks / environment)};
      std::vector<std::string> alive;
      for (std::string word, pid; in >> word;) {
        if (word == "finished" || !(in >> pid))
          continue;
        auto cmd = live_cmdline("/proc/" + pid);
        if (!cmd.empty() && ours(cmd))
          alive.push_back(word + " " + pid + " (" + cmd + ")");
      }
      std::lock_guard guard{checks->mx};
      auto& list = checks->alive[id];
      list.insert(list.end(), alive.begin(), alive.end());
    };
  }

  /// Whether a command line is one of this test's deployments' processes:
  /// scripts and daemons (their command lines name this test's directory),
  /// the background sleeps and the setsid daemons.
  std::function<bool(const std::string&)> ours() const {
    return [dir = tmp.string() + "/", bg = "sleep " + bg,
            daemon = "sleep " + daemon](const std::string& c) {
      return c.find(dir) != std::string::npos || c == bg || c == daemon
             || c == "/bin/" + daemon;
    };
  }

  ~fixture() {
    for (auto& m : mounts)
      run_command("umount -l " + m.string());
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  void script(const std::string& name, const std::string& body) {
    auto path = app / "script" / name;
    std::ofstream{path} << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  }

  void make_repository() {
    fs::create_directories(app / "script");
    run_checked("git -C " + app.string() + " init -q --initial-branch=main");
    auto start = "m=" + marks.string() + "/\"$DEPLOY_ENV\"\n"
                 + "echo \"started $$\" >> \"$m\"\n";
    // A background job, and a daemon in a session of its own whose parent
    // exits at once (double fork): both outlive the script unless heaven
    // ends them.
    // (The daemon notes its pid, then becomes `sleep <daemon>`.)
    auto leave = "sleep " + bg + " &\necho \"bg $!\" >> \"$m\"\n"
                 + "( setsid sh -c 'echo \"daemon $$\" >> \"$1\"; exec sleep "
                 + daemon + "' sh \"$m\" & )\n";
    script("work", start + leave + "sleep \"$(cat " + durations.string()
                     + "/\"$DEPLOY_ENV\")\"\necho finished >> \"$m\"\n");
    script("gated", start + leave + "while [ ! -e " + gates.string()
                      + "/\"$DEPLOY_ENV\" ]; do sleep 0.05; done\n"
                        "echo finished >> \"$m\"\n");
    script("daemon", start
                       + "( setsid sh -c 'echo \"daemon $$\" >> \"$1\"; "
                         "while :; do date +%s%N >> "
                       + daemons.string()
                       + "/\"$DEPLOY_ENV\"; sleep 0.1; done' sh \"$m\" & )\n"
                         "sleep "
                       + bg + "\necho finished >> \"$m\"\n");
    // A daemon that also sheds its environment (heaven's scope cookie
    // with it), as daemons and sudo do.
    script("bare", start
                     + "( env -i /usr/bin/setsid /bin/sh -c 'echo "
                       "\"daemon $$\" >> \"$1\"; exec /bin/sleep "
                     + daemon
                     + "' sh \"$m\" & )\n"
                       "while ! grep -q daemon \"$m\"; do sleep 0.05; done\n"
                       "echo finished >> \"$m\"\n");
    // An Ansible playbook that runs this test's background sleep.
    fs::create_directories(app / "ansible");
    std::ofstream{app / "ansible" / "hosts"}
      << "localhost ansible_connection=local\n";
    std::ofstream{app / "ansible" / "site.yml"}
      << "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
         "  tasks:\n    - command: sleep "
      << bg << "\n";
    run_checked("cd " + app.string()
                + " && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m scripts");
    sha = run_checked("git -C " + app.string() + " rev-parse HEAD");
  }

  /// A deployment event of this repository to `environment` with `config`.
  std::string event(int64_t github_id, const std::string& environment,
                    const json& config) {
    {
      std::lock_guard guard{checks->mx};
      checks->environments[github_id] = environment;
    }
    return deployment_event({.id = github_id,
                             .sha = sha,
                             .clone_url = "file://" + app.string(),
                             .payload = {{"name", "app"}, {"config", config}},
                             .environment = environment})
      .dump();
  }

  /// A shell deployment running `script`.
  std::string shell_event(int64_t github_id, const std::string& environment,
                          const std::string& script) {
    return event(github_id, environment,
                 {{"provider", "shell"}, {"deploy_script", script}});
  }

  /// A deployment of script/work to `environment` that sleeps `seconds`.
  std::string work_event(int64_t github_id, const std::string& environment,
                         const std::string& seconds) {
    std::ofstream{durations / environment} << seconds << "\n";
    return shell_event(github_id, environment, "script/work");
  }

  static http_response post(const heaven_server& h, int64_t github_id,
                            const std::string& body) {
    return h.post_event("deployment", "delivery-" + std::to_string(github_id),
                        body);
  }

  /// The marker of the deployment to `environment`.
  std::string mark(const std::string& environment) const {
    return read_text(marks / environment);
  }

  /// The lines of a marker the script itself wrote (not its daemon's).
  static std::string script_lines(const std::string& text) {
    std::string out;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);)
      if (line.rfind("daemon ", 0) != 0)
        out += line + "\n";
    return out;
  }

  static int lines_starting(const std::string& text, const std::string& word) {
    int n = 0;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);)
      if (line.rfind(word, 0) == 0)
        ++n;
    return n;
  }

  /// The pid the daemon of `environment` noted, or -1.
  pid_t daemon_pid(const std::string& environment) const {
    std::istringstream in{mark(environment)};
    for (std::string line; std::getline(in, line);)
      if (line.rfind("daemon ", 0) == 0)
        return static_cast<pid_t>(std::stol(line.substr(7)));
    return -1;
  }

  bool started(const std::string& environment) const {
    return lines_starting(mark(environment), "started") > 0;
  }

  bool finished(const std::string& environment) const {
    return lines_starting(mark(environment), "finished") > 0;
  }

  /// The pid of the script that wrote "started" for `environment`.
  pid_t script_pid(const std::string& environment) const {
    std::istringstream in{mark(environment)};
    for (std::string line; std::getline(in, line);)
      if (line.rfind("started ", 0) == 0)
        return static_cast<pid_t>(std::stol(line.substr(8)));
    return -1;
  }

  /// Live processes the deployments of this test may have left: scripts
  /// and daemons (their command lines name this test's directory), the
  /// background sleeps and the setsid daemons.
  int leftovers() const {
    return count_processes(ours());
  }

  /// Checks what GitHub kept of `github_id`: queued, in_progress (unless
  /// it never `ran`) and one terminal status, in order, each posted once.
  /// Returns the terminal state ("" when there is none).
  std::string check_story(int64_t github_id, bool ran = true) const {
    auto states = github.kept_states(github_id);
    auto n = ran ? 3u : 2u;
    BOOST_TEST(
      (states.size() == n && states[0] == "queued"
       && (!ran || states[1] == "in_progress") && terminal(states.back())),
      "deployment " << github_id << ": GitHub keeps " << joined(states));
    for (auto& [state, count] : github.posts(github_id))
      BOOST_TEST(count == 1, "deployment " << github_id << ": " << count
                                           << " POSTs of " << state);
    std::lock_guard guard{checks->mx};
    auto& alive = checks->alive[github_id];
    BOOST_TEST(alive.empty(), "deployment " << github_id
                                            << " ended on GitHub"
                                               " while these ran: "
                                            << joined(alive));
    return states.empty() || !terminal(states.back()) ? "" : states.back();
  }

  /// The description of the last status GitHub kept for `github_id`.
  std::string last_description(int64_t github_id) const {
    auto kept = github.kept(github_id);
    return kept.empty() ? "" : kept.back().description;
  }

  /// heaven's rows (GET /deployments, all of them), [] when it can't answer.
  static json rows(const heaven_server& h) {
    auto res = http_call("GET", h.base() + "/deployments?limit=500",
                         h.authorization());
    if (res.status != 200)
      return json::array();
    return json::parse(res.body, nullptr, false);
  }

  /// heaven's rows of GitHub deployment `github_id`.
  static std::vector<json> rows_of(const heaven_server& h, int64_t github_id) {
    std::vector<json> out;
    for (auto& r : rows(h))
      if (r.at("github_id") == github_id)
        out.push_back(r);
    return out;
  }

  /// Heaven's settings in every case: a short kill grace and drain, so a
  /// failing case does not wait on them.
  static heaven_server::env_list settings(heaven_server::env_list extra = {}) {
    heaven_server::env_list s = {{"HEAVEN_KILL_GRACE", "1"},
                                 {"HEAVEN_DRAIN_SECONDS", "2"}};
    for (auto& e : extra)
      s.push_back(e);
    return s;
  }

  /// Keeps heaven's own log of a run that is about to be replaced.
  void keep_log(const heaven_server& h, const std::string& name) const {
    std::error_code ec;
    fs::copy_file(h.stderr_file, tmp / name,
                  fs::copy_options::overwrite_existing, ec);
  }

  void daemon_outlives_a_killed_heaven(bool cgroups, int64_t github_id);
};

/// The last time (Unix ms) the daemon wrote into `file`, 0 when never.
int64_t last_write_ms(const fs::path& file) {
  auto text = read_text(file);
  std::istringstream in{text};
  int64_t last = 0;
  for (std::string line; std::getline(in, line);)
    if (line.size() > 6 && line.find_first_not_of("0123456789") == line.npos)
      last = std::stoll(line) / 1000000;
  return last;
}

/// Writes `file` until the file system is full; returns the bytes written.
std::uintmax_t fill(const fs::path& file) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return 0;
  std::vector<char> block(1 << 20, 'x');
  std::uintmax_t total = 0;
  for (std::size_t size :
       {std::size_t{1} << 20, std::size_t{4096}, std::size_t{1}})
    for (ssize_t n; (n = ::write(fd, block.data(), size)) > 0;)
      total += static_cast<std::uintmax_t>(n);
  ::fsync(fd);
  ::close(fd);
  return total;
}

// 7. kill -9 while a deployment's daemon runs: the script dies with heaven,
//    the daemon runs on until the next start ends it, before the
//    deployment's error is posted, and writes nothing after.
void fixture::daemon_outlives_a_killed_heaven(bool cgroups, int64_t id) {
  auto env = std::string{cgroups ? "daemon-cgroups" : "daemon-tracked"};
  auto data = tmp / ("data-" + env);
  heaven_server::env_list extra;
  if (!cgroups)
    extra.emplace_back("HEAVEN_CGROUPS", "off");
  auto h = std::make_unique<heaven_server>(data, github.base_url(),
                                           settings(extra));
  auto mode = read_text(h->stderr_file).find("in a cgroup of its own")
                  != std::string::npos
                ? "cgroups"
                : "tracked without cgroups";
  BOOST_TEST(post(*h, id, shell_event(id, env, "script/daemon")).status == 201);
  auto daemon_file = daemons / env;
  BOOST_REQUIRE(eventually(
    [&] {
      return started(env) && lines_starting(read_text(daemon_file), "1") >= 3;
    },
    60s));
  auto script = script_pid(env);
  BOOST_REQUIRE(script > 0);
  kill_hard(*h);
  auto t_kill = steady::now();
  auto kill_ms = wall_ms();
  keep_log(*h, "run1-" + env + ".stderr");
  // The script dies at once (its parent-death signal)...
  BOOST_TEST(eventually([&] { return !running(script); }, 10s),
             "the script outlived heaven");
  auto script_gone_s = seconds_since(t_kill);
  // ...its daemon and its sleep do not.
  BOOST_TEST(
    eventually([&] { return last_write_ms(daemon_file) > kill_ms + 300; }, 10s),
    "the daemon stopped writing with heaven");
  int orphans = count_exact("sleep " + bg);
  BOOST_TEST(orphans == 1);

  h = std::make_unique<heaven_server>(data, github.base_url(), settings(extra));
  auto t_restart = steady::now();
  BOOST_REQUIRE(github.wait_terminal({id}, 60s));
  auto error_s = seconds_since(t_restart);
  BOOST_TEST(check_story(id) == "error");
  BOOST_TEST(last_description(id) == restarted);
  auto error_at = github.kept(id).back().at_ms;
  auto size = fs::file_size(daemon_file);
  auto last = last_write_ms(daemon_file);
  BOOST_TEST(last < error_at, "the daemon wrote " << last - error_at
                                                  << " ms after the error "
                                                     "was posted");
  // Once none of the deployment's processes is left, nothing writes the
  // file: its size then is final, and must be the size read above, when
  // nothing had been written since the error was posted.
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 10s),
             leftovers() << " process(es) left");
  BOOST_TEST(fs::file_size(daemon_file) == size, "the daemon still writes");
  BOOST_TEST(!finished(env));
  BOOST_TEST(lines_starting(mark(env), "started") == 1);
  auto own = read_text(h->stderr_file);
  BOOST_TEST(leftovers_ended(own) >= 2, own);
  BOOST_TEST_MESSAGE("kill -9 with a daemon ("
                     << mode << "): the script died " << script_gone_s
                     << " s after the kill; " << orphans
                     << " orphaned sleep and the daemon ran on; the restart "
                        "ended "
                     << leftovers_ended(own)
                     << " process(es); the error was "
                        "posted "
                     << error_s << " s after the restart, " << error_at - last
                     << " ms after the daemon's last write");
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(e2e_faults, fixture)

// 1. SIGKILL in the middle of a burst, a restart on the same data, and every
//    event delivered again.
BOOST_AUTO_TEST_CASE(sigkill_mid_burst_then_restart_with_redeliveries) {
  constexpr int n = 60;
  constexpr int64_t first = 71000;
  auto data = tmp / "data";
  std::vector<std::string> envs(n), bodies(n);
  static const char* sleeps[] = {"0.5", "1", "1.5", "2"};
  for (int k = 0; k < n; ++k) {
    envs[k] = "burst" + std::to_string(k);
    bodies[k] = work_event(first + k, envs[k], sleeps[k % 4]);
  }
  // Statuses take a while: some are in flight (kept, not yet answered)
  // when heaven dies, and the restart must look them up.
  github.set_answer_delay_ms(150);
  auto t_begin = steady::now();
  auto h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  // curl's global start is not thread-safe: have it happen here first.
  http_call("GET", h->base() + "/healthz");
  std::vector<std::atomic<int>> answer(n);
  std::atomic<int> accepted{0};
  std::thread poster{[&] {
    for (int k = 0; k < n; ++k) {
      auto res = post(*h, first + k, bodies[k]);
      answer[k] = res.status;
      if (res.status == 201)
        ++accepted;
      pause_ms(40);
    }
  }};
  // Mid-burst: a third of the events accepted, and a script running.
  auto running_now = [&] {
    int r = 0;
    for (int k = 0; k < accepted; ++k)
      if (started(envs[k]) && !finished(envs[k]))
        ++r;
    return r;
  };
  bool mid = eventually([&] { return accepted >= n / 3 && running_now() >= 1; },
                        60s);
  kill_hard(*h);
  auto t_kill = steady::now();
  int accepted_before = accepted;
  int running_at_kill = running_now();
  std::map<std::string, std::string> at_kill;
  for (auto& e : envs)
    at_kill[e] = mark(e);
  // The scripts die with heaven (their parent-death signal); what they
  // started stays until the next start ends it.
  auto scripts = [&] {
    return count_processes([&](const std::string& c) {
      return c.find(tmp.string() + "/") != c.npos
             && c.find("script/work") != c.npos;
    });
  };
  BOOST_TEST(eventually([&] { return scripts() == 0; }, 10s),
             scripts() << " script(s) outlived a SIGKILLed heaven");
  auto scripts_gone_s = seconds_since(t_kill);
  int orphans = count_exact("sleep " + bg) + count_exact("sleep " + daemon);
  // The rest of the burst meets a dead heaven.
  poster.join();
  BOOST_REQUIRE_MESSAGE(mid, "no script ran while a third of the burst was "
                             "accepted");
  keep_log(*h, "run1.stderr");
  int not_answered = 0;
  for (auto& a : answer)
    if (a != 201)
      ++not_answered;

  // The restart, and GitHub delivering every event again.
  h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  auto t_restart = steady::now();
  int again_200 = 0, again_201 = 0;
  for (int k = 0; k < n; ++k) {
    auto res = post(*h, first + k, bodies[k]);
    if (answer[k] == 201)
      BOOST_TEST(res.status == 200, "event " << k
                                             << " accepted before the "
                                                "kill got "
                                             << res.status);
    else
      BOOST_TEST((res.status == 200 || res.status == 201),
                 "event " << k << " got " << res.status);
    (res.status == 200 ? again_200 : again_201) += 1;
  }
  std::vector<int64_t> ids;
  for (int k = 0; k < n; ++k)
    ids.push_back(first + k);
  BOOST_REQUIRE(github.wait_terminal(ids, 180s));
  auto all_ended_s = seconds_since(t_restart);
  // heaven has nothing left to send (tools/support/store_view.hpp): what
  // GitHub keeps now is all it will get.
  h->wait_quiet();

  int errors = 0, after_restart = 0, not_yet_started = 0;
  auto listed = rows(*h);
  for (int k = 0; k < n; ++k) {
    auto id = first + k;
    auto& e = envs[k];
    auto end = check_story(id);
    int rows_n = 0;
    for (auto& r : listed)
      if (r.at("github_id") == id)
        ++rows_n;
    BOOST_TEST(rows_n == 1,
               "deployment " << id << " has " << rows_n << " rows in heaven");
    auto text = mark(e);
    BOOST_TEST(lines_starting(text, "started") <= 1,
               e << " ran " << lines_starting(text, "started") << " times");
    if (end == "error") {
      ++errors;
      BOOST_TEST(last_description(id) == restarted);
      // It was recorded running when heaven was killed (its script had
      // started, or was about to), and nothing ran on after.
      BOOST_TEST(script_lines(text) == script_lines(at_kill[e]),
                 e << " was written after the kill");
      if (lines_starting(at_kill[e], "started") == 0)
        ++not_yet_started;
    } else {
      BOOST_TEST(end == "success", e << " ended " << end);
      BOOST_TEST(lines_starting(text, "started") == 1, e);
      BOOST_TEST(lines_starting(text, "finished") == 1, e);
      if (lines_starting(at_kill[e], "started") == 0)
        ++after_restart;
    }
  }
  BOOST_TEST(errors >= 1);
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 15s),
             leftovers() << " process(es) left");
  int posts = 0, lookups = 0;
  for (auto id : ids) {
    for (auto& [s, c] : github.posts(id))
      posts += c;
    lookups += github.lookups(id);
  }
  auto own = read_text(h->stderr_file);
  BOOST_TEST_MESSAGE("sigkill mid-burst: "
                     << n << " events, " << accepted_before
                     << " accepted before the kill (" << running_at_kill
                     << " scripts running), " << not_answered
                     << " not accepted (heaven was dead); scripts gone "
                     << scripts_gone_s << " s after the kill, " << orphans
                     << " background processes outlived it; the restart ended "
                     << leftovers_ended(own)
                     << " leftover process(es); redeliveries: " << again_200
                     << " x 200, " << again_201 << " x 201; " << errors
                     << " ended 'restarted' (" << not_yet_started
                     << " of them before their script wrote a line), "
                     << after_restart
                     << " queued ones ran after the restart; all terminal "
                     << all_ended_s << " s after the restart; " << posts
                     << " status POSTs for " << 3 * n << " statuses, "
                     << lookups << " look-ups; whole case "
                     << seconds_since(t_begin) << " s");
}

// 1b. SIGKILL while events arrive together on many connections: the store
//     commits them in groups, and an event answered 201 is on disk, whatever
//     group it was in.
BOOST_AUTO_TEST_CASE(
  sigkill_during_a_concurrent_burst_loses_no_answered_event) {
  constexpr int senders = 8;
  constexpr int per_sender = 150;
  auto data = tmp / "data";
  auto h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  http_call("GET", h->base() + "/healthz");
  auto delivery = [](int t, int k) {
    return "group-" + std::to_string(t) + "-" + std::to_string(k);
  };
  const std::string body = R"({"zen":"Approachable is better than simple.",)"
                           R"("hook_id":7})";
  std::vector<std::vector<int>> answer(senders,
                                       std::vector<int>(per_sender, 0));
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < senders; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < per_sender; ++k) {
        auto res = h->post_event("ping", delivery(t, k), body);
        answer[t][k] = res.status;
        if (res.status == 201)
          ++accepted;
        else if (res.status == 0)
          break; // heaven is gone
      }
    });
  BOOST_REQUIRE(eventually([&] { return accepted >= 300; }, 120s));
  kill_hard(*h);
  for (auto& t : threads)
    t.join();
  keep_log(*h, "run1.stderr");
  // Every event answered 201 before the kill is known after it: delivered
  // again, it is a duplicate.
  h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  int answered = 0, lost = 0;
  for (int t = 0; t < senders; ++t)
    for (int k = 0; k < per_sender; ++k) {
      if (answer[t][k] != 201)
        continue;
      ++answered;
      auto res = h->post_event("ping", delivery(t, k), body);
      if (res.status != 200)
        ++lost;
    }
  BOOST_TEST(answered >= 300);
  BOOST_TEST(lost == 0, lost << " of " << answered
                             << " events answered 201 were lost by SIGKILL");
}

// 2. SIGTERM in the middle of a burst: what runs may finish within the
//    drain, what is slower is stopped, what has not started stays queued
//    and runs after the next start.
BOOST_AUTO_TEST_CASE(sigterm_mid_burst_drains_and_leaves_the_rest_queued) {
  auto data = tmp / "data";
  auto t_begin = steady::now();
  auto h = std::make_unique<heaven_server>(
    data, github.base_url(),
    heaven_server::env_list{{"HEAVEN_DRAIN_SECONDS", "8"},
                            {"HEAVEN_KILL_GRACE", "1"}});
  std::vector<int64_t> slow, quick, late;
  auto env_of = [](int64_t id) { return "e" + std::to_string(id); };
  // Slow ones can only end by being stopped.
  for (int64_t id = 72000; id < 72003; ++id) {
    slow.push_back(id);
    BOOST_TEST(post(*h, id, work_event(id, env_of(id), "300")).status == 201);
  }
  BOOST_REQUIRE(eventually(
    [&] {
      for (auto id : slow)
        if (!started(env_of(id)))
          return false;
      return true;
    },
    60s));
  // Quick ones run when heaven is told to stop, and end within the drain.
  for (int64_t id = 72100; id < 72103; ++id) {
    quick.push_back(id);
    BOOST_TEST(post(*h, id, work_event(id, env_of(id), "3")).status == 201);
  }
  BOOST_REQUIRE(eventually(
    [&] {
      for (auto id : quick)
        if (!started(env_of(id)))
          return false;
      return true;
    },
    60s));
  // A burst arriving just before the signal: checkouts run two at a time,
  // so most of it has not started.
  for (int64_t id = 72200; id < 72208; ++id) {
    late.push_back(id);
    BOOST_TEST(post(*h, id, work_event(id, env_of(id), "1")).status == 201);
  }
  ::kill(h->pid, SIGTERM);
  auto t_term = steady::now();
  // Meanwhile /healthz says heaven is draining, and an event is still
  // recorded (and answered 201).
  bool draining = eventually(
    [&] {
      auto res = http_call("GET", h->base() + "/healthz", {}, "", 2000);
      if (res.status != 503)
        return false;
      auto j = json::parse(res.body, nullptr, false);
      return j.is_object() && j.value("status", "") == "draining";
    },
    5s);
  BOOST_TEST(draining, "/healthz never said draining");
  int64_t during = 72300;
  auto during_res = post(*h, during, work_event(during, env_of(during), "1"));
  BOOST_TEST(during_res.status == 201,
             during_res.status << " " << during_res.body);
  late.push_back(during);
  auto status = wait_exit(h->pid, 120s);
  auto exit_s = seconds_since(t_term);
  BOOST_REQUIRE_MESSAGE(status, "heaven did not exit after SIGTERM");
  h->pid = -1;
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
  keep_log(*h, "run1.stderr");
  // Every process of the stopped deployments was killed.
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 10s),
             leftovers() << " process(es) outlived the stop");
  std::map<int64_t, bool> ran_in_drain;
  for (auto id : late)
    ran_in_drain[id] = started(env_of(id));

  auto t_restart_ms = wall_ms();
  h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  std::vector<int64_t> all;
  for (auto* group : {&slow, &quick, &late})
    all.insert(all.end(), group->begin(), group->end());
  BOOST_REQUIRE(github.wait_terminal(all, 120s));
  h->wait_quiet();
  for (auto id : slow) {
    BOOST_TEST(check_story(id) == "error");
    BOOST_TEST(last_description(id) == stopped);
    BOOST_TEST(lines_starting(mark(env_of(id)), "started") == 1);
    BOOST_TEST(!finished(env_of(id)));
  }
  for (auto id : quick) {
    BOOST_TEST(check_story(id) == "success");
    BOOST_TEST(lines_starting(mark(env_of(id)), "started") == 1);
    BOOST_TEST(finished(env_of(id)));
  }
  int shelved = 0;
  for (auto id : late) {
    BOOST_TEST(check_story(id) == "success");
    BOOST_TEST(lines_starting(mark(env_of(id)), "started") == 1);
    if (ran_in_drain[id])
      continue;
    // Not started when heaven stopped: GitHub heard nothing after
    // `queued` until the restart.
    ++shelved;
    for (auto& s : github.kept(id))
      if (s.state != "queued")
        BOOST_TEST(s.at_ms >= t_restart_ms, "deployment "
                                              << id << " got " << s.state
                                              << " before the restart");
  }
  BOOST_TEST(shelved >= 1);
  BOOST_TEST(!ran_in_drain[during]);
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 15s));
  BOOST_TEST_MESSAGE(
    "sigterm mid-burst (drain 8 s, kill grace 1 s): heaven "
    "exited "
    << exit_s << " s after SIGTERM; " << slow.size() << " slow ones stopped, "
    << quick.size() << " quick ones finished in the drain, "
    << late.size() - shelved << " of the late burst ran in "
    << "the drain, " << shelved
    << " stayed queued (one posted during the drain) and "
       "ran after the restart; /healthz said draining: "
    << draining << "; whole case " << seconds_since(t_begin) << " s");
}

// 3. GitHub down for more than a minute (502 to every statuses request,
//    some of them after keeping the status), plus a status accepted with no
//    answer at all and one answered after heaven's client timeout.
BOOST_AUTO_TEST_CASE(long_case_github_outage_of_65_s_and_lost_answers) {
  constexpr int n = 8;
  constexpr int64_t first = 73000;
  const int64_t late_one = first, dropped_one = first + 1;
  std::atomic<int64_t> outage_end{0};
  std::atomic<int> posts_in_outage{0};
  std::atomic<bool> late_done{false}, drop_done{false};
  github.set_policy([&](const recorded_request& r, int64_t id) {
    if (wall_ms() >= outage_end)
      return fault::none;
    if (r.method == "GET")
      return fault::refuse;
    if (id == late_one && !late_done.exchange(true))
      return fault::keep_then_late;
    if (id == dropped_one && !drop_done.exchange(true))
      return fault::keep_then_drop;
    return ++posts_in_outage % 2 ? fault::keep_then_refuse : fault::refuse;
  });
  auto data = tmp / "data";
  auto h = std::make_unique<heaven_server>(
    data, github.base_url(),
    settings({{"HEAVEN_RETRY_BACKOFF_MS", "200"},
              {"HEAVEN_RETRY_MAX_BACKOFF_MS", "1000"}}));
  auto t_begin = steady::now();
  outage_end = wall_ms() + 65000;
  std::vector<int64_t> ids;
  for (int k = 0; k < n; ++k) {
    auto id = first + k;
    ids.push_back(id);
    BOOST_TEST(post(*h, id, work_event(id, "o" + std::to_string(k), "1")).status
               == 201);
  }
  // The deployments run and end whatever GitHub does.
  BOOST_TEST(eventually(
    [&] {
      int done = 0;
      for (auto& r : rows(*h))
        if (terminal(r.value("state", "")))
          ++done;
      return done == n;
    },
    60s));
  auto ended_s = seconds_since(t_begin);
  bool ended_in_outage = wall_ms() < outage_end;
  BOOST_REQUIRE(github.wait_terminal(ids, 180s));
  auto delivered_after_outage_s = (wall_ms() - outage_end) / 1000.0;
  h->wait_quiet();
  int posts = 0, lookups = 0;
  std::map<std::string, int> per_state;
  for (int k = 0; k < n; ++k) {
    auto id = first + k;
    // Exactly one of each status, in order: a status kept by a failing
    // or silent answer was found by a look-up, not sent again.
    auto states = github.kept_states(id);
    BOOST_TEST(
      states == (std::vector<std::string>{"queued", "in_progress", "success"}),
      "deployment " << id << ": GitHub keeps " << joined(states));
    for (auto& [s, c] : github.posts(id)) {
      posts += c;
      per_state[s] += c;
    }
    lookups += github.lookups(id);
    BOOST_TEST(lines_starting(mark("o" + std::to_string(k)), "started") == 1);
  }
  // The faults really happened.
  BOOST_TEST(github.served(fault::keep_then_late) == 1);
  BOOST_TEST(github.served(fault::keep_then_drop) == 1);
  BOOST_TEST(github.served(fault::keep_then_refuse) >= 1);
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 15s));
  std::string by_state;
  for (auto& [s, c] : per_state)
    by_state += " " + s + "=" + std::to_string(c);
  BOOST_TEST_MESSAGE(
    "GitHub outage of 65 s: "
    << n << " deployments ended " << (ended_in_outage ? "during" : "after")
    << " the outage (" << ended_s << " s); every status delivered "
    << delivered_after_outage_s << " s after it; " << posts << " status POSTs ("
    << by_state << " ) for " << 3 * n << " statuses kept once each; " << lookups
    << " look-ups; " << github.served(fault::refuse) << " plain 502s, "
    << github.served(fault::keep_then_refuse)
    << " 502s after keeping, 1 dropped answer, 1 answer after 32 s "
       "(heaven's client gives up at 30 s); whole case "
    << seconds_since(t_begin) << " s");
}

// 4. The data directory's file system is full: nothing new is accepted, a
//    deployment that cannot be marked running stays queued, an end that
//    cannot be recorded is not posted, and everything resumes once there is
//    space again.
BOOST_AUTO_TEST_CASE(a_full_disk_refuses_events_and_holds_ends_until_space) {
  auto data = tmp / "data";
  fs::create_directories(data);
  auto mounted = run_command("mount -t tmpfs -o size=20m heaven-faults "
                             + data.string());
  if (mounted.status != 0) {
    BOOST_TEST_MESSAGE("skipped: this machine refuses to mount a tmpfs ("
                       << mounted.out << ")");
    return;
  }
  mounts.push_back(data);
  // Checkouts live elsewhere, so that a deployment can get its checkout
  // while heaven's database cannot take a write.
  for (auto dir : {"mirrors", "workspaces"}) {
    fs::create_directories(tmp / dir);
    fs::create_directory_symlink(tmp / dir, data / dir);
  }
  auto h = std::make_unique<heaven_server>(data, github.base_url(), settings());
  auto id_of_github = [&](int64_t github_id) -> int64_t {
    auto r = rows_of(*h, github_id);
    return r.size() == 1u ? r[0].at("id").get<int64_t>() : 0;
  };
  // A: runs when the disk fills up, and ends while it is full.
  const int64_t a = 74000, b = 74001, c = 74002, d = 74003;
  BOOST_TEST(post(*h, a, shell_event(a, "disk-a", "script/gated")).status
             == 201);
  BOOST_REQUIRE(eventually([&] { return started("disk-a"); }, 60s));
  auto id_a = id_of_github(a);
  BOOST_REQUIRE(id_a > 0);
  // Blockers: deployments from a git server that does not answer until the
  // disk is full, holding every checkout slot, so that D waits for one.
  std::atomic<bool> release{false};
  http_stub git_server;
  git_server.respond_with([&](const recorded_request&) {
    eventually([&] { return release.load(); }, 60s);
    return stub_response{404, {{"Content-Type", "text/plain"}}, "no repo"};
  });
  struct releaser {
    std::atomic<bool>& flag;
    ~releaser() {
      flag = true;
    }
  } release_at_end{release};
  std::vector<int64_t> blockers;
  auto slots = std::max(2u, std::thread::hardware_concurrency());
  for (unsigned k = 0; k < slots; ++k) {
    auto id = 74100 + static_cast<int64_t>(k);
    blockers.push_back(id);
    auto e = json::parse(work_event(id, "disk-x" + std::to_string(k), "0"));
    e["repository"]["clone_url"] = "http://127.0.0.1:"
                                   + std::to_string(git_server.port()) + "/x"
                                   + std::to_string(k) + ".git";
    BOOST_TEST(post(*h, id, e.dump()).status == 201);
  }
  BOOST_REQUIRE(
    eventually([&] { return git_server.requests().size() >= slots; }, 60s));
  BOOST_TEST(post(*h, d, work_event(d, "disk-d", "0.5")).status == 201);
  auto id_d = id_of_github(d);
  BOOST_REQUIRE(id_d > 0);

  auto filler = data / "filler";
  auto filled = fill(filler);
  auto t_full = steady::now();
  // Events are refused: nothing stored, nothing run.
  auto body_b = shell_event(b, "disk-b", "script/gated");
  auto body_c = work_event(c, "disk-c", "0.5");
  auto res_b = post(*h, b, body_b);
  auto res_c = post(*h, c, body_c);
  BOOST_TEST(res_b.status == 503, res_b.body);
  BOOST_TEST(res_c.status == 503, res_c.body);
  auto health = http_call("GET", h->base() + "/healthz");
  BOOST_TEST(health.status == 503);
  auto hj = json::parse(health.body, nullptr, false);
  BOOST_TEST(hj.is_object());
  if (hj.is_object()) {
    BOOST_TEST(hj.value("status", "") == "degraded", health.body);
    BOOST_TEST(
      (hj["problems"].is_array() && hj["problems"].size() == 1u
       && hj["problems"][0].get<std::string>().rfind("store: cannot write: ", 0)
            == 0),
      health.body);
  }
  BOOST_TEST(rows_of(*h, b).empty());
  BOOST_TEST(rows_of(*h, c).empty());
  auto own = [&] { return read_text(h->stderr_file); };
  auto logged = [&](const std::string& line) {
    return eventually([&] { return own().find(line) != std::string::npos; },
                      30s);
  };
  // The blockers fail their checkout; D gets one, but cannot be marked
  // running: it stays queued, its script does not run.
  release = true;
  BOOST_TEST(logged("recording the start of deployment " + std::to_string(id_d)
                    + " failed"),
             "D never tried to start");
  // The running deployment ends while the disk is full: its processes are
  // ended, but its end cannot be recorded, so nothing is posted.
  std::ofstream{gates / "disk-a"} << "go\n";
  BOOST_TEST(eventually([&] { return finished("disk-a"); }, 30s));
  BOOST_TEST(logged("recording the end of deployment " + std::to_string(id_a)
                    + " failed"),
             "A never tried to record its end");
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 15s),
             leftovers() << " process(es) left by a deployment ended on a "
                            "full disk");
  // While the disk stays full, GitHub hears nothing more of A, D and the
  // blockers: what it has of them now is checked here, and that everything
  // it gets later came after space returned, once they have ended.
  std::map<int64_t, std::size_t> kept_while_full;
  for (auto id : blockers)
    kept_while_full[id] = github.kept(id).size();
  kept_while_full[a] = github.kept(a).size();
  kept_while_full[d] = github.kept(d).size();
  auto held = github.kept_states(a);
  BOOST_TEST(held == (std::vector<std::string>{"queued", "in_progress"}),
             "A posted while its end was not recorded: " << joined(held));
  BOOST_TEST(github.kept_states(d) == std::vector<std::string>{"queued"},
             "D: " << joined(github.kept_states(d)));
  for (auto id : blockers)
    BOOST_TEST(github.kept_states(id) == std::vector<std::string>{"queued"},
               id << ": " << joined(github.kept_states(id)));
  auto rows_a = rows_of(*h, a);
  BOOST_TEST((rows_a.size() == 1u && rows_a[0].at("state") == "running"));
  auto rows_d = rows_of(*h, d);
  BOOST_TEST((rows_d.size() == 1u && rows_d[0].at("state") == "queued"));
  BOOST_TEST(github.kept(b).empty());
  BOOST_TEST(github.kept(c).empty());
  for (auto e : {"disk-b", "disk-c", "disk-d"})
    BOOST_TEST(!fs::exists(marks / e), e);
  auto full_s = seconds_since(t_full);

  // Space returns: the ends are recorded and posted, D runs, heaven is
  // healthy, and the refused events, delivered again, are new to it.
  auto t_free_ms = wall_ms();
  fs::remove(filler);
  auto t_free = steady::now();
  BOOST_TEST(github.wait_terminal({a}, 90s));
  auto recorded_s = seconds_since(t_free);
  BOOST_TEST(eventually(
    [&] {
      auto res = http_call("GET", h->base() + "/healthz");
      return res.status == 200 && res.body.find("\"ok\"") != res.body.npos;
    },
    60s));
  std::ofstream{gates / "disk-b"} << "go\n";
  BOOST_TEST(post(*h, b, body_b).status == 201);
  BOOST_TEST(post(*h, c, body_c).status == 201);
  std::vector<int64_t> all = {a, b, c, d};
  all.insert(all.end(), blockers.begin(), blockers.end());
  BOOST_REQUIRE(github.wait_terminal(all, 90s));
  auto all_s = seconds_since(t_free);
  h->wait_quiet();
  for (auto& [id, had] : kept_while_full) {
    auto kept = github.kept(id);
    for (auto i = had; i < kept.size(); ++i)
      BOOST_TEST(kept[i].at_ms >= t_free_ms,
                 "deployment " << id << " got " << kept[i].state << " "
                               << t_free_ms - kept[i].at_ms
                               << " ms before space returned");
  }
  for (auto id : {a, b, c, d})
    BOOST_TEST(check_story(id) == "success");
  for (auto id : blockers) {
    BOOST_TEST(check_story(id, false) == "error");
    BOOST_TEST(last_description(id).find("could not check out")
                 != std::string::npos,
               last_description(id));
  }
  for (auto e : {"disk-a", "disk-b", "disk-c", "disk-d"})
    BOOST_TEST(lines_starting(mark(e), "started") == 1, e);
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 15s));
  h->stop();
  BOOST_TEST_MESSAGE("full disk: filled "
                     << filled / 1024 << " KiB; events answered "
                     << res_b.status << "/" << res_c.status
                     << "; the disk stayed full " << full_s
                     << " s; the held end was recorded and posted "
                     << recorded_s << " s after space returned, everything "
                     << "(the queued deployment run, " << blockers.size()
                     << " failed checkouts) " << all_s << " s after");
}

// 5. A provider that cannot read its config: heaven has no path where a
//    payload makes a provider throw (every provider checks each value's
//    type before it uses it), so the real failures are the providers
//    refusing config of the wrong types. Each ends in one `error`, nothing
//    runs.
BOOST_AUTO_TEST_CASE(providers_given_config_of_wrong_types_end_in_one_error) {
  auto h = std::make_unique<heaven_server>(
    tmp / "data", github.base_url(),
    settings({{"HEROKU_API_KEY", "heroku-key"},
              {"HEAVEN_HEROKU_ENDPOINT", github.base_url()},
              {"BEANSTALK_ACCESS_KEY_ID", "AKIDEXAMPLE"},
              {"BEANSTALK_SECRET_ACCESS_KEY", "secret"}}));
  struct wrong {
    json config;
    /// What the error's description names.
    std::string names;
  };
  std::vector<wrong> cases = {
    {{{"provider", "shell"}, {"deploy_script", 42}}, "deploy_script"},
    {{{"provider", "shell"}, {"deploy_script", {{"path", "script/work"}}}},
     "deploy_script"},
    {{{"provider", "capistrano"}, {"hosts", 42}}, "hosts"},
    {{{"provider", "capistrano"},
      {"hosts", {"root@127.0.0.1"}},
      {"deploy_to", "/srv/app"},
      {"keep_releases", "five"}},
     "keep_releases"},
    {{{"provider", "capistrano"},
      {"hosts", {"root@127.0.0.1"}},
      {"deploy_to", "/srv/app"},
      {"before_publish", "touch " + (tmp / "pwned").string()}},
     "before_publish"},
    {{{"provider", "fabric"},
      {"hosts", {"root@127.0.0.1"}},
      {"tasks", {{"deploy", "touch " + (tmp / "pwned").string()}}}},
     "tasks.deploy"},
    {{{"provider", "heroku"}, {"heroku_name", 7}}, "heroku_name"},
    {{{"provider", "elastic_beanstalk"}, {"app_name", {"app"}}}, "app_name"},
  };
  std::vector<int64_t> ids;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    auto id = 75000 + static_cast<int64_t>(k);
    ids.push_back(id);
    BOOST_TEST(
      post(*h, id, event(id, "types" + std::to_string(k), cases[k].config))
        .status
      == 201);
  }
  // A provider name that is not a string is a broken event (400, nothing
  // stored); an unknown provider is refused at intake: its one status is
  // the error.
  auto broken = post(*h, 75099,
                     event(75099, "types-broken", {{"provider", 7}}));
  BOOST_TEST(broken.status == 400, broken.body);
  const int64_t refused = 75100;
  BOOST_TEST(post(*h, refused,
                  event(refused, "types-refused", {{"provider", "teleport"}}))
               .status
             == 201);
  ids.push_back(refused);
  BOOST_REQUIRE(github.wait_terminal(ids, 60s));
  h->wait_quiet();
  for (std::size_t k = 0; k < cases.size(); ++k) {
    BOOST_TEST(check_story(ids[k]) == "error");
    auto d = last_description(ids[k]);
    BOOST_TEST(d.find(cases[k].names) != std::string::npos,
               cases[k].config.dump() << " ended: " << d);
    BOOST_TEST_MESSAGE(cases[k].config.dump() << " -> error: " << d);
  }
  BOOST_TEST(github.kept_states(refused) == std::vector<std::string>{"error"});
  BOOST_TEST(github.kept(75099).empty());
  BOOST_TEST(rows_of(*h, 75099).empty());
  BOOST_TEST_MESSAGE("provider 7 -> " << broken.status << " " << broken.body
                                      << "; provider teleport -> refused: "
                                      << last_description(refused));
  BOOST_TEST(fs::is_empty(marks));
  BOOST_TEST(!fs::exists(tmp / "pwned"));
  BOOST_TEST(leftovers() == 0);
  // heaven itself is unharmed.
  BOOST_TEST(http_call("GET", h->base() + "/healthz").status == 200);
}

// 6. The SSH server dies in the middle of a remote command of native
//    capistrano.
BOOST_AUTO_TEST_CASE(an_sshd_killed_mid_command_ends_the_deployment_once) {
  sshd_server sshd;
  auto data = tmp / "data";
  fs::create_directories(data / ".ssh");
  write_known_hosts(data / ".ssh" / "known_hosts", {sshd.host_key_line()});
  auto sleeper = "sleep " + unique_seconds();
  auto h = std::make_unique<heaven_server>(
    data, github.base_url(),
    settings({{"DEPLOYMENT_PRIVATE_KEY",
               one_line_key(sshd.client_key().private_key)}}));
  const int64_t id = 76000;
  auto host = sshd.user() + "@127.0.0.1:" + std::to_string(sshd.port());
  json config = {{"provider", "capistrano"},
                 {"hosts", {host}},
                 {"deploy_to", (tmp / "srv").string()},
                 {"before_publish", {sleeper}}};
  BOOST_TEST(post(*h, id, event(id, "ssh", config)).status == 201);
  BOOST_REQUIRE_MESSAGE(eventually([&] { return count_exact(sleeper) == 1; },
                                   90s),
                        "the remote command never ran");
  std::istringstream pid_file{read_text(sshd.dir() / "sshd.pid")};
  pid_t listener = 0;
  BOOST_REQUIRE(pid_file >> listener);
  // The server and everything it runs die at once.
  auto victims = descendants(listener);
  ::kill(listener, SIGKILL);
  for (auto pid : victims)
    ::kill(pid, SIGKILL);
  auto t_kill = steady::now();
  BOOST_REQUIRE(github.wait_terminal({id}, 120s));
  auto ended_s = seconds_since(t_kill);
  h->wait_quiet();
  auto end = check_story(id);
  BOOST_TEST((end == "failure" || end == "error"), end);
  auto d = last_description(id);
  BOOST_TEST(d.find("127.0.0.1") != std::string::npos, d);
  BOOST_TEST(eventually([&] { return count_exact(sleeper) == 0; }, 10s));
  // Nothing of heaven's is left running for it.
  BOOST_TEST(eventually([&] { return live_children(h->pid) == 0; }, 10s),
             live_children(h->pid) << " child process(es) of heaven left");
  BOOST_TEST(leftovers() == 0);
  BOOST_TEST(http_call("GET", h->base() + "/healthz").status == 200);
  BOOST_TEST_MESSAGE("sshd killed ("
                     << victims.size() + 1 << " processes) mid-command: " << end
                     << " \"" << d << "\" " << ended_s << " s later");
}

// 7. See daemon_outlives_a_killed_heaven above.
BOOST_AUTO_TEST_CASE(kill_9_with_a_daemon_left_behind_cgroups) {
  daemon_outlives_a_killed_heaven(true, 77000);
}

BOOST_AUTO_TEST_CASE(kill_9_with_a_daemon_left_behind_without_cgroups) {
  daemon_outlives_a_killed_heaven(false, 77100);
}

// 8. A daemon that clears its environment and double-forks into a session
//    of its own: a cgroup holds it; without cgroups heaven has nothing to
//    know it by (no cookie, no recorded group, not below the script once
//    its parent exited) — a known limit of the fallback, reported as a
//    warning, not a failure.
BOOST_AUTO_TEST_CASE(a_daemon_without_heavens_environment) {
  for (bool cgroups : {true, false}) {
    heaven_server::env_list extra;
    if (!cgroups)
      extra.emplace_back("HEAVEN_CGROUPS", "off");
    auto env = std::string{cgroups ? "bare-cgroups" : "bare-tracked"};
    auto h = std::make_unique<heaven_server>(
      tmp / ("data-" + env), github.base_url(), settings(extra));
    bool in_cgroups = read_text(h->stderr_file).find("in a cgroup of its own")
                      != std::string::npos;
    int64_t id = cgroups ? 78000 : 78001;
    BOOST_TEST(post(*h, id, shell_event(id, env, "script/bare")).status == 201);
    BOOST_REQUIRE(github.wait_terminal({id}, 60s));
    auto bare = daemon_pid(env);
    BOOST_REQUIRE(bare > 0);
    bool ended = eventually([&] { return !running(bare); }, 2s);
    if (in_cgroups) {
      BOOST_TEST(check_story(id) == "success");
      BOOST_TEST(ended, "the daemon outlived its deployment");
    } else {
      // The rest of the story holds; the daemon may have escaped.
      auto states = github.kept_states(id);
      BOOST_TEST(
        states
        == (std::vector<std::string>{"queued", "in_progress", "success"}));
      BOOST_WARN_MESSAGE(ended, "without cgroups, a daemon that clears its "
                                "environment outlives its deployment");
    }
    BOOST_TEST_MESSAGE(
      "a daemon without heaven's environment ("
      << (in_cgroups ? "cgroups" : "tracked without cgroups") << "): "
      << (ended ? "ended with its deployment" : "outlived its deployment"));
    h->stop();
    // What escaped is ended here, by its pid.
    if (running(bare)
        && live_cmdline("/proc/" + std::to_string(bare))
             == "/bin/sleep " + daemon)
      ::kill(bare, SIGKILL);
  }
}

// 9. kill -9 while ansible-playbook runs with DEPLOYMENT_PRIVATE_KEY: the
//    key's 0600 file next to the checkout stays on disk with heaven gone,
//    and the restart that ends the deployment removes it with the checkout.
BOOST_AUTO_TEST_CASE(kill_9_during_ansible_leaves_no_key_on_disk) {
  constexpr int64_t id = 77200;
  auto data = tmp / "data-ansible";
  auto workspaces = data / "workspaces";
  // Ansible's module files of the killed run go to the test's directory.
  fs::create_directories(tmp / "module-tmp");
  auto extra = settings({{"DEPLOYMENT_PRIVATE_KEY",
                          "-----BEGIN OPENSSH PRIVATE KEY-----\\nkill-9-key"
                          "\\n-----END OPENSSH PRIVATE KEY-----"},
                         {"TMPDIR", (tmp / "module-tmp").string()}});
  auto keys = [&] {
    std::vector<fs::path> found;
    std::error_code ec;
    for (auto& e : fs::directory_iterator{workspaces, ec})
      if (e.path().extension() == ".key")
        found.push_back(e.path());
    return found;
  };
  auto h = std::make_unique<heaven_server>(data, github.base_url(), extra);
  BOOST_TEST(
    post(*h, id, event(id, "ansible-key", {{"provider", "ansible"}})).status
    == 201);
  BOOST_REQUIRE(
    eventually([&] { return count_exact("sleep " + bg) == 1; }, 120s));
  auto held = keys();
  BOOST_REQUIRE_EQUAL(held.size(), 1u);
  BOOST_TEST(read_text(held[0])
             == "-----BEGIN OPENSSH PRIVATE KEY-----\nkill-9-key\n"
                "-----END OPENSSH PRIVATE KEY-----\n");
  BOOST_TEST(((fs::status(held[0]).permissions() & fs::perms::all)
              == (fs::perms::owner_read | fs::perms::owner_write)),
             "the key file is not 0600");
  kill_hard(*h);
  keep_log(*h, "run1-ansible.stderr");
  BOOST_REQUIRE(fs::exists(held[0])); // Nothing of heaven ran to remove it.

  h = std::make_unique<heaven_server>(data, github.base_url(), extra);
  BOOST_REQUIRE(github.wait_terminal({id}, 60s));
  BOOST_TEST(check_story(id) == "error");
  BOOST_TEST(last_description(id) == restarted);
  BOOST_TEST(eventually([&] { return keys().empty(); }, 10s),
             "the key outlived its deployment: " << held[0]);
  BOOST_TEST(!fs::exists(workspaces / held[0].stem()));
  BOOST_TEST(eventually([&] { return leftovers() == 0; }, 10s),
             leftovers() << " process(es) left");
}

BOOST_AUTO_TEST_SUITE_END()
