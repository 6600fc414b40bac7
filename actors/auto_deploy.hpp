/// The AUTO_DEPLOY actor: Rails Heaven's AutoDeployment, made safe. It hears
/// `status` events and creates a GitHub deployment of a green commit on the
/// default branch for every app+environment heaven last deployed for that
/// repository, once per sha.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/retry.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

class github_app;

/// What the AUTO_DEPLOY actor talks to and how it retries.
struct auto_deploy_config {
  /// All requests to GitHub go through it.
  http_client_actor http;
  /// Answers `latest` (what heaven last deployed) and `claim` (deploy a sha
  /// once, and queue its creation).
  store_actor store;
  /// GitHub API base, e.g. "https://api.github.com/" (trailing slash
  /// optional).
  std::string api_endpoint = "https://api.github.com/";
  /// Sent as `Authorization: token ...`; GitHub's API needs it, so without
  /// one nothing is auto-deployed (a warning says so).
  std::string token;
  /// The GitHub App (null: none): each request carries its repository's
  /// installation token (`token` serves repositories it is not installed
  /// on), and a 401 renews it once.
  std::shared_ptr<github_app> app;
  /// Attempts per GitHub request for transient failures (at least 1).
  int attempts = 5;
  /// Wait before the first retry, in milliseconds; doubles each time.
  int64_t first_backoff_ms = 1000;
  /// Whole-request timeout of one GitHub request, in milliseconds.
  int64_t request_timeout_ms = 30000;
  /// The random share of each backoff (see retry_policy::jitter; 0 in tests
  /// that assert exact waits).
  double jitter = default_jitter;
};

/// The AUTO_DEPLOY actor. For each `(status, commit_status_event)`:
/// a state other than `success` and a sha that is not the head of the
/// default branch are ignored (logged) without asking anybody; otherwise a
/// short-lived job actor asks the store what heaven last deployed for the
/// repository, asks GitHub once for the sha's combined status (must be
/// `success`), and then, for every deployed app+environment independently
/// and concurrently: skips it when locked; compares the last deployed sha
/// with this one (must be `ahead`); and claims (repo, app, environment,
/// sha) in the store with the request that creates the GitHub deployment
/// of the full sha with the last deployment's payload (`actor` and `sha`
/// updated), task `deploy`, the same environment and the description
/// "Heaven auto deploy triggered by a commit status change". The claim and
/// the queued request are one transaction: a green sha deploys once however
/// many status events call it green, and the "deploy" outbox creates the
/// deployment once, also across restarts (see actors/auto_deployments.hpp).
/// Every skip is logged at info level with its reason. GETs are retried on
/// 5xx, 429 and network failures (base/retry.hpp: after the doubling
/// backoff, or the answer's `Retry-After`), never when they can never
/// succeed (`http_response.permanent`). A job stops when this actor exits.
/// Never blocks.
auto_deploy_actor::behavior_type auto_deploy(auto_deploy_actor::pointer self,
                                             auto_deploy_config cfg);

} // namespace heaven
