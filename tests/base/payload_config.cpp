#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "base/payload_config.hpp"

using namespace heaven;

namespace {

/// Reads `payload` as the payload of a deployment to production.
payload_config read(const std::string& payload,
                    const std::string& environment = "production") {
  deployment_request req;
  req.environment = environment;
  req.clone_url = "https://github.com/octo/app.git";
  req.payload_json = payload;
  return read_payload_config(req);
}

using strings = std::vector<std::string>;

} // namespace

BOOST_AUTO_TEST_SUITE(payload_config_tests)

BOOST_AUTO_TEST_CASE(no_object_reads_as_an_empty_config) {
  for (auto payload :
       {"", "null", "[1]", "{", R"({"config":[]})", R"({"config":"x"})"}) {
    auto c = read(payload);
    BOOST_TEST(c.deploy_script.empty());
    BOOST_TEST(!c.names_hosts);
    BOOST_TEST(!c.names_servers);
    BOOST_TEST(c.hosts.empty());
    BOOST_TEST(c.user == "deploy");
    BOOST_TEST(c.repo_url == "https://github.com/octo/app.git");
    BOOST_TEST(!c.has_keep_releases);
    BOOST_TEST(!c.has_tasks);
    BOOST_TEST(c.heroku_app.empty());
    BOOST_TEST(c.aws_region.empty());
    BOOST_TEST(!c.has_rollback_release);
  }
}

BOOST_AUTO_TEST_CASE(rollback_release_is_read_from_the_payload_itself) {
  auto c = read(R"({"rollback_release":"20260101120000","config":{}})");
  BOOST_TEST(c.has_rollback_release);
  BOOST_TEST(c.rollback_release == "20260101120000");
  // null is absent; another type is there, with no name.
  BOOST_TEST(!read(R"({"rollback_release":null})").has_rollback_release);
  c = read(R"({"rollback_release":20260101120000})");
  BOOST_TEST(c.has_rollback_release);
  BOOST_TEST(c.rollback_release.empty());
  // Inside config it is not the payload's.
  BOOST_TEST(
    !read(R"({"config":{"rollback_release":"1"}})").has_rollback_release);
}

BOOST_AUTO_TEST_CASE(strings_of_another_type_read_as_absent) {
  auto c = read(R"({"config":{"deploy_script":3,"user":false,)"
                R"("deploy_to":[],"repo_url":{},"app_name":1},)"
                R"("aws":{"region":2}})");
  BOOST_TEST(c.deploy_script.empty());
  BOOST_TEST(c.user == "deploy");
  BOOST_TEST(!c.has_deploy_to);
  BOOST_TEST(c.repo_url == "https://github.com/octo/app.git");
  BOOST_TEST(c.app_name.empty());
  BOOST_TEST(c.aws_region.empty());
  c = read(R"({"config":{"deploy_script":"x.sh","user":"","deploy_to":"",)"
           R"("repo_url":"git@x:y","app_name":"a"},"aws":{"region":"r"}})");
  BOOST_TEST(c.deploy_script == "x.sh");
  BOOST_TEST(c.user == "");
  BOOST_TEST(c.has_deploy_to);
  BOOST_TEST(c.deploy_to == "");
  BOOST_TEST(c.repo_url == "git@x:y");
  BOOST_TEST(c.app_name == "a");
  BOOST_TEST(c.aws_region == "r");
}

BOOST_AUTO_TEST_CASE(servers_and_hosts_count_only_when_not_empty) {
  BOOST_TEST(!read(R"({"config":{"servers":[]}})").names_servers);
  BOOST_TEST(!read(R"({"config":{"servers":false}})").names_servers);
  BOOST_TEST(!read(R"({"config":{"servers":null}})").names_servers);
  BOOST_TEST(read(R"({"config":{"servers":0}})").names_servers);
  BOOST_TEST(read(R"({"config":{"servers":["a"]}})").names_servers);
  BOOST_TEST(!read(R"({"config":{"hosts":{}}})").names_hosts);
  BOOST_TEST(!read(R"({"config":{"hosts":null}})").names_hosts);
  BOOST_TEST(read(R"({"config":{"hosts":""}})").names_hosts);
  auto other_env = read(R"({"config":{"hosts":{"staging":["a"]}}})");
  BOOST_TEST(other_env.names_hosts);
  BOOST_TEST(other_env.hosts.empty());
}

