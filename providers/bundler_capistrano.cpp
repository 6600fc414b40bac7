// The BUNDLER_CAPISTRANO provider, in two parts:
//
//   1. Source: GitHub's tarball link for the full sha (`GET
//      repos/<repo>/tarball/<sha>` → 302; a secret for private
//      repositories), its download, and `tar` unpacking it into
//      <data>/workspaces/<id>. Transient answers are retried with backoff.
//   2. Tools: a command_provider child runs `bundle install` then `bundle
//      exec cap <environment> <task>` there (bundler_plan), reporting its
//      outcome straight to the deployment. A cancel goes to whichever part
//      runs.

#include "providers/bundler_capistrano.hpp"
#include "providers/outcome.hpp"

#include <cctype>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "actors/process.hpp"
#include "actors/workspace.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "providers/capistrano.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// The provider's own interface: a process provider (tar), plus its retry
/// timer.
using bundler_actor = process_provider_actor::extend<caf::reacts_to<tick_atom>>;

/// What the provider is doing.
enum class phase { link, download, unpack, tools, done };

struct bundler_state {
  static inline const char* name = "bundler_capistrano";
  bundler_config cfg;
  provider_job job;
  deployment_actor deployment;
  phase at = phase::link;
  /// A 401 to the tarball link renewed the GitHub App's token once.
  bool github_renewed = false;
  /// Attempts made at the current request.
  int attempt = 1;
  /// GitHub's signed tarball link (never logged).
  std::string location;
  /// <data>/workspaces/<id>: the tarball, and the app in `app/`.
  fs::path dir;
  /// tar's process group once started (0 before).
  int32_t tar_pgid = 0;
  bool cancelled = false;
  /// The command_provider running the tools.
  provider_actor tools;
};

using self_ptr = bundler_actor::stateful_pointer<bundler_state>;

/// Appends a heaven line to the deployment's log.
void say(self_ptr self, std::string text) {
  self->send(self->state.deployment, log_atom::value,
             log_line{stream::heaven, std::move(text)});
}

/// Removes the provider's directory (tarball and unpacked app) on a
/// thread of its own: an app can be many files.
void remove_dir(caf::actor_system& sys, const fs::path& dir) {
  if (!dir.empty())
    spawn_cleanup(sys, dir.string());
}

/// Ends the deployment from the source part (the tools part reports for
/// itself): removes the directory, reports, quits.
void end(self_ptr self, deploy_state state, std::string description) {
  auto& st = self->state;
  if (st.at == phase::done)
    return;
  st.at = phase::done;
  remove_dir(self->system(), st.dir);
  report_end(st.deployment, st.job.id, state, std::move(description));
  self->quit();
}

/// Schedules another attempt at the current request after a transient
/// answer; false when none is left (or the answer is not transient).
bool retry_later(self_ptr self, const http_response& res,
                 const std::string& what) {
  auto& st = self->state;
  auto retry = next_retry(res, st.attempt, st.cfg.api, what);
  if (!retry)
    return false;
  say(self, std::move(retry->line));
  self->delayed_send(self, retry->delay, tick_atom::value);
  return true;
}

void download(self_ptr self);
void unpack(self_ptr self);

/// Sends `req` to the HTTP client; `then(res)` gets the answer unless the
/// provider has left step `at` meanwhile (it ended, or was cancelled).
template <class F>
void ask(self_ptr self, phase at, http_request req, F then) {
  self->request(self->state.cfg.api.http, caf::infinite, std::move(req))
    .then([self, at, then](http_response& res) mutable {
      if (self->state.at == at)
        then(res);
    });
}

/// Step 1: GitHub's tarball link.
void fetch_link(self_ptr self) {
  auto& st = self->state;
  auto& req = st.job.request;
  auto github = github_of(st.cfg.api, req.repo, [me = bundler_actor{self}] {
    caf::anon_send(me, tick_atom::value);
  });
  if (!github)
    return; // A tick comes once the token is fetched.
  auto link_request = github_archive_request(*github, req.repo, "tarball",
                                             req.sha);
  ask(self, phase::link, std::move(link_request), [=](http_response& res) {
    auto& st = self->state;
    auto& req = st.job.request;
    auto link = github_archive_link(res, "tarball", req.repo, req.sha);
    if (renew_after_401(st.cfg.api, req.repo, res, st.github_renewed)) {
      fetch_link(self);
      return;
    }
    if (link) {
      st.location = std::move(*link);
      st.at = phase::download;
      st.attempt = 1;
      download(self);
      return;
    }
    if (!retry_later(self, res, "GitHub's tarball link"))
      end(self, deploy_state::error, describe(link.error()));
  });
}

