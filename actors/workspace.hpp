/// The WORKSPACE actor: private checkouts made from a cached mirror per
/// repository.
#pragma once

#include <string>

#include <caf/fwd.hpp>

#include "base/log_format.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// One checkout to make.
struct workspace_plan {
  /// heaven's data directory (mirrors in <data>/mirrors, checkouts in
  /// <data>/workspaces).
  std::string data_dir;
  /// heaven's local deployment id (names the checkout).
  int64_t id = 0;
  std::string clone_url;
  /// The full sha to check out.
  std::string sha;
  /// Token for https clone URLs on the GitHub host; passed to git through
  /// its environment only (never argv, URL or log). May be empty.
  std::string token;
  /// The host the token is for (e.g. "github.com").
  std::string token_host;
  /// The environment git runs with (PATH, HOME, ...).
  string_pairs env;
  /// The deployment's scope: every git process starts in it.
  process_scope scope;
  /// The deployment heaven's lines about this checkout are about.
  log_context log;
};

/// The environment git runs with for `plan`: `plan.env` plus
/// GIT_TERMINAL_PROMPT=0 and, for an https clone URL on `token_host`, the
/// token as an `http.<url>.extraheader` in GIT_CONFIG_* variables.
string_pairs git_env(const workspace_plan& plan);

/// State of the WORKSPACE actor.
struct workspace_state {
  static inline const char* name = "workspace";
  /// The git process group running now (0 before the first).
  int32_t pgid = 0;
  /// Set by `cancel`: every git started from then on gets SIGKILL.
  bool cancelled = false;
  /// The checkout's place in checkout_queue::shared() (0: not queued
  /// there).
  uint64_t ticket = 0;
  /// Hears the checkout's lines and its `prepared`. (Not the first member:
  /// CAF would construct the state from the actor itself, as a handle can
  /// be.)
  checkout_client deployment;
};

/// The WORKSPACE actor for `plan`. It queues the checkout in
/// checkout_queue::shared(), whose fixed pool of threads makes it in turn
/// (unless `detach` is false: then on this actor, as deterministic tests
/// need): updates (or creates) the mirror
/// under a lock file, clones it privately and checks out the sha, sending
/// `log_atom` lines for what it does to `deployment`, and finally
/// `prepared_atom, true, <path>` or `prepared_atom, false, <why>`; then it
/// quits. On `cancel` it ends its own git processes (see workspace_actor), or
/// takes a checkout that still waits out of the queue and reports
/// `prepared_atom, false, "cancelled before the checkout began"`.
workspace_actor::behavior_type
workspace(workspace_actor::stateful_pointer<workspace_state> self,
          workspace_plan plan, checkout_client deployment, bool detach);

/// Spawns the WORKSPACE actor for `plan` (see workspace).
workspace_actor spawn_workspace(caf::actor_system& sys, workspace_plan plan,
                                checkout_client deployment, bool detach = true);

/// Where a provider puts the private key a tool reads from a file: next to
/// the checkout `path`, never in its tree (`<path>.key`).
std::string deploy_key_path(const std::string& path);

/// Deletes a checkout and its deploy_key_path on one of the checkout queue's
/// threads (in an actor of the caller's system when `detach` is false, as in
/// deterministic tests).
void spawn_cleanup(caf::actor_system& sys, std::string path,
                   bool detach = true);

} // namespace heaven
