// End-to-end tests of bounded input: the real `heaven serve` refuses every
// name past its limit and every control character with a 400 naming the
// field, before anything is stored, posted to GitHub or run.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// `a`, a NUL, then `b`: JSON sends the NUL as \u0000. (A C++ literal
/// would end at the NUL.)
std::string with_nul(const std::string& a, const std::string& b = "") {
  return a + std::string(1, '\0') + b;
}

const std::string nul = with_nul("prod", "x");

/// A repository whose deploy script leaves a mark when it runs.
struct marked_repo {
  fs::path dir;
  fs::path mark;
  std::string sha;

  marked_repo(const fs::path& where, const fs::path& mark_file)
    : dir(where), mark(mark_file) {
    fs::create_directories(dir / "script");
    auto script = dir / "script" / "deploy";
    std::ofstream{script} << "#!/bin/sh\necho \"$DEPLOY_ENV\" >> "
                          << mark.string() << "\n";
    fs::permissions(script, fs::perms::owner_all | fs::perms::group_read
                              | fs::perms::others_read);
    auto d = dir.string();
    run_checked("git -C '" + d + "' init -q --initial-branch=main");
    run_checked("cd '" + d
                + "' && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m first");
    sha = run_checked("git -C '" + d + "' rev-parse HEAD");
  }
};

struct fixture {
  fs::path tmp = make_temp_dir("input");
  http_stub github;
  marked_repo app{tmp / "app", tmp / "ran"};

  ~fixture() {
    fs::remove_all(tmp);
  }

  /// A deployment event heaven would run (provider shell, script/deploy).
  json deployment(int64_t id) const {
    auto doc = deployment_event(
      {.id = id,
       .sha = app.sha,
       .clone_url = "file://" + app.dir.string(),
       .payload = {{"name", "app"},
                   {"notify", {{"room", "ops"}, {"user", "alice"}}},
                   {"config",
                    {{"provider", "shell"},
                     {"deploy_script", "script/deploy"},
                     {"production_url", "https://app.example.com"}}},
                   {"aws", {{"region", "eu-west-1"}}}}});
    doc["deployment"]["task"] = "deploy";
    doc["repository"]["html_url"] = "https://github.com/octo/app";
    doc["repository"]["default_branch"] = "main";
    return doc;
  }

  json deployment_status(int64_t id) const {
    auto doc = deployment(id);
    doc["deployment_status"] = {{"id", id * 10},
                                {"state", "success"},
                                {"description", "Deployed."},
                                {"log_url", "https://heaven.example.test/l"},
                                {"environment_url", "https://app.example.com"}};
    return doc;
  }

  json status() const {
    return {{"sha", app.sha},
            {"state", "success"},
            {"branches", json::array({{{"name", "main"}}})},
            {"commit", {{"author", {{"login", "carol"}}}}},
            {"repository",
             {{"full_name", "octo/app"}, {"default_branch", "main"}}},
            {"sender", {{"login", "ci-bot"}}}};
  }
};

/// One refusal: the event, how it is spoiled, and the message expected.
struct refusal {
  std::string type;
  std::function<void(json&)> spoil;
  std::string message;
};

