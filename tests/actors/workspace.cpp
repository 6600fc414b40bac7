#include "actors/workspace.hpp"

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>

#include "actors/checkout_queue.hpp"
#include "actors/process.hpp"
#include "actors/scope.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

struct workspace_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  recorder_actor sink = sys.spawn(recorder, rec);
  temp_dir tmp;
  fs::path origin = tmp.path / "origin";
  fs::path data = tmp.path / "data";

  workspace_fixture() {
    fs::create_directories(tmp.path / "home");
    fs::create_directories(origin);
    git(origin, {"init", "--quiet", "--initial-branch=main"});
  }

  ~workspace_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  string_pairs env() {
    return child_env(tmp.path / "home");
  }

  /// Runs git in `dir` and returns its stdout's first line.
  std::string git(const fs::path& dir, std::vector<std::string> args) {
    process_spec spec{{"git", "-c", "user.name=t", "-c", "user.email=t@t"},
                      env(),
                      dir.string(),
                      {}};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    std::vector<std::string> out;
    std::string err;
    auto info = run_process(
      spec,
      [&](log_line line) {
        if (line.source == stream::out)
          out.push_back(line.text);
        else
          err += line.text + "\n";
      },
      process_watcher{});
    BOOST_REQUIRE_MESSAGE(info.code == 0, "git failed: " + err + info.error);
    return out.empty() ? std::string{} : out.front();
  }

  /// Commits `text` as app.txt in the origin and returns the new sha.
  std::string commit(const std::string& text) {
    write_file(origin / "app.txt", text);
    git(origin, {"add", "app.txt"});
    git(origin, {"commit", "--quiet", "-m", text});
    return git(origin, {"rev-parse", "HEAD"});
  }

  workspace_plan plan(int64_t id, std::string sha) {
    workspace_plan p;
    p.data_dir = data.string();
    p.id = id;
    p.clone_url = "file://" + origin.string();
    p.sha = std::move(sha);
    p.env = env();
    return p;
  }

  /// Prepares a workspace and returns what `prepared` said.
  std::pair<bool, std::string> prepare(workspace_plan p) {
    size_t before = 0;
    {
      std::lock_guard<std::mutex> guard{rec->mx};
      before = rec->prepared.size();
    }
    spawn_workspace(sys, std::move(p), sink);
    BOOST_REQUIRE(rec->wait([&] { return rec->prepared.size() > before; },
                            std::chrono::seconds(15)));
    std::lock_guard<std::mutex> guard{rec->mx};
    return rec->prepared.back();
  }

  size_t count_lines(const std::string& text) {
    std::lock_guard<std::mutex> guard{rec->mx};
    size_t n = 0;
    for (auto& x : rec->lines)
      if (x.source == stream::heaven && x.text == text)
        ++n;
    return n;
  }
};

/// The threads of this process now.
size_t thread_count() {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator{"/proc/self/task"})
    ++n;
  return n;
}

std::string base64_of(const std::string& text) {
  // Computed by `printf %s TEXT | base64` on the command line.
  if (text == "x-access-token:ghs_s3cr3t")
    return "eC1hY2Nlc3MtdG9rZW46Z2hzX3MzY3IzdA==";
  return {};
}

