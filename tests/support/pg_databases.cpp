#include "tests/support/pg_databases.hpp"

#include <atomic>
#include <stdexcept>

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

} // namespace heaven::test