BOOST_AUTO_TEST_CASE(hosts_of_the_environment) {
  auto c = read(R"({"config":{"hosts":{"production":["a@b:2",)"
                R"({"host":"c","deploy_to":"/srv"},{"host":"d",)"
                R"("deploy_to":null},{"host":1},7]}}})");
  BOOST_REQUIRE(c.hosts.size() == 5u);
  BOOST_TEST(c.hosts[0].address == "a@b:2");
  BOOST_TEST(!c.hosts[0].has_deploy_to);
  BOOST_TEST(c.hosts[1].address == "c");
  BOOST_TEST(c.hosts[1].has_deploy_to);
  BOOST_TEST(c.hosts[1].deploy_to_valid);
  BOOST_TEST(c.hosts[1].deploy_to == "/srv");
  BOOST_TEST(c.hosts[2].has_deploy_to);
  BOOST_TEST(!c.hosts[2].deploy_to_valid);
  BOOST_TEST(c.hosts[3].address.empty());
  BOOST_TEST(c.hosts[4].address.empty());
  BOOST_TEST(read(R"({"config":{"hosts":["x"]}})", "any").hosts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(lists_keep_the_strings_before_a_wrong_entry) {
  auto c = read(R"({"config":{"linked_files":null,"linked_dirs":"x",)"
                R"("before_publish":["a",1,"b"],"after_publish":["c"]}})");
  BOOST_TEST(c.linked_files.valid);
  BOOST_TEST(c.linked_files.items.empty());
  BOOST_TEST(!c.linked_dirs.valid);
  BOOST_TEST(!c.before_publish.valid);
  BOOST_TEST(c.before_publish.items == strings{"a"});
  BOOST_TEST(c.after_publish.valid);
  BOOST_TEST(c.after_publish.items == strings{"c"});
}

BOOST_AUTO_TEST_CASE(keep_releases_and_tasks) {
  BOOST_TEST(read(R"({"config":{"keep_releases":3}})").keep_releases == 3);
  auto bad = read(R"({"config":{"keep_releases":"3"}})");
  BOOST_TEST(bad.has_keep_releases);
  BOOST_TEST(bad.keep_releases == 0);
  BOOST_TEST(read(R"({"config":{"keep_releases":null}})").has_keep_releases);
  BOOST_TEST(!read(R"({"config":{"tasks":[]}})").has_tasks);
  auto c = read(R"({"config":{"tasks":{"z":["a"],"b":null,"m":[2]}}})");
  BOOST_TEST(c.has_tasks);
  strings names;
  for (auto& [name, list] : c.tasks)
    names.push_back(name);
  BOOST_TEST(names == (strings{"b", "m", "z"}));
  BOOST_TEST(c.tasks["b"].valid);
  BOOST_TEST(c.tasks["b"].items.empty());
  BOOST_TEST(!c.tasks["m"].valid);
  BOOST_TEST(c.tasks["z"].items == strings{"a"});
}

BOOST_AUTO_TEST_CASE(heroku_app_of_the_environment_first) {
  BOOST_TEST(read(R"({"config":{"heroku_name":"a",)"
                  R"("heroku_production_name":"b"}})")
               .heroku_app
             == "b");
  BOOST_TEST(read(R"({"config":{"heroku_name":"a",)"
                  R"("heroku_production_name":7}})")
               .heroku_app
             == "a");
  // An empty name for the environment still wins (and is then missing).
  BOOST_TEST(read(R"({"config":{"heroku_name":"a",)"
                  R"("heroku_production_name":""}})")
               .heroku_app
             == "");
}

BOOST_AUTO_TEST_SUITE_END()
