/// The bundler_capistrano provider: the app's own Capistrano, at the gem
/// versions its Gemfile.lock pins. No git checkout: GitHub's tarball of the
/// exact sha is unpacked, `bundle install` installs the `deployment` and
/// `heaven` groups (and the ungrouped gems), and `bundle exec cap
/// <environment> <task>` deploys with BRANCH=<ref>.
#pragma once

#include <string>

#include "messages/registry.hpp"
#include "providers/api_common.hpp"
#include "providers/command.hpp"

namespace heaven {

/// What the provider needs besides the job.
struct bundler_config {
  /// The HTTP client, GitHub's API and token (for the tarball link), and
  /// how often to retry a transient failure.
  api_config api;
  /// heaven's data directory: the tarball is unpacked in
  /// <data>/workspaces/<id> (removed when the deployment ends), and gems go
  /// to <data>/gems (GEM_HOME, shared by every deployment; installs take
  /// turns under <data>/gems.lock) unless the operator set GEM_HOME or
  /// BUNDLE_PATH.
  std::string data_dir;
  /// Longest wait for the tarball's download, in milliseconds.
  int64_t download_timeout_ms = 600000;
};

/// The Bundler setting that holds credentials for `source` (a gem server's
/// URL or host name): "BUNDLE_" and the host, '.' → "__" and '-' → "___",
/// upper-cased, as Bundler reads them from the environment (for example
/// "https://gems.example-corp.com/private" →
/// "BUNDLE_GEMS__EXAMPLE___CORP__COM").
/// "" when `source` has no host.
std::string bundler_credentials_variable(const std::string& source);

/// The plan once the tarball is unpacked in `dir`: `bundle install` (through
/// a short Ruby program that leaves out every Gemfile group but `deployment`
/// and `heaven`, taking turns on the gem lock) then `bundle exec cap
/// <environment> <task>`, in `dir` with BRANCH, SHA, DEPLOY_ENV and
/// DEPLOY_TASK; with BUNDLER_PRIVATE_SOURCE and BUNDLER_PRIVATE_CREDENTIALS
/// both set, `bundle install` alone gets the credentials as Bundler's
/// per-host setting (never an argv, a file or the log), and neither tool
/// gets BUNDLER_PRIVATE_CREDENTIALS; DEPLOYMENT_PRIVATE_KEY goes through a
/// private ssh-agent (use_deploy_key_agent). Returns why not (nothing runs)
/// without a Gemfile or a Capfile, for an unsafe stage name or a task that
/// is not a deploy task.
std::optional<std::string>
bundler_plan(const provider_job& job, const bundler_config& cfg,
             const std::string& dir, command_plan& plan);

/// The factory that spawns one BUNDLER_CAPISTRANO provider actor per
/// deployment (register it as needing no checkout). It fetches GitHub's
/// tarball link for the full sha (302; the link is never logged), downloads
/// it, unpacks it with `tar`, then runs `bundler_plan` as a tool provider
/// does (command_provider). Success: "Deployed <ref> (<sha7>) to <env> with
/// bundle exec cap"; failures name the step: "bundle install exited with
/// status 5", "bundle exec cap production deploy exited with status 1".
provider_factory bundler_capistrano_provider(bundler_config cfg);

} // namespace heaven