/// Step 2: the tarball itself, written to <dir>/source.tar.gz.
void download(self_ptr self) {
  auto& st = self->state;
  http_request get;
  get.url = st.location;
  get.headers = {{"User-Agent", "heaven"}};
  get.follow_redirects = true;
  get.timeout_ms = st.cfg.download_timeout_ms;
  ask(self, phase::download, std::move(get), [=](http_response& res) {
    auto& st = self->state;
    auto& req = st.job.request;
    auto what = "the tarball of " + req.repo + " at " + short_sha(req.sha);
    if (res.status != 200) {
      if (!retry_later(self, res, "Downloading " + what))
        end(self, deploy_state::error,
            "could not download " + what + " (" + describe(res) + ")");
      return;
    }
    std::error_code ec;
    fs::create_directories(st.dir / "app", ec);
    std::ofstream out{st.dir / "source.tar.gz", std::ios::binary};
    out.write(res.body.data(), static_cast<std::streamsize>(res.body.size()));
    out.close();
    if (ec || !out) {
      end(self, deploy_state::error,
          "could not write " + what + " to " + st.dir.string());
      return;
    }
    say(self, "Downloaded " + what + " (" + std::to_string(res.body.size())
                + " bytes)");
    unpack(self);
  });
}

/// Step 3: `tar` unpacks it into <dir>/app (GitHub's archive has one
/// top directory, "<owner>-<name>-<sha7>/").
void unpack(self_ptr self) {
  auto& st = self->state;
  st.at = phase::unpack;
  process_spec spec;
  spec.argv = {"tar",
               "-xzf",
               (st.dir / "source.tar.gz").string(),
               "--strip-components=1",
               "-C",
               (st.dir / "app").string()};
  spec.cwd = st.dir.string();
  spec.env = st.job.env;
  spec.scope = st.job.scope;
  say(self, "Unpacking the tarball");
  spawn_process(self->system(), std::move(spec), st.deployment,
                process_owner{self});
}

/// Step 4: the tools, in a command_provider of their own.
void run_tools(self_ptr self) {
  auto& st = self->state;
  st.at = phase::tools;
  std::error_code ec;
  fs::remove(st.dir / "source.tar.gz", ec);
  auto cfg = st.cfg;
  auto dir = (st.dir / "app").string();
  auto root = st.dir;
  auto sys = &self->system();
  command_planner planner = [cfg, dir, root, sys](const provider_job& job,
                                                  command_plan& plan) {
    // The directory goes when the tools are done, whatever happened.
    plan.cleanup = [root, sys] { remove_dir(*sys, root); };
    return bundler_plan(job, cfg, dir, plan);
  };
  st.tools = self->spawn(command_provider, st.job, st.deployment,
                         std::move(planner));
  self->monitor(st.tools);
}

/// The Ruby program that runs `bundle install` without the Gemfile's other
/// groups. Bundler reads the Gemfile (it is Ruby), so Bundler names them;
/// the app's local Bundler config remembers them for `bundle exec`, as
/// `--without` did.
constexpr auto install_program = R"rb(
require "bundler"
groups = Bundler.definition.groups.map(&:to_s) - %w[default deployment heaven]
unless groups.empty?
  system("bundle", "config", "set", "--local", "without", groups.join(" "),
         out: File::NULL, exception: true)
end
puts "bundle install" + (groups.empty? ? "" : " --without #{groups.join(" ")}")
$stdout.flush
exec("flock", ENV.fetch("HEAVEN_GEMS_LOCK"), "bundle", "install")
)rb";

} // namespace

std::string bundler_credentials_variable(const std::string& source) {
  std::string host = source;
  if (auto scheme = host.find("://"); scheme != host.npos)
    host.erase(0, scheme + 3);
  if (auto at = host.rfind('@', host.find('/')); at != host.npos)
    host.erase(0, at + 1);
  host = host.substr(0, host.find_first_of("/:?#"));
  if (host.empty())
    return {};
  std::string name = "BUNDLE_";
  for (unsigned char c : host) {
    if (c == '.')
      name += "__";
    else if (c == '-')
      name += "___";
    else if (std::isalnum(c) || c == '_')
      name += static_cast<char>(std::toupper(c));
    else
      return {};
  }
  return name;
}

