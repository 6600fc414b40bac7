#include "tools/loadtest_github.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "tools/support/http_stub.hpp"

namespace heaven::loadtest {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// Runs `cmd` with the shell; its output without the trailing newline, or
/// throws.
std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p)
    throw std::runtime_error("cannot run: " + cmd);
  char buf[512];
  while (auto n = std::fread(buf, 1, sizeof(buf), p))
    out.append(buf, n);
  if (pclose(p) != 0)
    throw std::runtime_error("the stand-in's repository: `" + cmd
                             + "` failed: " + out);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

} // namespace

bool terminal_state(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

struct github_stand_in::impl {
  fs::path repo;
  std::string sha;
  mutable std::mutex mtx;
  std::map<int64_t, std::vector<status_seen>> statuses;
  uint64_t next_build = 1;
  /// Last: it stops (and calls `answer` no more) before the rest goes.
  test::http_stub stub;

  /// A Heroku build: done at once (what is measured is heaven).
  std::string build_json(const std::string& id, const std::string& app,
                         bool done) const {
    return json{
      {"id", id},
      {"status", done ? "succeeded" : "pending"},
      {"output_stream_url", stub.base_url() + "streams/" + id},
      {"source_blob", {{"version", sha}}},
      {"app", {{"id", "a0000000-89ab-4def-8000-000000000001"}, {"name", app}}}}
      .dump();
  }

  test::stub_response answer(const test::recorded_request& r) {
    auto seg = test::path_segments(r.target);
    bool post = r.method == "POST", get = r.method == "GET";
    // POST /repos/<o>/<r>/deployments/<id>/statuses
    if (post && seg.size() == 6 && seg[0] == "repos" && seg[3] == "deployments"
        && seg[5] == "statuses") {
      auto j = json::parse(r.body, nullptr, false);
      std::string state = j.is_object() ? j.value("state", "") : "";
      int64_t id = std::strtoll(seg[4].c_str(), nullptr, 10);
      std::lock_guard guard{mtx};
      statuses[id].push_back({state, now_ns()});
      return {};
    }
    // GET /repos/<o>/<r>/tarball/<sha>: the link Heroku fetches.
    if (get && seg.size() == 5 && seg[0] == "repos" && seg[3] == "tarball")
      return {302,
              {{"Location", stub.base_url() + "codeload/" + seg[1] + "/"
                              + seg[2] + "/tar.gz/" + seg[4]}},
              ""};
    // POST /apps/<app>/builds, GET /apps/<app>/builds/<id>
    if (seg.size() >= 3 && seg[0] == "apps" && seg[2] == "builds") {
      if (post && seg.size() == 3) {
        char id[48];
        std::lock_guard guard{mtx};
        std::snprintf(id, sizeof(id), "b0000000-89ab-4def-8000-%012llx",
                      static_cast<unsigned long long>(next_build++));
        return {201,
                {{"Content-Type", "application/json"}},
                build_json(id, seg[1], false)};
      }
      if (get && seg.size() == 4)
        return {200,
                {{"Content-Type", "application/json"}},
                build_json(seg[3], seg[1], true)};
    }
    // GET /streams/<id>: the build's whole output at once.
    if (get && seg.size() == 2 && seg[0] == "streams")
      return {200,
              {{"Content-Type", "text/plain"}},
              "-----> heaven loadtest build\n"};
    return {};
  }
};

github_stand_in::github_stand_in(const fs::path& dir)
  : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  d.repo = dir / "app";
  fs::create_directories(d.repo / "script");
  auto script = d.repo / "script" / "deploy";
  std::ofstream{script} << "#!/bin/sh\necho deployed $SHA\n";
  fs::permissions(script, fs::perms::owner_all | fs::perms::group_read
                            | fs::perms::others_read);
  auto q = shell_quote(d.repo.string());
  sh("git -C " + q + " init -q --initial-branch=main");
  sh("cd " + q
     + " && git add -A && git -c user.name=loadtest "
       "-c user.email=loadtest@localhost commit -q -m loadtest");
  d.sha = sh("git -C " + q + " rev-parse HEAD");
  d.stub.respond_with(
    [&d](const test::recorded_request& r) { return d.answer(r); });
}

github_stand_in::~github_stand_in() = default;

std::string github_stand_in::base_url() const {
  return impl_->stub.base_url();
}

std::string github_stand_in::clone_url() const {
  return "file://" + impl_->repo.string();
}

std::string github_stand_in::sha() const {
  return impl_->sha;
}

std::map<int64_t, std::vector<status_seen>> github_stand_in::statuses() const {
  std::lock_guard guard{impl_->mtx};
  return impl_->statuses;
}

deployment_figures
settle(const github_stand_in& github,
       const std::map<int64_t, accepted_deployment>& accepted, double wait_s,
       uint64_t& unfinished) {
  auto deadline = now_ns() + static_cast<int64_t>(wait_s * 1e9);
  std::map<int64_t, std::vector<status_seen>> seen;
  auto count_unfinished = [&] {
    uint64_t open = 0;
    for (auto& [id, a] : accepted) {
      auto it = seen.find(id);
      bool ended = false;
      if (it != seen.end())
        for (auto& st : it->second)
          ended = ended || terminal_state(st.state);
      open += ended ? 0 : 1;
    }
    return open;
  };
  while (true) {
    seen = github.statuses();
    unfinished = count_unfinished();
    if (unfinished == 0 || now_ns() >= deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  deployment_figures out;
  for (auto& [id, a] : accepted) {
    auto& f = out[a.provider];
    ++f.accepted;
    auto it = seen.find(id);
    if (it == seen.end())
      continue;
    std::map<std::string, bool> first;
    for (auto& st : it->second) {
      auto us = static_cast<uint64_t>(std::max<int64_t>(0, st.at_ns - a.sent_ns)
                                      / 1000);
      if (!first[st.state]) {
        first[st.state] = true;
        f.to_state[st.state].record(us);
      }
      if (terminal_state(st.state)) {
        ++f.endings[st.state];
        f.to_terminal.record(us);
        break;
      }
    }
  }
  return out;
}

} // namespace heaven::loadtest