std::string lookup(const string_pairs& env, const std::string& key) {
  for (auto& [k, v] : env)
    if (k == key)
      return v;
  return "<unset>";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(workspace, workspace_fixture)

BOOST_AUTO_TEST_CASE(checks_out_the_exact_sha_and_reuses_the_mirror) {
  auto sha1 = commit("version one\n");
  auto first = prepare(plan(1, sha1));
  BOOST_REQUIRE_MESSAGE(first.first, first.second);
  auto ws1 = fs::path{first.second};
  BOOST_TEST(ws1.is_absolute());
  BOOST_TEST(ws1 == data / "workspaces" / "1");
  BOOST_TEST(git(ws1, {"rev-parse", "HEAD"}) == sha1);
  BOOST_TEST(read_file(ws1 / "app.txt") == "version one\n");
  BOOST_TEST(count_lines("Fetching file://" + origin.string()) == 1u);
  BOOST_TEST(count_lines("Checked out " + sha1 + " into a private workspace")
             == 1u);
  {
    // Each git's `started` goes to the workspace actor, which ends them on
    // `cancel` (see a_cancelled_checkout_stops_its_git_and_still_reports):
    // the deployment is told no pid.
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->started.empty());
  }
  // A new commit on the origin: the same mirror is fetched, not recloned.
  auto sha2 = commit("version two\n");
  std::vector<fs::path> mirrors;
  for (auto& e : fs::directory_iterator{data / "mirrors"})
    if (e.path().extension() == ".git")
      mirrors.push_back(e.path());
  BOOST_REQUIRE_EQUAL(mirrors.size(), 1u);
  BOOST_TEST(mirrors.front().stem().string().size() == 16u);
  write_file(mirrors.front() / "heaven-marker", "kept");
  auto second = prepare(plan(2, sha2));
  BOOST_REQUIRE_MESSAGE(second.first, second.second);
  auto ws2 = fs::path{second.second};
  BOOST_TEST(git(ws2, {"rev-parse", "HEAD"}) == sha2);
  BOOST_TEST(read_file(ws2 / "app.txt") == "version two\n");
  BOOST_TEST(fs::exists(mirrors.front() / "heaven-marker"));
  BOOST_TEST(count_lines("Fetching file://" + origin.string()) == 2u);
  // The first checkout is private: still at its own sha.
  BOOST_TEST(git(ws1, {"rev-parse", "HEAD"}) == sha1);
  BOOST_TEST(read_file(ws1 / "app.txt") == "version one\n");
  // An older sha that the mirror has needs no fetch at all.
  auto third = prepare(plan(3, sha1));
  BOOST_REQUIRE_MESSAGE(third.first, third.second);
  BOOST_TEST(git(fs::path{third.second}, {"rev-parse", "HEAD"}) == sha1);
  BOOST_TEST(count_lines("Fetching file://" + origin.string()) == 2u);
  // Cleanup removes a checkout.
  spawn_cleanup(sys, ws1.string());
  BOOST_TEST(eventually([&] { return !fs::exists(ws1); }));
  BOOST_TEST(fs::exists(ws2 / "app.txt"));
}

BOOST_AUTO_TEST_CASE(concurrent_first_deployments_share_one_mirror) {
  // Both find no mirror; the lock makes the second wait and reuse it.
  auto sha = commit("shared\n");
  for (int64_t id : {11, 12, 13})
    spawn_workspace(sys, plan(id, sha), sink);
  BOOST_REQUIRE(rec->wait([&] { return rec->prepared.size() == 3; },
                          std::chrono::seconds(15)));
  std::lock_guard<std::mutex> guard{rec->mx};
  for (auto& [ok, path] : rec->prepared) {
    BOOST_TEST(ok, path);
    BOOST_TEST(read_file(fs::path{path} / "app.txt") == "shared\n");
  }
  size_t mirrors = 0;
  for (auto& e : fs::directory_iterator{data / "mirrors"})
    mirrors += e.path().extension() == ".git" ? 1 : 0;
  BOOST_TEST(mirrors == 1u);
}

BOOST_AUTO_TEST_CASE(an_unknown_sha_is_refused) {
  commit("only\n");
  auto missing = std::string(40, 'a');
  auto result = prepare(plan(7, missing));
  BOOST_TEST(!result.first);
  BOOST_TEST(result.second
             == "commit " + missing + " not found in file://"
                  + origin.string());
  BOOST_TEST(!fs::exists(data / "workspaces" / "7"));
}

BOOST_AUTO_TEST_CASE(a_clone_failure_names_gits_complaint) {
  auto p = plan(8, std::string(40, 'b'));
  p.clone_url = "file://" + (tmp.path / "nowhere").string();
  auto result = prepare(p);
  BOOST_TEST(!result.first);
  BOOST_TEST(result.second.find("could not fetch " + p.clone_url + ": fatal:")
               == 0u,
             result.second);
  // git's own complaint reached the log too.
  auto err = rec->texts(stream::err);
  BOOST_TEST(!err.empty());
}

