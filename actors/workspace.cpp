#include "actors/workspace.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "actors/process.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "messages/atoms.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

std::string base64(const std::string& text) {
  std::string result(4 * ((text.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(result.data()),
                           reinterpret_cast<const unsigned char*>(text.data()),
                           static_cast<int>(text.size()));
  result.resize(static_cast<size_t>(n));
  return result;
}

void set_env(string_pairs& env, const std::string& key, std::string value) {
  for (auto& kvp : env)
    if (kvp.first == key) {
      kvp.second = std::move(value);
      return;
    }
  env.emplace_back(key, std::move(value));
}

/// Holds an flock(2) on a lock file: serialises mirror updates across
/// deployments and across heaven processes sharing the data directory.
class file_lock {
public:
  /// Takes the lock exclusively, or shared when `shared` (flock(2) modes).
  explicit file_lock(const std::string& path, bool shared = false) {
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      error_ = "cannot open " + path + ": " + std::strerror(errno);
      return;
    }
    while (::flock(fd_, shared ? LOCK_SH : LOCK_EX) != 0) {
      if (errno != EINTR) {
        error_ = "cannot lock " + path + ": " + std::strerror(errno);
        return;
      }
    }
  }
  file_lock(const file_lock&) = delete;
  file_lock& operator=(const file_lock&) = delete;
  ~file_lock() {
    if (fd_ >= 0)
      ::close(fd_); // Closing the last descriptor releases the lock.
  }
  const std::string& error() const {
    return error_;
  }

private:
  int fd_ = -1;
  std::string error_;
};

/// Bounds how many checkouts run at once: a burst of deployments would
/// otherwise start hundreds of git processes together and starve the rest
/// of heaven (webhook answers among them) of CPU and disk.
class checkout_slot {
public:
  checkout_slot() {
    std::unique_lock guard{mtx()};
    cv().wait(guard, [] { return in_use() < limit(); });
    ++in_use();
  }
  ~checkout_slot() {
    {
      std::lock_guard guard{mtx()};
      --in_use();
    }
    cv().notify_one();
  }
  checkout_slot(const checkout_slot&) = delete;
  checkout_slot& operator=(const checkout_slot&) = delete;

private:
  static std::size_t limit() {
    static const std::size_t n
      = std::max(2u, std::thread::hardware_concurrency());
    return n;
  }
  static std::mutex& mtx() {
    static std::mutex m;
    return m;
  }
  static std::condition_variable& cv() {
    static std::condition_variable c;
    return c;
  }
  static std::size_t& in_use() {
    static std::size_t n = 0;
    return n;
  }
};

/// Makes one checkout; all blocking, run from a detached actor.
class preparer {
public:
  preparer(workspace_plan plan, caf::actor deployment)
    : plan_(std::move(plan)), deployment_(std::move(deployment)),
      env_(git_env(plan_)) {
  }

  /// Returns true and the checkout's path, or false and why.
  std::pair<bool, std::string> run() {
    if (!valid_sha(plan_.sha))
      return {false, "invalid sha " + plan_.sha};
    auto data = fs::absolute(plan_.data_dir).lexically_normal();
    std::error_code ec;
    for (auto dir : {data / "mirrors", data / "workspaces"})
      if (fs::create_directories(dir, ec); ec)
        return {false, "cannot create " + dir.string() + ": " + ec.message()};
    auto mirror = data / "mirrors" / (sha256_hex(plan_.clone_url).substr(0, 16) + ".git");
    auto ws = data / "workspaces" / std::to_string(plan_.id);
    auto lock_path = mirror.string() + ".lock";
    // Commits never change: a mirror that has the sha needs no fetch. Fetches
    // take the mirror's lock exclusively; clones from it share it, so the
    // deployments of one repository check out in parallel.
    bool present = false;
    {
      file_lock shared{lock_path, true};
      if (!shared.error().empty())
        return {false, shared.error()};
      present = fs::exists(mirror / "HEAD") && has_commit(mirror);
    }
    if (!present) {
      file_lock exclusive{lock_path};
      if (!exclusive.error().empty())
        return {false, exclusive.error()};
      // Another deployment may have fetched it while this one waited.
      if (!fs::exists(mirror / "HEAD") || !has_commit(mirror)) {
        narrate("Fetching " + url_without_credentials(plan_.clone_url));
        if (auto why = update_mirror(mirror); !why.empty())
          return {false, why};
      }
    }
    {
      file_lock shared{lock_path, true};
      if (!shared.error().empty())
        return {false, shared.error()};
      if (!has_commit(mirror))
        return {false,
                "commit " + plan_.sha + " not found in "
                  + url_without_credentials(plan_.clone_url)};
      fs::remove_all(ws, ec);
      // A local clone hard-links the mirror's objects: cheap, and unlike
      // --shared it survives a later gc of the mirror.
      auto r = git({"clone", "--quiet", "--no-checkout", "--",
                    mirror.string(), ws.string()},
                   data);
      if (!r.empty()) {
        fs::remove_all(ws, ec);
        return {false, "could not clone the mirror: " + r};
      }
    }
    auto r = git({"-c", "advice.detachedHead=false", "checkout", "--quiet",
                  "--detach", plan_.sha},
                 ws);
    if (!r.empty()) {
      fs::remove_all(ws, ec);
      return {false, "could not check out " + plan_.sha + ": " + r};
    }
    narrate("Checked out " + plan_.sha + " into a private workspace");
    return {true, ws.string()};
  }

private:
  void narrate(std::string text) {
    if (deployment_)
      caf::anon_send(deployment_, log_atom::value,
                     log_line{stream::heaven, std::move(text)});
  }

  /// Runs git; returns "" on success, else why it failed (git's last
  /// stderr line when it said something).
  std::string git(std::vector<std::string> args, const fs::path& cwd,
                  bool forward = true) {
    process_spec spec;
    spec.argv.push_back("git");
    for (auto& x : args)
      spec.argv.push_back(std::move(x));
    spec.env = env_;
    spec.cwd = cwd.string();
    spec.scope = plan_.scope;
    // git explains itself over several lines; the one that says what went
    // wrong starts with "fatal:" or "error:".
    std::string last_err;
    bool last_is_fatal = false;
    auto on_line = [&](log_line line) {
      if (line.source == stream::err && !line.text.empty()) {
        auto fatal = line.text.rfind("fatal:", 0) == 0
                     || line.text.rfind("error:", 0) == 0;
        if (fatal || !last_is_fatal) {
          last_err = line.text;
          last_is_fatal = fatal;
        }
      }
      if (forward && deployment_)
        caf::anon_send(deployment_, log_atom::value, std::move(line));
    };
    auto info = run_process(spec, on_line, deployment_);
    if (!info.error.empty())
      return info.error;
    if (info.code == 0)
      return {};
    if (!last_err.empty())
      return last_err;
    if (info.signal != 0)
      return "git was killed by signal " + std::to_string(info.signal);
    return "git exited with status " + std::to_string(info.code);
  }

  bool has_commit(const fs::path& mirror) {
    return git({"cat-file", "-e", plan_.sha + "^{commit}"}, mirror, false)
      .empty();
  }

  std::string fetch_failed(const std::string& why) const {
    return "could not fetch " + url_without_credentials(plan_.clone_url)
           + ": " + why;
  }

  std::string update_mirror(const fs::path& mirror) {
    std::error_code ec;
    if (fs::exists(mirror / "HEAD")) {
      auto r = git({"remote", "update", "--prune"}, mirror);
      return r.empty() ? r : fetch_failed(r);
    }
    // Clone next to the final place and rename: a half-made mirror is never
    // mistaken for a good one.
    auto tmp = mirror;
    tmp += ".tmp-" + std::to_string(::getpid()) + "-"
           + std::to_string(plan_.id);
    fs::remove_all(tmp, ec);
    fs::remove_all(mirror, ec);
    auto r = git({"clone", "--mirror", "--quiet", "--", plan_.clone_url,
                  tmp.string()},
                 mirror.parent_path());
    if (!r.empty()) {
      fs::remove_all(tmp, ec);
      return fetch_failed(r);
    }
    fs::rename(tmp, mirror, ec);
    if (ec)
      return "cannot move the mirror into place: " + ec.message();
    return {};
  }

  workspace_plan plan_;
  caf::actor deployment_;
  string_pairs env_;
};

} // namespace

