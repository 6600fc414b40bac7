/// The ansible provider: the repository's playbook, run with the real
/// `ansible-playbook` in the checkout.
#pragma once

#include <string>
#include <string_view>

#include "messages/registry.hpp"
#include "providers/command.hpp"

namespace heaven {

/// The plan: `ansible-playbook -i ansible/hosts ansible/site.yml
/// --extra-vars <json>` (argv, no shell) in the checkout, the JSON holding
/// `heaven_deploy_sha` and, when DEPLOYMENT_PRIVATE_KEY is in `job.env`,
/// `ansible_ssh_private_key_file`: the key written to a 0600 file next to
/// the checkout (never inside it), removed when the provider ends; the key
/// itself is then left out of the child's environment. The environment is
/// `job.env` plus BRANCH, SHA, DEPLOY_ENV and DEPLOY_TASK,
/// ANSIBLE_HOST_KEY_CHECKING=True unless the operator set it, and
/// LC_ALL=C.UTF-8 when the locale is not UTF-8 (ansible refuses to run
/// otherwise). Missing ansible/hosts or ansible/site.yml: returns why.
std::optional<std::string> ansible_plan(const provider_job& job,
                                        command_plan& plan);

/// The factory that spawns one ANSIBLE provider actor per deployment (needs
/// the checkout). Success: "Deployed <ref> (<sha7>) to <env> with
/// ansible-playbook"; failure: "ansible-playbook exited with status N".
provider_factory ansible_provider();

} // namespace heaven