BOOST_AUTO_TEST_CASE(the_token_goes_into_gits_environment_only) {
  auto p = plan(9, std::string(40, 'c'));
  p.token = "ghs_s3cr3t";
  p.token_host = "github.com";
  p.clone_url = "https://github.com/octo/app.git";
  auto env = git_env(p);
  BOOST_TEST(lookup(env, "GIT_TERMINAL_PROMPT") == "0");
  BOOST_TEST(lookup(env, "GIT_CONFIG_COUNT") == "1");
  BOOST_TEST(lookup(env, "GIT_CONFIG_KEY_0")
             == "http.https://github.com/.extraheader");
  BOOST_TEST(lookup(env, "GIT_CONFIG_VALUE_0")
             == "Authorization: Basic "
                  + base64_of("x-access-token:ghs_s3cr3t"));
  BOOST_TEST(lookup(env, "HOME") == (tmp.path / "home").string());
  // No token for another host, plain http, or no token at all.
  for (auto url :
       {"https://gitlab.com/octo/app.git", "http://github.com/octo/app.git",
        "https://github.com.evil.example/octo/app.git"}) {
    auto q = p;
    q.clone_url = url;
    BOOST_TEST(lookup(git_env(q), "GIT_CONFIG_VALUE_0") == "<unset>", url);
    BOOST_TEST(lookup(git_env(q), "GIT_TERMINAL_PROMPT") == "0");
  }
  auto q = p;
  q.token.clear();
  BOOST_TEST(lookup(git_env(q), "GIT_CONFIG_COUNT") == "<unset>");
  // A stand-in git on PATH records how it was called: the token is in its
  // environment, never in its argv, and nowhere in the log or the answer.
  auto bin = tmp.path / "bin";
  write_file(bin / "git",
             "#!/bin/sh\n"
             "echo \"argv: $*\" >> \""
               + (tmp.path / "calls").string()
               + "\"\n"
                 "echo \"header: $GIT_CONFIG_VALUE_0\" >> \""
               + (tmp.path / "calls").string()
               + "\"\n"
                 "echo 'fatal: no network here' >&2\n"
                 "exit 128\n",
             true);
  p.env = {{"PATH", bin.string() + ":/usr/bin:/bin"},
           {"HOME", (tmp.path / "home").string()}};
  auto result = prepare(p);
  BOOST_TEST(!result.first);
  BOOST_TEST(result.second
               == "could not fetch https://github.com/octo/app.git: fatal: "
                  "no network here",
             result.second);
  auto calls = read_file(tmp.path / "calls");
  BOOST_TEST(calls.find("argv: clone --mirror --quiet -- "
                        "https://github.com/octo/app.git")
               != std::string::npos,
             calls);
  BOOST_TEST(calls.find("header: Authorization: Basic "
                        + base64_of("x-access-token:ghs_s3cr3t"))
             != std::string::npos);
  std::istringstream in{calls};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("argv:", 0) == 0)
      BOOST_TEST(line.find("ghs_s3cr3t") == std::string::npos, line);
  std::lock_guard<std::mutex> guard{rec->mx};
  for (auto& x : rec->lines)
    BOOST_TEST(x.text.find("ghs_s3cr3t") == std::string::npos, x.text);
  BOOST_TEST(result.second.find("ghs_s3cr3t") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_git_runs_in_the_deployments_scope) {
  auto sha1 = commit("scoped\n");
  process_scopes scopes{data.string(), false};
  auto p = plan(21, sha1);
  p.scope = scopes.open(21);
  auto result = prepare(p);
  BOOST_REQUIRE_MESSAGE(result.first, result.second);
  // The mirror's clone, the lookup of the sha, the private clone and the
  // checkout: each git was recorded in the scope.
  std::istringstream in{read_file(p.scope.record)};
  size_t groups = 0;
  for (std::string line; std::getline(in, line);)
    groups += line.rfind("group ", 0) == 0 ? 1 : 0;
  BOOST_TEST(groups >= 4u);
  // Once the deployment has ended, no git starts for it.
  BOOST_TEST(end_scope(p.scope, std::chrono::seconds(5)).ended == 0u);
  auto again = prepare(p);
  BOOST_TEST(!again.first);
  BOOST_TEST(again.second.find("deployment 21 has ended") != std::string::npos,
             again.second);
}

BOOST_AUTO_TEST_CASE(a_cancelled_checkout_stops_its_git_and_still_reports) {
  // A stand-in git that hangs, as a fetch from a stalled host does.
  auto bin = tmp.path / "bin";
  write_file(bin / "git", "#!/bin/sh\necho fetching\nexec sleep 60\n", true);
  auto p = plan(22, std::string(40, 'd'));
  p.env = {{"PATH", bin.string() + ":/usr/bin:/bin"},
           {"HOME", (tmp.path / "home").string()}};
  auto ws = spawn_workspace(sys, p, sink);
  BOOST_REQUIRE(rec->wait([&] { return rec->has_line_locked("fetching"); }));
  auto start = std::chrono::steady_clock::now();
  caf::anon_send(ws, cancel_atom::value);
  // The workspace ends its git itself; `prepared` is still its last word.
  BOOST_REQUIRE(rec->wait([&] { return !rec->prepared.empty(); }));
  BOOST_TEST(
    (std::chrono::steady_clock::now() - start < std::chrono::seconds(30)));
  std::lock_guard<std::mutex> guard{rec->mx};
  BOOST_TEST(!rec->prepared.back().first);
  BOOST_TEST(rec->prepared.back().second
               == "could not fetch " + p.clone_url
                    + ": git was killed by signal 15",
             rec->prepared.back().second);
}