std::optional<std::string>
bundler_plan(const provider_job& job, const bundler_config& cfg,
             const std::string& dir, command_plan& plan) {
  auto& req = job.request;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path{dir} / "Gemfile", ec))
    return "no Gemfile in the repository at " + short_sha(req.sha)
           + ": bundler_capistrano needs one";
  if (!has_capfile(dir))
    return "no Capfile in the repository at " + short_sha(req.sha);
  if (!safe_stage(req.environment))
    return "environment " + req.environment
           + " is not a Capistrano stage name ([A-Za-z0-9_.-]+)";
  if (!valid_task(req.task))
    return "task " + req.task + " is not a deploy task";
  plan.cwd = dir;
  plan.env = deployment_env(job);
  if (!get_env(plan.env, "GEM_HOME") && !get_env(plan.env, "BUNDLE_PATH")) {
    fs::create_directories(fs::path{cfg.data_dir} / "gems", ec);
    set_env(plan.env, "GEM_HOME", (fs::path{cfg.data_dir} / "gems").string());
  }
  auto source = get_env(plan.env, "BUNDLER_PRIVATE_SOURCE");
  auto credentials = get_env(plan.env, "BUNDLER_PRIVATE_CREDENTIALS");
  erase_env(plan.env, "BUNDLER_PRIVATE_CREDENTIALS");
  command_step install;
  install.argv = {"ruby", "-e", install_program};
  install.label = "bundle install";
  install.announce = "Running bundle install (the deployment and heaven "
                     "groups)";
  install.extra_env = {
    {"HEAVEN_GEMS_LOCK", (fs::path{cfg.data_dir} / "gems.lock").string()}};
  if (source && !source->empty() && credentials && !credentials->empty()) {
    auto variable = bundler_credentials_variable(*source);
    if (variable.empty())
      return "BUNDLER_PRIVATE_SOURCE names no gem server host";
    install.extra_env.emplace_back(variable, *credentials);
  }
  plan.before.push_back(std::move(install));
  plan.argv = {"bundle", "exec", "cap", req.environment, req.task};
  plan.label = "bundle exec cap " + req.environment + " " + req.task;
  plan.announce = "Running " + plan.label;
  plan.success = deployed_with(job, "bundle exec cap");
  return use_deploy_key_agent(plan);
}

provider_factory bundler_capistrano_provider(bundler_config cfg) {
  // Tools run in the unpacked app: GEM_HOME and the lock must be absolute.
  cfg.data_dir = fs::absolute(cfg.data_dir).lexically_normal().string();
  return [cfg](caf::actor_system& sys, provider_job job,
               deployment_actor deployment) -> provider_actor {
    auto dir = fs::path{cfg.data_dir} / "workspaces" / std::to_string(job.id);
    auto fn = [](self_ptr self, bundler_config cfg, provider_job job,
                 deployment_actor deployment,
                 fs::path dir) -> bundler_actor::behavior_type {
      auto& st = self->state;
      st.cfg = std::move(cfg);
      st.job = std::move(job);
      st.deployment = std::move(deployment);
      st.dir = std::move(dir);
      self->set_down_handler([self](caf::down_msg& msg) {
        auto& st = self->state;
        if (msg.source != st.tools.address())
          return;
        // The tools reported to the deployment (or crashed: the
        // deployment then learns it from our own exit).
        st.at = phase::done;
        if (msg.reason)
          self->quit(msg.reason);
        else
          self->quit();
      });
      say(self, "Fetching GitHub's tarball of " + st.job.request.repo + " at "
                  + short_sha(st.job.request.sha));
      fetch_link(self);
      return {
        [self](cancel_atom) {
          auto& st = self->state;
          if (st.at == phase::tools) {
            self->send(st.tools, cancel_atom::value);
            return;
          }
          st.cancelled = true;
          if (st.at == phase::unpack && st.tar_pgid > 0) {
            kill_group(st.tar_pgid, SIGKILL);
            return; // `exited` follows.
          }
          end(self, deploy_state::failure, "cancelled");
        },
        [self](started_atom, int32_t pid) {
          auto& st = self->state;
          st.tar_pgid = pid;
          if (st.cancelled)
            kill_group(pid, SIGKILL);
        },
        [self](exited_atom, exit_info info) {
          auto& st = self->state;
          if (st.at != phase::unpack)
            return;
          if (st.cancelled)
            end(self, deploy_state::failure, "cancelled");
          else if (!info.error.empty())
            end(self, deploy_state::error,
                "cannot unpack the tarball: " + info.error);
          else if (info.code != 0 || info.signal != 0)
            end(self, deploy_state::error,
                "tar could not unpack GitHub's tarball (exit status "
                  + std::to_string(info.code) + ")");
          else
            run_tools(self);
        },
        [](kill_atom) {},
        [self](tick_atom) {
          auto& st = self->state;
          if (st.at == phase::link)
            fetch_link(self);
          else if (st.at == phase::download)
            download(self);
        },
      };
    };
    return sys.spawn(fn, cfg, std::move(job), std::move(deployment),
                     std::move(dir));
  };
}

} // namespace heaven
