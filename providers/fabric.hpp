/// The fabric provider. Native mode when `payload.config.hosts` names the
/// hosts: the commands of `payload.config.tasks.<name>` (task `deploy` →
/// tasks.deploy, `deploy:<name>` → tasks.<name>) run over SSH on every host
/// at once, with %{ref}, %{sha}, %{environment} and %{task} filled in
/// shell-quoted and BRANCH, SHA, DEPLOY_ENV, DEPLOY_TASK exported. fabfile
/// mode otherwise: the repository's own fabfile, run with the real `fab`
/// (Fabric 2) in the checkout, or with the operator's DEPLOY_COMMAND_FORMAT.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "messages/registry.hpp"
#include "providers/command.hpp"
#include "providers/remote.hpp"

namespace heaven {

/// The Fabric 2 task name for a heaven task: namespaces are dotted and
/// Fabric shows underscores as dashes ("deploy:run_migrations" →
/// "deploy.run-migrations").
std::string fabric_task(std::string_view task);

/// Expands the operator's DEPLOY_COMMAND_FORMAT for `req`: each
/// %{environment}, %{task}, %{ref} and %{sha} becomes shell_quote(value)
/// (so a value is always one word of data to /bin/sh), "%%" becomes "%",
/// any other '%' stays. An unknown %{name} (or an unclosed "%{") is an
/// error: returns "" and sets `why`.
std::string expand_command_format(std::string_view format,
                                  const deployment_request& req,
                                  std::string& why);

/// The plan of fabfile mode. Needs fabfile.py or a fabfile/ package in the
/// checkout. With DEPLOY_COMMAND_FORMAT in `job.env`: `/bin/sh -c
/// <expanded format>`. Otherwise (Fabric 2 syntax, argv, no shell):
/// `fab <fabric_task(task)> --branch-name=<ref>` — the fabfile's task takes
/// a `branch_name` parameter, as with Heaven's Fabric 1 default
/// `fab -R %{environment} %{task}:branch_name=%{ref}` (Fabric 2 has no
/// roles: the environment is in DEPLOY_ENV). Either way BRANCH, SHA,
/// DEPLOY_ENV and DEPLOY_TASK are set on top of `job.env`.
std::optional<std::string> fabfile_plan(const provider_job& job,
                                        command_plan& plan);

/// The factory that spawns one FABRIC provider actor per deployment (needs
/// the checkout). Success: "Deployed <ref> (<sha7>) to <env> with fab";
/// failure: "fab <task> exited with status N" (or "DEPLOY_COMMAND_FORMAT
/// command exited with status N").
provider_factory fabric_provider(remote_config native = {});

/// Native mode's planner (for remote_steps): the task's commands, one phase
/// on every host.
std::optional<std::string> fabric_native_phases(const provider_job& job,
                                                std::vector<remote_host>& hosts,
                                                remote_phases& phases);

} // namespace heaven