string_pairs git_env(const workspace_plan& plan) {
  auto env = plan.env;
  set_env(env, "GIT_TERMINAL_PROMPT", "0");
  auto prefix = "https://" + plan.token_host + "/";
  if (!plan.token.empty() && !plan.token_host.empty()
      && plan.clone_url.compare(0, prefix.size(), prefix) == 0) {
    set_env(env, "GIT_CONFIG_COUNT", "1");
    set_env(env, "GIT_CONFIG_KEY_0", "http." + prefix + ".extraheader");
    set_env(env, "GIT_CONFIG_VALUE_0",
            "Authorization: Basic " + base64("x-access-token:" + plan.token));
  }
  return env;
}

void spawn_workspace(caf::actor_system& sys, workspace_plan plan,
                     caf::actor deployment, bool detach) {
  auto work = [plan = std::move(plan), deployment = std::move(deployment)] {
    auto id = plan.id;
    auto url = url_without_credentials(plan.clone_url);
    preparer p{plan, deployment};
    std::pair<bool, std::string> result;
    try {
      checkout_slot slot;
      result = p.run();
    } catch (const std::exception& e) {
      result = {false, std::string{"workspace failed: "} + e.what()};
    }
    if (result.first)
      spdlog::info("deployment {} has a private checkout of {} in {}", id, url,
                   result.second);
    else
      spdlog::warn("deployment {} got no checkout of {}: {}", id, url,
                   result.second);
    if (deployment)
      caf::anon_send(deployment, prepared_atom::value, result.first,
                     std::move(result.second));
  };
  run_blocking(sys, std::move(work), detach);
}

void spawn_cleanup(caf::actor_system& sys, std::string path, bool detach) {
  run_blocking(
    sys,
    [path = std::move(path)] {
      std::error_code ec;
      fs::remove_all(path, ec);
      if (ec)
        spdlog::warn("could not remove the checkout {}: {}", path,
                     ec.message());
    },
    detach);
}

} // namespace heaven