BOOST_AUTO_TEST_CASE(waiting_checkouts_hold_no_thread_and_leave_the_queue) {
  // A stand-in git that waits until the test opens the gate, as a slow
  // fetch does, and notes how it was called.
  auto bin = tmp.path / "bin";
  auto gate = tmp.path / "gate";
  auto calls = tmp.path / "calls";
  write_file(bin / "git",
             "#!/bin/sh\n"
             "echo \"$*\" >> '"
               + calls.string()
               + "'\n"
                 "while [ ! -e '"
               + gate.string()
               + "' ]; do sleep 0.02; done\n"
                 "exit 1\n",
             true);
  auto& queue = checkout_queue::shared();
  auto before = thread_count();
  constexpr int64_t n = 200;
  std::vector<workspace_actor> all;
  for (int64_t id = 1; id <= n; ++id) {
    auto p = plan(1000 + id, std::string(40, 'e'));
    p.env = {{"PATH", bin.string() + ":/usr/bin:/bin"},
             {"HOME", (tmp.path / "home").string()}};
    all.push_back(spawn_workspace(sys, p, sink));
  }
  // Every thread of the queue is busy; the rest wait as entries.
  BOOST_REQUIRE(eventually([&] {
    return queue.waiting() == static_cast<size_t>(n) - queue.threads();
  }));
  // The queue's threads may have started just now; nothing else did.
  BOOST_TEST(thread_count() <= before + queue.threads() + 2,
             "threads before " << before << ", now " << thread_count());
  // A waiting checkout that is cancelled leaves the queue at once and
  // still reports; its git never runs.
  caf::anon_send(all.back(), cancel_atom::value);
  BOOST_REQUIRE(rec->wait([&] { return !rec->prepared.empty(); }));
  BOOST_TEST(queue.waiting() == static_cast<size_t>(n) - queue.threads() - 1);
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->prepared.size() == 1u);
    BOOST_TEST(!rec->prepared.front().first);
    BOOST_TEST(rec->prepared.front().second
               == "cancelled before the checkout began");
  }
  write_file(gate, "open");
  BOOST_REQUIRE(
    rec->wait([&] { return rec->prepared.size() == static_cast<size_t>(n); },
              std::chrono::seconds(120)));
  BOOST_TEST(queue.waiting() == 0u);
  auto text = read_file(calls);
  BOOST_TEST(text.find("-" + std::to_string(1000 + n)) == std::string::npos);
  BOOST_TEST(text.find("-" + std::to_string(1000 + n - 1))
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_script_in_its_checkout_cannot_break_the_mirror) {
  auto sha1 = commit("one\n");
  auto first = prepare(plan(31, sha1));
  BOOST_REQUIRE_MESSAGE(first.first, first.second);
  auto ws1 = fs::path{first.second};
  // What a deploy script may do in its checkout: commit, collect garbage,
  // throw the objects away.
  write_file(ws1 / "app.txt", "changed by a script\n");
  git(ws1, {"commit", "--quiet", "-am", "local"});
  auto local = git(ws1, {"rev-parse", "HEAD"});
  git(ws1, {"gc", "--quiet", "--prune=now"});
  fs::remove_all(ws1 / ".git" / "objects");
  // The mirror still serves a new sha and the old one, each in a clean
  // checkout of its own that borrows it.
  auto sha2 = commit("two\n");
  auto second = prepare(plan(32, sha2));
  BOOST_REQUIRE_MESSAGE(second.first, second.second);
  auto ws2 = fs::path{second.second};
  BOOST_TEST(git(ws2, {"rev-parse", "HEAD"}) == sha2);
  BOOST_TEST(read_file(ws2 / "app.txt") == "two\n");
  BOOST_TEST(git(ws2, {"status", "--porcelain"}) == "");
  auto third = prepare(plan(33, sha1));
  BOOST_REQUIRE_MESSAGE(third.first, third.second);
  auto ws3 = fs::path{third.second};
  BOOST_TEST(git(ws3, {"rev-parse", "HEAD"}) == sha1);
  BOOST_TEST(read_file(ws3 / "app.txt") == "one\n");
  // Nothing of the script's reached the mirror, which is whole.
  fs::path mirror;
  for (auto& e : fs::directory_iterator{data / "mirrors"})
    if (e.path().extension() == ".git")
      mirror = e.path();
  BOOST_REQUIRE(!mirror.empty());
  git(mirror, {"fsck", "--no-progress"});
  BOOST_TEST(git(mirror, {"rev-parse", "--verify", "--quiet", sha1}) == sha1);
  std::vector<std::string> out;
  auto info = run_process(
    process_spec{{"git", "cat-file", "-e", local}, env(), mirror.string(), {}},
    [&](log_line line) { out.push_back(line.text); }, process_watcher{});
  BOOST_TEST(info.code != 0);
  // As a clone of it did, the checkout knows the mirror as `origin`.
  BOOST_TEST(git(ws2, {"remote", "get-url", "origin"}) == mirror.string());
}

BOOST_AUTO_TEST_SUITE_END()
