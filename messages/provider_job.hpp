/// What a provider is given: the job, with the deployment payload's
/// settings read once into a typed struct.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "messages/types.hpp"

namespace heaven {

/// A list of strings in `payload.config` (linked_dirs, after_publish, a
/// task's commands, ...).
struct config_list {
  /// The strings, up to the first entry that is not one.
  std::vector<std::string> items;
  /// False when the value is no list of strings: another type, or a list
  /// with an entry that is no string. Absent and null read as an empty,
  /// valid list.
  bool valid = true;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, config_list& x) {
  return f(caf::meta::type_name("config_list"), x.items, x.valid);
}

/// One entry of `payload.config.hosts`.
struct config_host {
  /// "[user@]host[:port]": the entry itself, or its "host"; "" when it is
  /// neither a string nor an object with a string "host".
  std::string address;
  /// Whether the entry is an object with a "deploy_to" of its own...
  bool has_deploy_to = false;
  /// ... and whether that is a string (else the entry is wrong).
  bool deploy_to_valid = false;
  std::string deploy_to;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, config_host& x) {
  return f(caf::meta::type_name("config_host"), x.address, x.has_deploy_to,
           x.deploy_to_valid, x.deploy_to);
}

/// What the providers read from the deployment's payload: hubot-deploy's
/// apps.json entry (`payload.config`) and `payload.aws`, read once when the
/// job is built (base/payload_config.hpp). A value of the wrong type reads
/// as absent unless a field says otherwise; the providers decide what is
/// an error and say so.
struct payload_config {
  // -- shell ------------------------------------------------------------------
  /// `deploy_script` ("" when missing or not a string).
  std::string deploy_script;

  // -- capistrano and fabric --------------------------------------------------
  /// `servers` is present and not null, false, "", [] or {} (Capistrano's
  /// own word, which heaven refuses: its key is `hosts`).
  bool names_servers = false;
  /// `hosts` is present and not null, [] or {}: the native (SSH) mode.
  bool names_hosts = false;
  /// The `hosts` of the job's environment: `hosts` itself, or
  /// `hosts.<environment>` when it is an object; empty when that is no
  /// list.
  std::vector<config_host> hosts;
  /// `user` when a string, else "deploy".
  std::string user = "deploy";
  /// Whether `deploy_to` is a string, and which.
  bool has_deploy_to = false;
  std::string deploy_to;
  /// `repo_url` when a string, else `repository.clone_url`.
  std::string repo_url;
  /// Whether `keep_releases` is present (null too), and its value: 0 when it
  /// is no whole number.
  bool has_keep_releases = false;
  int64_t keep_releases = 5;
  config_list linked_files;
  config_list linked_dirs;
  config_list before_publish;
  config_list after_publish;
  /// Whether `tasks` is an object, and its lists by name (sorted).
  bool has_tasks = false;
  std::map<std::string, config_list> tasks;

  // -- heroku and elastic_beanstalk -------------------------------------------
  /// `heroku_<environment>_name` when a string, else `heroku_name` when a
  /// string, else "".
  std::string heroku_app;
  /// `app_name` ("" when missing or not a string).
  std::string app_name;
  /// `payload.aws.region` ("" when missing or not a string).
  std::string aws_region;

  // -- deploy:rollback --------------------------------------------------------
  /// Whether `payload.rollback_release` (the release to roll back to, as
  /// Capistrano's ROLLBACK_RELEASE) is present and not null, and its value
  /// ("" when it is no string).
  bool has_rollback_release = false;
  std::string rollback_release;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payload_config& x) {
  return f(caf::meta::type_name("payload_config"), x.deploy_script,
           x.names_servers, x.names_hosts, x.hosts, x.user, x.has_deploy_to,
           x.deploy_to, x.repo_url, x.has_keep_releases, x.keep_releases,
           x.linked_files, x.linked_dirs, x.before_publish, x.after_publish,
           x.has_tasks, x.tasks, x.heroku_app, x.app_name, x.aws_region,
           x.has_rollback_release, x.rollback_release);
}

/// Everything a provider needs to run one deployment.
struct provider_job {
  /// heaven's local deployment id.
  int64_t id = 0;
  deployment_request request;
  /// `request.payload_json` read (read_payload_config).
  payload_config config;
  /// The private checkout at `request.sha`.
  std::string workspace;
  /// The environment the provider's processes start from (heaven's own,
  /// minus withheld secrets).
  string_pairs env;
  /// Milliseconds between SIGTERM and SIGKILL when cancelling.
  int64_t kill_grace_ms = 5000;
  /// Whether a cancel kills the provider's processes.
  bool terminate_children = true;
  /// The deployment's scope: every process the provider starts is in it.
  process_scope scope;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_job& x) {
  return f(caf::meta::type_name("provider_job"), x.id, x.request, x.config,
           x.workspace, x.env, x.kill_grace_ms, x.terminate_children, x.scope);
}

} // namespace heaven
