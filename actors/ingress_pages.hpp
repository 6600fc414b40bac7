/// What the ingress answers for the pages (route_decision::kind::page) and
/// their buttons (kind::action): the store asked from a short-lived actor
/// (the io thread never waits), its rows rendered by base/pages. No Beast
/// here: the transport hands each answer a callback.
#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/ingress_answers.hpp"
#include "actors/ingress_route.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class log_book;

/// What the pages need.
struct page_setup {
  store_actor store;
  /// The deployments' logs (null: pages show none).
  std::shared_ptr<log_book> logs;
  /// Key of the log links the pages follow.
  std::string log_key;
  /// OCTOKIT_WEB_ENDPOINT: where links to GitHub go.
  std::string github_web = "https://github.com/";
};

/// Answers a page: 200 with its HTML (404 for a deployment there is none
/// of; 503 when the store does not answer).
///
/// Answers an action with 303 to the page that shows what it did: unlock
/// (the lock removed), the repository switch, and "Deploy this sha again" /
/// "Roll back to this deployment", which queue the creation of a GitHub
/// deployment of that deployment's sha to its environment with its task
/// and payload (`actor` set to the person), `auto_merge: false` and a
/// description naming the person, through the store's "deploy" outbox as
/// auto-deploy does. A deployment that has not ended, or has no sha, is not
/// deployed again (409).
void answer_page(caf::actor_system& sys, const page_setup& setup,
                 route_decision r, header_reply_fn reply);

/// Answers what actors answer: the JSON lists (kind::list, locks), sign-in
/// (sign_in, callback, sign_out; `sign_in` is not null when routing let
/// them through), the pages and their actions.
void answer_by_actors(caf::actor_system& sys, const page_setup& setup,
                      const sign_in_setup* sign_in, route_decision r,
                      header_reply_fn reply);

/// `reply` without headers.
reply_fn plain(header_reply_fn reply);

/// The body of GitHub's `POST /repos/{repo}/deployments` that deploys
/// deployment `d` again for `login` (`rollback`: as a roll back to it).
std::string redeploy_body(const deployment_detail& d, const std::string& login,
                          bool rollback);

} // namespace heaven
