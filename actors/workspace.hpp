/// Private checkouts made from a cached mirror per repository.
#pragma once

#include <string>

#include <caf/fwd.hpp>

#include "messages/types.hpp"

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
};

/// The environment git runs with for `plan`: `plan.env` plus
/// GIT_TERMINAL_PROMPT=0 and, for an https clone URL on `token_host`, the
/// token as an `http.<url>.extraheader` in GIT_CONFIG_* variables.
string_pairs git_env(const workspace_plan& plan);

/// Spawns an actor that makes the checkout: updates (or creates) the mirror
/// under a lock file, clones it privately and checks out the sha. It sends
/// `started_atom, pid` to `deployment` for each git process, `log_atom`
/// lines for what it does, and finally `prepared_atom, true, <path>` or
/// `prepared_atom, false, <why>`. Detached unless `detach` is false.
void spawn_workspace(caf::actor_system& sys, workspace_plan plan,
                     caf::actor deployment, bool detach = true);

/// Spawns an actor that deletes a checkout (detached unless `detach` is
/// false).
void spawn_cleanup(caf::actor_system& sys, std::string path,
                   bool detach = true);

} // namespace heaven
