/// The capistrano provider. Native mode when `payload.config.hosts` names the
/// servers: heaven runs Capistrano 3's flow itself over SSH
/// (providers/capistrano_native.hpp). Capfile mode otherwise: the
/// repository's own Capfile, run with the real `cap <environment> <task>`
/// (Capistrano 3) in the checkout.
#pragma once

#include <string>
#include <string_view>

#include "messages/registry.hpp"
#include "providers/capistrano_native.hpp"
#include "providers/command.hpp"

namespace heaven {

/// True when the checkout at `dir` has a Capfile (any name cap reads).
bool has_capfile(const std::string& dir);

/// True for a stage name cap can only read as a stage: one word of
/// [A-Za-z0-9_.-], not starting with '-' (cap would read an option).
bool safe_stage(std::string_view text);

/// The plan of Capfile mode: `cap <environment> <task>` (argv, no shell) in
/// the checkout, with BRANCH=<ref>, SHA, DEPLOY_ENV and DEPLOY_TASK on top of
/// `job.env`. Returns why not (nothing runs) when the config names
/// `servers` (heaven's key is `hosts`), when the checkout has no
/// Capfile, or when the environment is not one safe word
/// (`[A-Za-z0-9_.][A-Za-z0-9_.-]*`) or the task is not a deploy task.
std::optional<std::string> capfile_plan(const provider_job& job,
                                        command_plan& plan);

/// The factory that spawns one CAPISTRANO provider actor per deployment
/// (needs the checkout): the native one when the config names hosts (with
/// `native`, its key from the job's DEPLOYMENT_PRIVATE_KEY), else Capfile
/// mode. Capfile success: "Deployed <ref> (<sha7>) to <env> with cap";
/// failure: "cap <env> <task> exited with status N".
provider_factory capistrano_provider(remote_config native = {});

} // namespace heaven
