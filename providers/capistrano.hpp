/// The capistrano provider. Native mode when `payload.config.hosts` names the
/// servers: heaven runs Capistrano 3's flow itself over SSH
/// (providers/capistrano_native.hpp). Capfile mode otherwise: the
/// repository's own Capfile, run with the real `cap <environment> <task>`
/// (Capistrano 3) in the checkout.
#pragma once

#include <string>

#include "providers/capistrano_native.hpp"
#include "providers/registry.hpp"
#include "providers/shell.hpp"

namespace heaven {

/// The plan of Capfile mode: `cap <environment> <task>` (argv, no shell) in
/// the checkout, with BRANCH=<ref>, SHA, DEPLOY_ENV and DEPLOY_TASK on top of
/// `job.env`. Returns why not (nothing runs) when the config names
/// `servers` (heaven's key is `hosts`), when the checkout has no
/// Capfile, or when the environment is not one safe word
/// (`[A-Za-z0-9_.][A-Za-z0-9_.-]*`) or the task is not a deploy task.
std::string capfile_plan(const provider_job& job, command_plan& plan);

/// The factory that spawns one CAPISTRANO provider actor per deployment
/// (needs the checkout): the native one when the config names hosts (with
/// `native`, its key from the job's DEPLOYMENT_PRIVATE_KEY), else Capfile
/// mode. Capfile success: "Deployed <ref> (<sha7>) to <env> with cap";
/// failure: "cap <env> <task> exited with status N".
provider_factory capistrano_provider(capistrano_native_config native = {});

} // namespace heaven
