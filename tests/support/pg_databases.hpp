/// The test binaries' PostgreSQL: one throwaway cluster a binary
/// (tools/support/pg_cluster, made when a case first needs it, removed when
/// the binary ends), a fresh database in it for each case that wants one,
/// and the deployments its cases record.
#pragma once

#include <cstdint>
#include <string>

#include "actors/pg.hpp"
#include "actors/pg_store.hpp"
#include "tools/support/pg_cluster.hpp"

namespace heaven::test {

/// The test binary's cluster.
pg_cluster& shared_cluster();

/// `shared_cluster().url()` naming database `name` instead of the
/// cluster's own.
std::string database_url(const std::string& name);

/// Makes a new, empty database on the shared cluster, named `prefix` and a
/// number the binary has not used yet; its URL.
std::string fresh_database(const std::string& prefix);

/// The options of heaven instance `id` (on host "test").
pg_options instance_options(const std::string& id);

/// A `deploy` of octo/app's app to `env` by hubot, GitHub deployment
/// `github_id` (shell provider).
deployment_request make_request(int64_t github_id, const std::string& env);

/// The deployment event of delivery `delivery` for `r`, with lock task
/// `action`.
inbound_event deployment_event(const std::string& delivery,
                               deployment_request r,
                               lock_task action = lock_task::none);

/// The message of the pg::error `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pg::error& e) {
    return e.what();
  }
  return "";
}

} // namespace heaven::test
