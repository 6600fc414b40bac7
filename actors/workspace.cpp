#include "actors/workspace.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/process.hpp"
#include "base/config.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "messages/atoms.hpp"
#include "messages/errors.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

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
    static const std::size_t n = std::max(2u,
                                          std::thread::hardware_concurrency());
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
  preparer(workspace_plan plan, checkout_client deployment,
           process_watcher owner)
    : plan_(std::move(plan)), deployment_(std::move(deployment)),
      owner_(std::move(owner)), env_(git_env(plan_)) {
  }

  /// Returns the checkout's path, or why there is none
  /// (ec::checkout_failed).
  caf::expected<std::string> run() {
    if (!valid_sha(plan_.sha))
      return failed("invalid sha " + plan_.sha);
    auto data = fs::absolute(plan_.data_dir).lexically_normal();
    std::error_code fs_err;
    for (auto dir : {data / "mirrors", data / "workspaces"})
      if (fs::create_directories(dir, fs_err); fs_err)
        return failed("cannot create " + dir.string() + ": "
                      + fs_err.message());
    auto mirror = data / "mirrors"
                  / (sha256_hex(plan_.clone_url).substr(0, 16) + ".git");
    auto ws = data / "workspaces" / std::to_string(plan_.id);
    auto lock_path = mirror.string() + ".lock";
    // Commits never change: a mirror that has the sha needs no fetch. Fetches
    // take the mirror's lock exclusively; clones from it share it, so the
    // deployments of one repository check out in parallel.
    bool present = false;
    {
      file_lock shared{lock_path, true};
      if (!shared.error().empty())
        return failed(shared.error());
      present = fs::exists(mirror / "HEAD") && has_commit(mirror);
    }
    if (!present) {
      file_lock exclusive{lock_path};
      if (!exclusive.error().empty())
        return failed(exclusive.error());
      // Another deployment may have fetched it while this one waited.
      if (!fs::exists(mirror / "HEAD") || !has_commit(mirror)) {
        narrate("Fetching " + url_without_credentials(plan_.clone_url));
        if (auto err = update_mirror(mirror))
          return err;
      }
    }
    {
      file_lock shared{lock_path, true};
      if (!shared.error().empty())
        return failed(shared.error());
      if (!has_commit(mirror))
        return failed("commit " + plan_.sha + " not found in "
                      + url_without_credentials(plan_.clone_url));
      fs::remove_all(ws, fs_err);
      // A local clone hard-links the mirror's objects: cheap, and unlike
      // --shared it survives a later gc of the mirror.
      auto r = git({"clone", "--quiet", "--no-checkout", "--", mirror.string(),
                    ws.string()},
                   data);
      if (r) {
        fs::remove_all(ws, fs_err);
        return failed("could not clone the mirror: " + describe(r));
      }
    }
    auto r = git({"-c", "advice.detachedHead=false", "checkout", "--quiet",
                  "--detach", plan_.sha},
                 ws);
    if (r) {
      fs::remove_all(ws, fs_err);
      return failed("could not check out " + plan_.sha + ": " + describe(r));
    }
    narrate("Checked out " + plan_.sha + " into a private workspace");
    return ws.string();
  }

private:
  static caf::error failed(std::string why) {
    return make_error(ec::checkout_failed, std::move(why));
  }

  void narrate(std::string text) {
    if (deployment_)
      caf::anon_send(deployment_, log_atom::value,
                     log_line{stream::heaven, std::move(text)});
  }

  /// Runs git; returns why it failed (git's last stderr line when it said
  /// something), or no error.
  caf::error git(std::vector<std::string> args, const fs::path& cwd,
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
    auto info = run_process(spec, on_line, owner_);
    if (!info.error.empty())
      return make_error(ec::cannot_start, info.error);
    if (info.code == 0)
      return {};
    if (!last_err.empty())
      return failed(last_err);
    if (info.signal != 0)
      return failed("git was killed by signal " + std::to_string(info.signal));
    return failed("git exited with status " + std::to_string(info.code));
  }

  bool has_commit(const fs::path& mirror) {
    return !git({"cat-file", "-e", plan_.sha + "^{commit}"}, mirror, false);
  }

  caf::error fetch_failed(const caf::error& why) const {
    return failed("could not fetch " + url_without_credentials(plan_.clone_url)
                  + ": " + describe(why));
  }

  caf::error update_mirror(const fs::path& mirror) {
    std::error_code fs_err;
    if (fs::exists(mirror / "HEAD")) {
      auto r = git({"remote", "update", "--prune"}, mirror);
      return r ? fetch_failed(r) : r;
    }
    // Clone next to the final place and rename: a half-made mirror is never
    // mistaken for a good one.
    auto tmp = mirror;
    tmp += ".tmp-" + std::to_string(::getpid()) + "-"
           + std::to_string(plan_.id);
    fs::remove_all(tmp, fs_err);
    fs::remove_all(mirror, fs_err);
    auto r = git({"clone", "--mirror", "--quiet", "--", plan_.clone_url,
                  tmp.string()},
                 mirror.parent_path());
    if (r) {
      fs::remove_all(tmp, fs_err);
      return fetch_failed(r);
    }
    fs::rename(tmp, mirror, fs_err);
    if (fs_err)
      return failed("cannot move the mirror into place: " + fs_err.message());
    return {};
  }

  workspace_plan plan_;
  checkout_client deployment_;
  /// The WORKSPACE actor: hears `started` of every git process.
  process_watcher owner_;
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
            "Authorization: Basic "
              + base64_encode("x-access-token:" + plan.token));
  }
  return env;
}

workspace_actor::behavior_type
workspace(workspace_actor::stateful_pointer<workspace_state> self,
          workspace_plan plan, checkout_client deployment, bool detach) {
  self->state.deployment = deployment;
  // The runner's git processes report `started` here, where `cancel` finds
  // them; its lines go straight to the deployment.
  auto me = workspace_actor{self};
  auto work = [plan = std::move(plan), deployment, me] {
    auto id = plan.id;
    auto url = url_without_credentials(plan.clone_url);
    preparer p{plan, deployment, me};
    caf::expected<std::string> result{std::string{}};
    try {
      checkout_slot slot;
      result = p.run();
    } catch (const std::exception& e) {
      result = make_error(ec::checkout_failed,
                          std::string{"workspace failed: "} + e.what());
    }
    if (result) {
      spdlog::info("deployment {} has a private checkout of {} in {}", id, url,
                   *result);
      caf::anon_send(me, prepared_atom::value, true, std::move(*result));
    } else {
      auto why = describe(result.error());
      spdlog::warn("deployment {} got no checkout of {}: {}", id, url, why);
      caf::anon_send(me, prepared_atom::value, false, std::move(why));
    }
  };
  run_blocking(self->system(), std::move(work), detach);
  return {
    [=](cancel_atom) {
      auto& st = self->state;
      if (st.cancelled)
        return;
      st.cancelled = true;
      kill_group(st.pgid, SIGTERM);
    },
    [=](started_atom, int32_t pgid) {
      auto& st = self->state;
      if (st.cancelled)
        kill_group(pgid, SIGKILL); // The checkout goes on for nobody.
      else
        st.pgid = pgid;
    },
    [=](prepared_atom, bool ok, std::string& what) {
      auto& st = self->state;
      if (st.deployment)
        caf::anon_send(st.deployment, prepared_atom::value, ok,
                       std::move(what));
      self->quit();
    },
  };
}

workspace_actor spawn_workspace(caf::actor_system& sys, workspace_plan plan,
                                checkout_client deployment, bool detach) {
  return sys.spawn(workspace, std::move(plan), std::move(deployment), detach);
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