std::string error_of(const http_response& res) {
  auto doc = json::parse(res.body, nullptr, false);
  return doc.is_object() && doc.contains("error") && doc["error"].is_string()
           ? doc["error"].get<std::string>()
           : "(no error in " + res.body + ")";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(end_to_end_input, fixture)

BOOST_AUTO_TEST_CASE(names_past_their_limits_and_control_characters_are_400) {
  heaven_server h{tmp / "data", github.base_url()};
  const std::string s255(255, 'e');
  const std::vector<refusal> cases = {
    // deployment: every name it carries.
    {"deployment",
     [](json& d) { d["deployment"]["environment"] = std::string(256, 'e'); },
     "deployment.environment is longer than 255 characters"},
    {"deployment",
     [](json& d) {
       d["deployment"]["environment"] = std::string(1024 * 1024, 'e');
     },
     "deployment.environment is longer than 255 characters"},
    {"deployment", [](json& d) { d["deployment"]["environment"] = nul; },
     "deployment.environment contains a control character"},
    {"deployment",
     [](json& d) { d["deployment"]["environment"] = "prod\nuction"; },
     "deployment.environment contains a control character"},
    {"deployment",
     [](json& d) { d["deployment"]["environment"] = "prod\xc2\x85"; },
     "deployment.environment contains a control character"},
    {"deployment",
     [](json& d) { d["deployment"]["ref"] = std::string(256, 'r'); },
     "deployment.ref is longer than 255 bytes"},
    {"deployment", [](json& d) { d["deployment"]["ref"] = with_nul("main"); },
     "deployment.ref contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["task"] = "deploy:" + std::string(249, 't');
     },
     "deployment.task is longer than 255 characters"},
    {"deployment", [](json& d) { d["deployment"]["task"] = "deploy\x1b[2J"; },
     "deployment.task contains a control character"},
    {"deployment",
     [](json& d) { d["deployment"]["sha"] = std::string(65, 'a'); },
     "deployment.sha is longer than 64 characters"},
    {"deployment",
     [](json& d) { d["deployment"]["description"] = std::string(1025, 'd'); },
     "deployment.description is longer than 1024 characters"},
    {"deployment",
     [](json& d) { d["deployment"]["description"] = "line one\rline two"; },
     "deployment.description contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["creator"]["login"] = std::string(40, 'a');
     },
     "deployment.creator.login is longer than 39 characters"},
    {"deployment",
     [](json& d) { d["deployment"]["creator"]["login"] = "mallory bob"; },
     "deployment.creator.login is not a GitHub login (letters, digits, '-' "
     "and '_')"},
    {"deployment", [](json& d) { d["sender"]["login"] = with_nul("eve"); },
     "sender.login contains a control character"},
    {"deployment",
     [](json& d) {
       d["repository"]["full_name"] = std::string(40, 'o') + "/app";
     },
     "repository.full_name has an owner longer than 39 characters"},
    {"deployment",
     [](json& d) {
       d["repository"]["full_name"] = "octo/" + std::string(101, 'n');
     },
     "repository.full_name has a name longer than 100 characters"},
    {"deployment",
     [](json& d) {
       d["repository"]["full_name"] = "octo/" + std::string(1024 * 1024, 'n');
     },
     "repository.full_name is longer than 140 characters"},
    {"deployment",
     [](json& d) { d["repository"]["full_name"] = with_nul("octo/app", "x"); },
     "repository.full_name contains a control character"},
    {"deployment", [](json& d) { d["repository"]["full_name"] = "octo/a b"; },
     "repository.full_name is not a GitHub repository name (letters, "
     "digits, '.', '-' and '_')"},
    {"deployment", [](json& d) { d["repository"]["full_name"] = "octo"; },
     "repository.full_name is not owner/name"},
    {"deployment",
     [](json& d) { d["repository"]["name"] = std::string(101, 'n'); },
     "repository.name is longer than 100 characters"},
    {"deployment",
     [](json& d) {
       d["repository"]["clone_url"] = "file:///" + std::string(2041, 'c');
     },
     "repository.clone_url is longer than 2048 characters"},
    {"deployment",
     [](json& d) { d["repository"]["clone_url"] = "file:///x\n--upload-pack"; },
     "repository.clone_url contains a control character"},
    {"deployment",
     [](json& d) { d["repository"]["default_branch"] = "ma\tin"; },
     "repository.default_branch contains a control character"},
    // What heaven reads from the payload.
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["name"] = std::string(1024 * 1024, 'a');
     },
     "deployment.payload.name is longer than 255 characters"},
    {"deployment",
     [](json& d) { d["deployment"]["payload"]["name"] = with_nul("app", "x"); },
     "deployment.payload.name contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["notify"]["room"] = std::string(256, 'r');
     },
     "deployment.payload.notify.room is longer than 255 characters"},
    {"deployment",
     [](json& d) { d["deployment"]["payload"]["notify"]["user"] = "al\nice"; },
     "deployment.payload.notify.user contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["config"]["provider"] = with_nul("shell");
     },
     "deployment.payload.config.provider contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["config"]["deploy_script"]
         = "script/deploy\n";
     },
     "deployment.payload.config.deploy_script contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["config"]["production_url"]
         = "https://app.example.com/" + std::string(2025, 'u');
     },
     "deployment.payload.config.production_url is longer than 2048 "
     "characters"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["config"]["hosts"] = {
         {"production", {"deploy@web1", "deploy@web2\r"}}};
     },
     "deployment.payload.config.hosts.production[1] contains a control "
     "character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["config"]["bad\x1b"
                                            "key"]
         = true;
     },
     "a key of deployment.payload.config contains a control character"},
    {"deployment",
     [](json& d) {
       d["deployment"]["payload"]["aws"]["region"] = with_nul("eu-west-1");
     },
     "deployment.payload.aws.region contains a control character"},
    {"deployment",
     [](json& d) {
       // The payload JSON-encoded a second time hides nothing.
       auto payload = d["deployment"]["payload"];
       payload["config"]["deploy_script"] = with_nul("script/", "deploy");
       d["deployment"]["payload"] = payload.dump();
     },
     "deployment.payload.config.deploy_script contains a control character"},
    // deployment_status: its own fields and the deployment's.
    {"deployment_status",
     [](json& d) {
       d["deployment_status"]["description"] = std::string(141, 'd');
     },
     "deployment_status.description is longer than 140 characters"},
    {"deployment_status",
     [](json& d) { d["deployment_status"]["state"] = std::string(33, 's'); },
     "deployment_status.state is longer than 32 characters"},
    {"deployment_status",
     [](json& d) {
       d["deployment_status"]["log_url"] = with_nul("https://x/");
     },
     "deployment_status.log_url contains a control character"},
    {"deployment_status",
     [](json& d) {
       d["deployment_status"]["environment_url"] = "https://"
                                                   + std::string(2041, 'e');
     },
     "deployment_status.environment_url is longer than 2048 characters"},
    {"deployment_status", [](json& d) { d["deployment"]["environment"] = nul; },
     "deployment.environment contains a control character"},
    {"deployment_status",
     [](json& d) {
       d["deployment"]["payload"]["notify"]["user_name"] = std::string(256,
                                                                       'u');
     },
     "deployment.payload.notify.user_name is longer than 255 characters"},
    // status.
    {"status", [](json& d) { d["sha"] = std::string(65, 'a'); },
     "sha is longer than 64 characters"},
    {"status", [](json& d) { d["state"] = with_nul("success"); },
     "state contains a control character"},
    {"status",
     [](json& d) { d["branches"][0]["name"] = std::string(256, 'b'); },
     "branches[0].name is longer than 255 bytes"},
    {"status",
     [](json& d) {
       d["branches"] = json::array();
       for (int i = 0; i < 11; ++i)
         d["branches"].push_back({{"name", "b" + std::to_string(i)}});
     },
     "branches has more than 10 entries"},
    {"status",
     [](json& d) { d["commit"]["author"]["login"] = std::string(40, 'c'); },
     "commit.author.login is longer than 39 characters"},
    {"status",
     [](json& d) { d["repository"]["default_branch"] = with_nul("main"); },
     "repository.default_branch contains a control character"},
    // ping: its repository is recorded like any other's.
    {"ping",
     [](json& d) { d["repository"]["full_name"] = std::string(300, 'p'); },
     "repository.full_name is longer than 140 characters"},
  };
  int n = 0;
  for (auto& c : cases) {
    json doc = c.type == "deployment"          ? deployment(3000 + n)
               : c.type == "deployment_status" ? deployment_status(3000 + n)
               : c.type == "status"
                 ? status()
                 : json{{"zen", "Design for failure."},
                        {"repository", {{"full_name", "octo/app"}}}};
    c.spoil(doc);
    auto res = h.post_event(c.type, "bad-" + std::to_string(n++), doc.dump());
    BOOST_TEST(res.status == 400, c.message << ": got " << res.status);
    BOOST_TEST(error_of(res) == c.message);
  }
  // The delivery id is stored too: GitHub's are GUIDs.
  auto res = h.post_event("deployment", std::string(256, 'g'),
                          deployment(2999).dump());
  BOOST_TEST(res.status == 400);
  BOOST_TEST(error_of(res)
             == "header X-GitHub-Delivery is longer than 255 characters");
  // Nothing was stored, posted to GitHub or run.
  BOOST_TEST(h.deployments().empty(), h.deployments().dump());
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(!fs::exists(app.mark));
  // And the same heaven does run a sound event at the limits: a 255
  // character environment (its URL key named after it), 39-character
  // logins, a 100-character repository name under a 39-character owner.
  auto good = deployment(4000);
  good["deployment"]["environment"] = s255;
  good["deployment"]["payload"]["config"][s255 + "_url"]
    = "https://app.example.com";
  good["deployment"]["creator"]["login"] = std::string(39, 'a');
  good["sender"]["login"] = "heaven-bot[bot]";
  good["repository"]["full_name"] = std::string(39, 'o') + "/"
                                    + std::string(100, 'n');
  BOOST_TEST(h.post_event("deployment", "good", good.dump()).status == 201);
  auto row = h.wait_finished(id_of(h, 4000));
  BOOST_TEST(row.at("state") == "success");
  BOOST_TEST(run_checked("cat " + app.mark.string()) == s255);
  BOOST_TEST(h.deployments().size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
