#include "tests/support/pg_databases.hpp"

#include <atomic>
#include <stdexcept>
#include <utility>

namespace heaven::test {

pg_cluster& shared_cluster() {
  static pg_cluster instance;
  return instance;
}

std::string database_url(const std::string& name) {
  auto url = shared_cluster().url();
  auto slash = url.rfind('/');
  if (slash == std::string::npos)
    throw std::runtime_error("a cluster URL without a database: " + url);
  return url.substr(0, slash + 1) + name;
}

std::string fresh_database(const std::string& prefix) {
  static std::atomic<int> counter{0};
  auto name = prefix + std::to_string(counter++);
  pg::connection admin{shared_cluster().url()};
  admin.exec("CREATE DATABASE " + name);
  return database_url(name);
}

pg_options instance_options(const std::string& id) {
  pg_options o;
  o.instance = id;
  o.host = "test";
  return o;
}

deployment_request make_request(int64_t github_id, const std::string& env) {
  deployment_request r;
  r.github_id = github_id;
  r.repo = "octo/app";
  r.clone_url = "https://github.com/octo/app.git";
  r.sha = "0123456789abcdef0123456789abcdef01234567";
  r.ref = "main";
  r.environment = env;
  r.task = "deploy";
  r.description = "Deploying app";
  r.actor = "hubot";
  r.app = "app";
  r.provider = "shell";
  r.payload_json = R"({"name":"app"})";
  return r;
}

inbound_event deployment_event(const std::string& delivery,
                               deployment_request r, lock_task action) {
  inbound_event ev;
  ev.delivery = delivery;
  ev.type = event_kind::deployment;
  ev.body = R"({"deployment":{"id":)" + std::to_string(r.github_id) + "}}";
  ev.deployment = std::move(r);
  ev.lock_action = action;
  return ev;
}

} // namespace heaven::test
