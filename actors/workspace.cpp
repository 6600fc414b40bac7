#include "actors/workspace.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
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
#include <caf/expected.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/checkout_queue.hpp"
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
    // Commits never change: a mirror that has the sha needs no fetch, so
    // the usual checkout is tried first, under the mirror's lock shared
    // (fetches take it exclusively; the deployments of one repository check
    // out in parallel). Only when it fails for want of the commit does the
    // mirror fetch.
    {
      file_lock shared{lock_path, true};
      if (!shared.error().empty())
        return failed(shared.error());
      if (fs::exists(mirror / "HEAD")) {
        auto r = check_out(mirror, ws, false);
        if (!r)
          return checked_out(ws);
        if (has_commit(mirror))
          return failed("could not check out " + plan_.sha + ": "
                        + describe(r));
      }
    }
    {
      file_lock exclusive{lock_path};
      if (!exclusive.error().empty())
        return failed(exclusive.error());
      // Another deployment may have fetched it while this one waited.
      if (!fs::exists(mirror / "HEAD") || !has_commit(mirror)) {
        narrate("Fetching " + url_without_credentials(plan_.clone_url));
        if (auto err = update_mirror(mirror))
          return err;
        if (!has_commit(mirror))
          return failed("commit " + plan_.sha + " not found in "
                        + url_without_credentials(plan_.clone_url));
      }
    }
    file_lock shared{lock_path, true};
    if (!shared.error().empty())
      return failed(shared.error());
    if (auto r = check_out(mirror, ws, true))
      return failed("could not check out " + plan_.sha + ": " + describe(r));
    return checked_out(ws);
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

  std::string checked_out(const fs::path& ws) {
    narrate("Checked out " + plan_.sha + " into a private workspace");
    return ws.string();
  }

  /// Makes `ws` a private repository at the sha, borrowing the mirror's
  /// objects, in two git processes; removes it again when that fails.
  ///
  /// The cheapest correct checkout (measured with heaven_bench, see
  /// tools/README.md): `git init` plus an objects/info/alternates file
  /// naming the mirror's objects, then `git checkout --detach <sha>`.
  /// Nothing of the mirror is copied or linked (a `git clone` of it copied
  /// its refs and hard-linked every object file, and took twice as long),
  /// and the sha is looked up only when the checkout fails. It stays
  /// private: the checkout has its own .git (index, HEAD, refs, config,
  /// objects it writes), so a script's commits, resets, gc or `rm -rf
  /// .git` change only its own; git never writes into an alternate.
  /// Mirror fetches run with gc.pruneExpire=never (see update_mirror), so
  /// no object a checkout borrows ever disappears from under it. The token
  /// is not needed here (nothing is fetched) and never written anywhere.
  /// `--template=` keeps hooks out (a user's init.templateDir could add a
  /// post-checkout hook).
  caf::error check_out(const fs::path& mirror, const fs::path& ws,
                       bool forward) {
    std::error_code fs_err;
    fs::remove_all(ws, fs_err);
    auto r = git({"init", "--quiet", "--template=", "--", ws.string()},
                 ws.parent_path(), forward);
    if (!r)
      r = borrow_objects(mirror, ws / ".git");
    if (!r)
      r = git({"-c", "advice.detachedHead=false", "checkout", "--quiet",
               "--detach", plan_.sha},
              ws, forward);
    if (r)
      fs::remove_all(ws, fs_err);
    return r;
  }

  /// Points the repository in `git_dir` at the mirror: its objects as an
  /// alternate, the mirror as `origin` (as a clone of it had).
  static caf::error borrow_objects(const fs::path& mirror,
                                   const fs::path& git_dir) {
    std::error_code fs_err;
    fs::create_directories(git_dir / "objects" / "info", fs_err);
    if (fs_err)
      return failed("cannot create " + (git_dir / "objects" / "info").string()
                    + ": " + fs_err.message());
    auto quoted = std::string{"\""};
    for (char c : mirror.string()) {
      if (c == '\\' || c == '"')
        quoted += '\\';
      quoted += c;
    }
    quoted += '"';
    if (!append_file(git_dir / "objects" / "info" / "alternates",
                     (mirror / "objects").string() + "\n")
        || !append_file(
          git_dir / "config",
          "[remote \"origin\"]\n\turl = " + quoted
            + "\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"))
      return failed("cannot write into " + git_dir.string() + ": "
                    + std::strerror(errno));
    return {};
  }

  static bool append_file(const fs::path& path, const std::string& text) {
    auto fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0644);
    if (fd < 0)
      return false;
    auto n = ::write(fd, text.data(), text.size());
    auto saved = errno;
    ::close(fd);
    errno = saved;
    return n == static_cast<ssize_t>(text.size());
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
      // Checkouts borrow the mirror's objects (see check_out): its gc never
      // prunes one.
      auto r = git(
        {"-c", "gc.pruneExpire=never", "remote", "update", "--prune"}, mirror);
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
  auto plan_id = plan.id;
  auto about = std::make_shared<const log_context>(plan.log);
  auto work = [plan = std::move(plan), deployment, me] {
    // On a checkout thread: heaven's lines are about this deployment.
    log_scope in{plan.log};
    auto id = plan.id;
    auto url = url_without_credentials(plan.clone_url);
    preparer p{plan, deployment, me};
    caf::expected<std::string> result{std::string{}};
    try {
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
  if (detach)
    self->state.ticket = checkout_queue::shared().push(std::move(work));
  else
    run_blocking(self->system(), std::move(work), false);
  return {
    [=](cancel_atom) {
      log_scope in{*about};
      auto& st = self->state;
      if (st.cancelled)
        return;
      st.cancelled = true;
      if (st.ticket != 0 && checkout_queue::shared().withdraw(st.ticket)) {
        // It was still waiting for a thread: no git ever ran for it.
        spdlog::info("deployment {} no longer waits for a checkout", plan_id);
        self->send(self, prepared_atom::value, false,
                   std::string{"cancelled before the checkout began"});
        return;
      }
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

std::string deploy_key_path(const std::string& path) {
  return path + ".key";
}

void spawn_cleanup(caf::actor_system& sys, std::string path, bool detach) {
  auto remove = [path = std::move(path)] {
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec)
      spdlog::warn("could not remove the checkout {}: {}", path, ec.message());
    // A key a killed heaven left next to the checkout goes with it.
    fs::remove(deploy_key_path(path), ec);
    if (ec)
      spdlog::warn("could not remove the deploy key next to {}: {}", path,
                   ec.message());
  };
  // Removals are disk work like checkouts: they share the checkouts' pool of
  // threads rather than taking one each (a burst of deployments ending
  // together would otherwise start a thread per checkout).
  if (detach)
    checkout_queue::shared().push(std::move(remove));
  else
    run_blocking(sys, std::move(remove), false);
}

} // namespace heaven
