// Tests for webhook signature checks and the parsing of deployment, status
// and deployment_status events.
#include <boost/test/unit_test.hpp>

#include <string>
#include <variant>
#include <vector>

#include "base/webhook.hpp"

using namespace heaven;

namespace {

/// GitHub's documented `deployment` event, with hubot-deploy's payload.
const std::string full_event = R"json({
  "action": "created",
  "deployment": {
    "url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728",
    "id": 326191728,
    "node_id": "MDEwOkRlcGxveW1lbnQzMjYxOTE3Mjg=",
    "sha": "a10867b14bb761a232cd80139fbd4c0d33264240",
    "ref": "main",
    "task": "deploy:migrations",
    "payload": {
      "name": "hello-world",
      "robotName": "hubot",
      "hosts": "",
      "notify": {
        "room": "ops",
        "user": "U024BE7LH",
        "user_name": "codertocat",
        "adapter": "slack"
      },
      "config": {
        "provider": "shell",
        "repository": "Codertocat/Hello-World",
        "environments": ["production", "staging"],
        "deploy_script": "script/deploy",
        "production_url": "https://hello.example.com",
        "staging_url": "https://staging.hello.example.com",
        "allowed_rooms": ["ops"]
      }
    },
    "original_environment": "production",
    "environment": "production",
    "description": "Deploying main to production",
    "creator": {
      "login": "Codertocat",
      "id": 21031067,
      "type": "User",
      "site_admin": false
    },
    "created_at": "2019-05-15T15:20:53Z",
    "updated_at": "2019-05-15T15:20:53Z",
    "statuses_url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728/statuses",
    "repository_url": "https://api.github.com/repos/Codertocat/Hello-World",
    "transient_environment": false,
    "production_environment": true
  },
  "repository": {
    "id": 186853002,
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "private": false,
    "owner": {"login": "Codertocat", "id": 21031067},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "clone_url": "https://github.com/Codertocat/Hello-World.git",
    "default_branch": "main"
  },
  "sender": {"login": "Hubot", "id": 1, "type": "Bot"}
})json";

/// A minimal event; `deployment_extra` is spliced into `deployment`.
std::string small_event(const std::string& deployment_extra) {
  return R"({"deployment":{"id":7,)"
         R"("sha":"0123456789012345678901234567890123456789",)"
         R"("ref":"main","environment":"staging")"
         + deployment_extra
         + R"(},"repository":{"full_name":"octo/app",)"
           R"("clone_url":"file:///tmp/app.git"},"sender":{"login":"amy"}})";
}

deployment_request parsed(const std::string& body) {
  auto result = parse_deployment(body);
  if (auto* msg = std::get_if<std::string>(&result))
    BOOST_FAIL("unexpected parse error: " << *msg);
  return std::get<deployment_request>(result);
}

std::string error_of(const std::string& body) {
  auto result = parse_deployment(body);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<std::string>(result),
                        "expected a parse error for " << body);
  return std::get<std::string>(result);
}

} // namespace

BOOST_AUTO_TEST_SUITE(webhook)

BOOST_AUTO_TEST_CASE(hmac_matches_githubs_test_vector) {
  const std::string secret = "It's a Secret to Everybody";
  const std::string body = "Hello, World!";
  const std::string hex
    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  BOOST_TEST(hmac_sha256_hex(secret, body) == hex);
  BOOST_TEST(signature_valid(secret, body, "sha256=" + hex));
}

BOOST_AUTO_TEST_CASE(bad_signatures_are_rejected) {
  const std::string secret = "It's a Secret to Everybody";
  const std::string body = "Hello, World!";
  const std::string hex
    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  // One digit off.
  std::string wrong = hex;
  wrong[10] = wrong[10] == '0' ? '1' : '0';
  BOOST_TEST(!signature_valid(secret, body, "sha256=" + wrong));
  // Another body or another secret.
  BOOST_TEST(!signature_valid(secret, "Hello, World?", "sha256=" + hex));
  BOOST_TEST(!signature_valid("another secret", body, "sha256=" + hex));
  // Missing, short, long, non-hex, other prefix.
  BOOST_TEST(!signature_valid(secret, body, ""));
  BOOST_TEST(!signature_valid(secret, body, "sha256="));
  BOOST_TEST(!signature_valid(secret, body, "sha256=" + hex.substr(0, 63)));
  BOOST_TEST(!signature_valid(secret, body, "sha256=" + hex + "0"));
  BOOST_TEST(
    !signature_valid(secret, body, "sha256=" + hex.substr(0, 63) + "g"));
  BOOST_TEST(!signature_valid(secret, body, "sha1=" + hex));
  BOOST_TEST(!signature_valid(secret, body, "SHA256=" + hex));
  BOOST_TEST(!signature_valid(secret, body, hex));
  // An empty secret never validates anything, even a matching HMAC.
  BOOST_TEST(!signature_valid("", body, "sha256=" + hmac_sha256_hex("", body)));
}

BOOST_AUTO_TEST_CASE(full_github_event_is_parsed) {
  auto req = parsed(full_event);
  BOOST_TEST(req.github_id == 326191728);
  BOOST_TEST(req.repo == "Codertocat/Hello-World");
  BOOST_TEST(req.clone_url == "https://github.com/Codertocat/Hello-World.git");
  BOOST_TEST(req.sha == "a10867b14bb761a232cd80139fbd4c0d33264240");
  BOOST_TEST(req.ref == "main");
  BOOST_TEST(req.environment == "production");
  BOOST_TEST(req.task == "deploy:migrations");
  BOOST_TEST(req.description == "Deploying main to production");
  BOOST_TEST(req.actor == "Codertocat");
  BOOST_TEST(req.app == "hello-world");
  BOOST_TEST(req.provider == "shell");
  BOOST_TEST(req.environment_url == "https://hello.example.com");
  // The payload text is the object as sent, ready to be re-read.
  BOOST_TEST(req.payload_json.front() == '{');
  BOOST_TEST(req.payload_json.back() == '}');
  BOOST_TEST(req.payload_json.find(R"("deploy_script": "script/deploy")")
             != std::string::npos);
  BOOST_TEST(req.payload_json.find(R"("user_name": "codertocat")")
             != std::string::npos);
  BOOST_TEST(check_json_object(req.payload_json) == "");
}

BOOST_AUTO_TEST_CASE(fields_in_any_order) {
  // repository first, payload before environment, creator last.
  auto req = parsed(
    R"({"sender":{"login":"bob"},"repository":{"clone_url":"file:///r.git",)"
    R"("full_name":"o/r"},"deployment":{"payload":{"config":)"
    R"({"staging_url":"https://s","provider":"heroku"}},)"
    R"("environment":"staging","ref":"v1","sha":"abc","id":9,)"
    R"("creator":{"login":"carol"}}})");
  BOOST_TEST(req.github_id == 9);
  BOOST_TEST(req.environment == "staging");
  BOOST_TEST(req.environment_url == "https://s");
  BOOST_TEST(req.provider == "heroku");
  BOOST_TEST(req.actor == "carol");
  BOOST_TEST(req.app == "r");
  BOOST_TEST(req.task == "deploy");
}

BOOST_AUTO_TEST_CASE(payload_as_json_string) {
  auto req = parsed(small_event(
    R"(,"payload":"{\"name\":\"shop\",\"config\":{\"provider\":)"
    R"(\"capistrano\",\"staging_url\":\"https://staging.shop\"}}")"));
  BOOST_TEST(req.app == "shop");
  BOOST_TEST(req.provider == "capistrano");
  BOOST_TEST(req.environment_url == "https://staging.shop");
  BOOST_TEST(req.payload_json
             == R"({"name":"shop","config":{"provider":"capistrano",)"
                R"("staging_url":"https://staging.shop"}})");
}

BOOST_AUTO_TEST_CASE(payload_string_without_object_is_an_error) {
  auto msg = error_of(small_event(R"(,"payload":"[1,2]")"));
  BOOST_TEST(msg.find("deployment.payload") != std::string::npos);
  msg = error_of(small_event(R"(,"payload":"{nope")"));
  BOOST_TEST(msg.find("deployment.payload") != std::string::npos);
  msg = error_of(small_event(R"(,"payload":42)"));
  BOOST_TEST(msg.find("deployment.payload") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(payload_missing_or_null_gives_defaults) {
  for (auto extra : {std::string{}, std::string{R"(,"payload":null)"},
                     std::string{R"(,"payload":"")"}}) {
    auto req = parsed(small_event(extra));
    BOOST_TEST(req.payload_json == "{}");
    BOOST_TEST(req.app == "app"); // from full_name, repository.name absent
    BOOST_TEST(req.provider == "");
    BOOST_TEST(req.environment_url == "");
    BOOST_TEST(req.task == "deploy");
    BOOST_TEST(req.description == "");
    BOOST_TEST(req.actor == "amy"); // sender.login, no creator
  }
}

BOOST_AUTO_TEST_CASE(each_missing_required_field_is_named) {
  const std::string sha = R"("sha":"0123456789012345678901234567890123456789")";
  const std::string repo
    = R"("repository":{"full_name":"octo/app","clone_url":"file:///a.git"})";
  auto event = [&](std::string dep, std::string repository) {
    return R"({"deployment":{)" + dep + "}," + repository + "}";
  };
  BOOST_TEST(error_of(event(sha + R"(,"ref":"m","environment":"e")", repo))
             == "missing field deployment.id");
  BOOST_TEST(error_of(event(R"("id":1,"ref":"m","environment":"e")", repo))
             == "missing field deployment.sha");
  BOOST_TEST(error_of(event(R"("id":1,)" + sha + R"(,"environment":"e")", repo))
             == "missing field deployment.ref");
  BOOST_TEST(error_of(event(R"("id":1,)" + sha + R"(,"ref":"m")", repo))
             == "missing field deployment.environment");
  const std::string dep = R"("id":1,)" + sha
                          + R"(,"ref":"m","environment":"e")";
  BOOST_TEST(error_of(event(dep, R"("repository":{"clone_url":"file:///a"})"))
             == "missing field repository.full_name");
  BOOST_TEST(error_of(event(dep, R"("repository":{"full_name":"o/a"})"))
             == "missing field repository.clone_url");
  BOOST_TEST(error_of(R"({"repository":{"full_name":"o/a","clone_url":"x"}})")
             == "missing field deployment.id");
  // With everything present the same event parses.
  BOOST_TEST(parsed(event(dep, repo)).github_id == 1);
}

BOOST_AUTO_TEST_CASE(wrong_types_are_named) {
  auto with = [](std::string from, std::string to) {
    auto body = small_event("");
    return body.replace(body.find(from), from.size(), to);
  };
  auto msg = error_of(with(R"("id":7)", R"("id":"7")"));
  BOOST_TEST(msg == "field deployment.id must be an integer");
  msg = error_of(with(R"("ref":"main")", R"("ref":5)"));
  BOOST_TEST(msg == "field deployment.ref must be a string");
  BOOST_TEST(error_of(R"({"deployment":[1]})")
             == "field deployment must be an object");
}

BOOST_AUTO_TEST_CASE(malformed_json) {
  for (auto body : {std::string{R"({"deployment":)"},
                    std::string{R"({"deployment":{"id":1,}})"},
                    std::string{"not json"}, std::string{}}) {
    auto msg = error_of(body);
    BOOST_TEST(msg.rfind("malformed JSON: ", 0) == 0, msg);
  }
  // Broken JSON in a part nobody reads is still broken.
  auto msg = error_of(small_event(R"(,"extra":[1,,2])"));
  BOOST_TEST(msg.rfind("malformed JSON: ", 0) == 0, msg);
}

BOOST_AUTO_TEST_CASE(unicode_in_description) {
  auto req = parsed(small_event(
    R"(,"description":"D\u00e9ploiement \ud83d\ude80 vers pr\u00e9prod ✓")"));
  BOOST_TEST(req.description
             == "D\xc3\xa9ploiement \xf0\x9f\x9a\x80 vers pr\xc3\xa9prod "
                "\xe2\x9c\x93");
}

BOOST_AUTO_TEST_CASE(check_json_object_cases) {
  BOOST_TEST(check_json_object(R"({"zen":"Keep it logically awesome."})")
             == "");
  BOOST_TEST(check_json_object("{}") == "");
  BOOST_TEST(check_json_object("[]") == "not a JSON object");
  BOOST_TEST(check_json_object("\"x\"") == "not a JSON object");
  BOOST_TEST(check_json_object("{").rfind("malformed JSON: ", 0) == 0);
  BOOST_TEST(check_json_object("").rfind("malformed JSON: ", 0) == 0);
  BOOST_TEST(
    check_json_object(R"({"a":1} {"b":2})").rfind("malformed JSON: ", 0) == 0);
}

// The parsers and padded copies are kept per thread between events: what one
// event left behind must never be read as part of the next.
BOOST_AUTO_TEST_CASE(each_event_is_read_on_its_own) {
  // Past the 64 KiB a thread keeps, so the storage is given back after it.
  auto large = small_event(R"(,"description":"big","extra":")"
                           + std::string(100 * 1024, 'x') + "\"");
  auto small = small_event(R"(,"description":"small")");
  for (int round = 0; round < 2; ++round) {
    BOOST_TEST(parsed(large).description == "big");
    // A prefix of the body before: the rest of it is still in the buffer.
    auto cut = error_of(small.substr(0, small.size() - 20));
    BOOST_TEST(cut.rfind("malformed JSON: ", 0) == 0, cut);
    BOOST_TEST(check_json_object(small.substr(0, small.size() - 1)) != "");
    BOOST_TEST(parsed(small).description == "small");
    BOOST_TEST(check_json_object(small) == "");
    BOOST_TEST(check_json_object(large) == "");
  }
  // A parse inside a parse: the payload given as a string is parsed while
  // the event is, and each keeps to its own text.
  auto nested = parsed(
    small_event(R"(,"description":"outer","payload":"{\"name\":\"inner\"}")"));
  BOOST_TEST(nested.description == "outer");
  BOOST_TEST(nested.app == "inner");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

/// A `status` event shaped like GitHub's documented example: a green CI
/// status for a commit that heads two branches.
const std::string status_event = R"json({
  "id": 6805126730,
  "sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
  "name": "Codertocat/Hello-World",
  "target_url": "https://ci.example.com/builds/1234",
  "avatar_url": "https://avatars.githubusercontent.com/u/21031067?v=4",
  "context": "ci/build",
  "description": "Build #1234 réussi ✓",
  "state": "success",
  "commit": {
    "sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
    "node_id": "MDY6Q29tbWl0MTg2ODUzMDAyOjQ1NDQyMDVh",
    "commit": {
      "author": {"name": "Mona Lisa", "email": "mona@example.com",
                 "date": "2019-05-15T15:20:30Z"},
      "committer": {"name": "GitHub", "email": "noreply@github.com",
                    "date": "2019-05-15T15:20:30Z"},
      "message": "Initial commit",
      "tree": {"sha": "f9d2a07e9488b91af2641b26b9407fe22a451433",
               "url": "https://api.github.com/repos/Codertocat/Hello-World/git/trees/f9d2a07e"},
      "url": "https://api.github.com/repos/Codertocat/Hello-World/git/commits/4544205a",
      "comment_count": 0,
      "verification": {"verified": false, "reason": "unsigned",
                       "signature": null, "payload": null}
    },
    "url": "https://api.github.com/repos/Codertocat/Hello-World/commits/4544205a",
    "html_url": "https://github.com/Codertocat/Hello-World/commit/4544205a",
    "comments_url": "https://api.github.com/repos/Codertocat/Hello-World/commits/4544205a/comments",
    "author": {"login": "monalisa", "id": 583231, "type": "User"},
    "committer": {"login": "web-flow", "id": 19864447, "type": "User"},
    "parents": []
  },
  "branches": [
    {"name": "main",
     "commit": {"sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
                "url": "https://api.github.com/repos/Codertocat/Hello-World/commits/4544205a"},
     "protected": true},
    {"name": "fonctionnalit\u00e9/\u00e9t\u00e9",
     "commit": {"sha": "4544205a385319fd846d5df4ed2e3b8173529d78",
                "url": "https://api.github.com/repos/Codertocat/Hello-World/commits/4544205a"},
     "protected": false}
  ],
  "created_at": "2019-05-15T15:20:55+00:00",
  "updated_at": "2019-05-15T15:20:55+00:00",
  "repository": {
    "id": 186853002,
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "private": false,
    "owner": {"login": "Codertocat", "id": 21031067},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "clone_url": "https://github.com/Codertocat/Hello-World.git",
    "default_branch": "main"
  },
  "sender": {"login": "ci-bot", "id": 1234, "type": "Bot"}
})json";

/// A `deployment_status` event shaped like GitHub's documented example, for
/// a deployment hubot-deploy created (payload with `notify`).
const std::string deployment_status_event = R"json({
  "action": "created",
  "deployment_status": {
    "url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728/statuses/344110148",
    "id": 344110148,
    "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMzNDQxMTAxNDg=",
    "state": "success",
    "creator": {"login": "heaven-bot", "id": 7, "type": "Bot"},
    "description": "D\u00e9ploy\u00e9 \ud83d\ude80 en production ✓",
    "environment": "production",
    "target_url": "https://heaven.example.com/deployments/9/log?token=t",
    "log_url": "https://heaven.example.com/deployments/9/log?token=l",
    "environment_url": "https://hello.example.com",
    "created_at": "2019-05-15T15:20:55Z",
    "updated_at": "2019-05-15T15:20:55Z",
    "deployment_url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728",
    "repository_url": "https://api.github.com/repos/Codertocat/Hello-World",
    "performed_via_github_app": null
  },
  "deployment": {
    "url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728",
    "id": 326191728,
    "node_id": "MDEwOkRlcGxveW1lbnQzMjYxOTE3Mjg=",
    "sha": "a10867b14bb761a232cd80139fbd4c0d33264240",
    "ref": "main",
    "task": "deploy:migrations",
    "payload": {
      "name": "hello-world",
      "robotName": "hubot",
      "notify": {"adapter": "slack", "room": "ops", "user": "U024BE7LH",
                 "user_name": "codertocat"},
      "config": {"provider": "shell", "deploy_script": "script/deploy"}
    },
    "original_environment": "production",
    "environment": "production",
    "description": "Mise en production de main — été",
    "creator": {"login": "Codertocat", "id": 21031067, "type": "User"},
    "created_at": "2019-05-15T15:20:53Z",
    "updated_at": "2019-05-15T15:20:55Z",
    "statuses_url": "https://api.github.com/repos/Codertocat/Hello-World/deployments/326191728/statuses",
    "repository_url": "https://api.github.com/repos/Codertocat/Hello-World",
    "transient_environment": false,
    "production_environment": true
  },
  "repository": {
    "id": 186853002,
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "html_url": "https://github.com/Codertocat/Hello-World",
    "clone_url": "https://github.com/Codertocat/Hello-World.git",
    "default_branch": "main"
  },
  "sender": {"login": "heaven-bot", "id": 7, "type": "Bot"}
})json";

/// `body` with the first `from` replaced by `to` (which must be there).
std::string with(std::string body, const std::string& from,
                 const std::string& to) {
  auto pos = body.find(from);
  BOOST_REQUIRE_MESSAGE(pos != std::string::npos, "no " << from);
  return body.replace(pos, from.size(), to);
}

commit_status_event status_of(const std::string& body) {
  auto result = parse_commit_status(body);
  if (auto* msg = std::get_if<std::string>(&result))
    BOOST_FAIL("unexpected parse error: " << *msg);
  return std::get<commit_status_event>(result);
}

std::string status_error(const std::string& body) {
  auto result = parse_commit_status(body);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<std::string>(result),
                        "expected a parse error for " << body);
  return std::get<std::string>(result);
}

deployment_notice notice_of(const std::string& body) {
  auto result = parse_deployment_status(body);
  if (auto* msg = std::get_if<std::string>(&result))
    BOOST_FAIL("unexpected parse error: " << *msg);
  return std::get<deployment_notice>(result);
}

std::string notice_error(const std::string& body) {
  auto result = parse_deployment_status(body);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<std::string>(result),
                        "expected a parse error for " << body);
  return std::get<std::string>(result);
}

/// A minimal `status` event; `extra` is spliced into the top level.
std::string small_status(const std::string& extra) {
  return R"({"sha":"0123456789012345678901234567890123456789",)"
         R"("state":"success","repository":{"full_name":"octo/app",)"
         R"("default_branch":"main"})"
         + extra + "}";
}

/// A minimal `deployment_status` event; `deployment_extra` is spliced into
/// `deployment`, `status_extra` into `deployment_status`.
std::string small_notice(const std::string& deployment_extra,
                         const std::string& status_extra = "") {
  return R"({"deployment_status":{"state":"pending")" + status_extra
         + R"(},"deployment":{"id":7,)"
           R"("sha":"0123456789012345678901234567890123456789",)"
           R"("ref":"main","environment":"staging")"
         + deployment_extra
         + R"(},"repository":{"full_name":"octo/app"},)"
           R"("sender":{"login":"amy"}})";
}

} // namespace

BOOST_AUTO_TEST_SUITE(commit_status)

BOOST_AUTO_TEST_CASE(githubs_status_event_is_parsed) {
  auto ev = status_of(status_event);
  BOOST_TEST(ev.repo == "Codertocat/Hello-World");
  BOOST_TEST(ev.sha == "4544205a385319fd846d5df4ed2e3b8173529d78");
  BOOST_TEST(ev.state == "success");
  BOOST_TEST(ev.default_branch == "main");
  // The commit's GitHub account, not its git author name nor the sender.
  BOOST_TEST(ev.author == "monalisa");
  BOOST_TEST(ev.branches
               == (std::vector<std::string>{
                 "main", "fonctionnalit\xc3\xa9/\xc3\xa9t\xc3\xa9"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(author_falls_back_to_the_sender) {
  // GitHub sends `"author": null` when no account matches the commit email.
  auto body = with(status_event,
                   R"("author": {"login": "monalisa", "id": 583231, )"
                   R"("type": "User"})",
                   R"("author": null)");
  BOOST_TEST(status_of(body).author == "ci-bot");
  BOOST_TEST(status_of(small_status(R"(,"commit":{"author":null},)"
                                    R"("sender":{"login":"bob"})"))
               .author
             == "bob");
  BOOST_TEST(status_of(small_status(R"(,"commit":null)")).author == "");
  BOOST_TEST(status_of(small_status("")).author == "");
  // A sender listed before the commit does not win over the commit's author.
  BOOST_TEST(status_of(small_status(R"(,"sender":{"login":"bob"},)"
                                    R"("commit":{"author":{"login":"eve"}})"))
               .author
             == "eve");
}

BOOST_AUTO_TEST_CASE(branches_are_optional) {
  BOOST_TEST(status_of(small_status("")).branches.empty());
  BOOST_TEST(status_of(small_status(R"(,"branches":[])")).branches.empty());
  BOOST_TEST(status_of(small_status(R"(,"branches":null)")).branches.empty());
  auto ev = status_of(small_status(
    R"(,"branches":[{"protected":false},{"name":"dev","protected":true}])"));
  BOOST_TEST(ev.branches == std::vector<std::string>{"dev"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(each_missing_required_field_is_named) {
  const std::string sha = R"("sha":"4544205a385319fd846d5df4ed2e3b8173529d78")";
  const std::string state = R"("state":"failure")";
  const std::string repo = R"("repository":{"full_name":"o/r",)"
                           R"("default_branch":"main"})";
  auto event = [](std::initializer_list<std::string> parts) {
    std::string body = "{";
    for (auto& part : parts)
      body += (body.size() > 1 ? "," : "") + part;
    return body + "}";
  };
  BOOST_TEST(status_error(event({state, repo})) == "missing field sha");
  BOOST_TEST(status_error(event({sha, repo})) == "missing field state");
  BOOST_TEST(
    status_error(event({sha, state, R"("repository":{"default_branch":"m"})"}))
    == "missing field repository.full_name");
  BOOST_TEST(
    status_error(event({sha, state, R"("repository":{"full_name":"o/r"})"}))
    == "missing field repository.default_branch");
  BOOST_TEST(status_error(event({sha, state}))
             == "missing field "
                "repository.full_name");
  BOOST_TEST(status_error(event({sha, R"("state":"")", repo}))
             == "missing field state");
  BOOST_TEST(status_error(event({R"("sha":null)", state, repo}))
             == "missing field sha");
  // And the realistic event without each of them.
  BOOST_TEST(status_error(with(status_event, R"("state": "success",)", ""))
             == "missing field state");
  BOOST_TEST(status_error(with(status_event, R"("default_branch": "main")",
                               R"("default_branch": null)"))
             == "missing field repository.default_branch");
  auto ev = status_of(event({sha, state, repo}));
  BOOST_TEST(ev.state == "failure");
}

BOOST_AUTO_TEST_CASE(wrong_types_are_named) {
  BOOST_TEST(
    status_error(with(small_status(""), R"("state":"success")", R"("state":1)"))
    == "field state must be a string");
  BOOST_TEST(
    status_error(with(small_status(""),
                      R"("sha":"0123456789012345678901234567890123456789")",
                      R"("sha":["x"])"))
    == "field sha must be a string");
  BOOST_TEST(status_error(with(small_status(""), R"("default_branch":"main")",
                               R"("default_branch":{"name":"main"})"))
             == "field repository.default_branch must be a string");
  BOOST_TEST(status_error(small_status(R"(,"branches":{"name":"main"})"))
             == "field branches must be an array");
  BOOST_TEST(status_error(small_status(R"(,"branches":["main"])"))
             == "field branches[0] must be an object");
  BOOST_TEST(status_error(small_status(R"(,"branches":[{"name":1}])"))
             == "field branches[0].name must be a string");
  BOOST_TEST(status_error(small_status(R"(,"commit":"4544205a")"))
             == "field commit must be an object");
  BOOST_TEST(status_error(small_status(R"(,"commit":{"author":{"login":42}})"))
             == "field commit.author.login must be a string");
  BOOST_TEST(status_error(R"({"repository":"o/r"})")
             == "field repository must be an object");
}

BOOST_AUTO_TEST_CASE(malformed_json) {
  for (auto body : {std::string{R"({"sha":)"}, std::string{"not json"},
                    std::string{}, small_status(R"(,"x":[1,,2])")})
    BOOST_TEST(status_error(body).rfind("malformed JSON: ", 0) == 0, body);
  BOOST_TEST(status_error("[1]") == "not a JSON object");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(deployment_status)

BOOST_AUTO_TEST_CASE(githubs_deployment_status_event_is_parsed) {
  auto n = notice_of(deployment_status_event);
  BOOST_TEST(n.repo == "Codertocat/Hello-World");
  BOOST_TEST(n.app == "hello-world");
  BOOST_TEST(n.repo_url == "https://github.com/Codertocat/Hello-World");
  BOOST_TEST(n.deployment_id == 326191728);
  BOOST_TEST(n.status_id == 344110148);
  BOOST_TEST(n.state == "success");
  BOOST_TEST(n.description
             == "D\xc3\xa9ploy\xc3\xa9 \xf0\x9f\x9a\x80 en production "
                "\xe2\x9c\x93");
  BOOST_TEST(n.log_url
             == "https://heaven.example.com/deployments/9/log?token=l");
  BOOST_TEST(n.environment_url == "https://hello.example.com");
  BOOST_TEST(n.environment == "production");
  BOOST_TEST(n.task == "deploy:migrations");
  BOOST_TEST(n.ref == "main");
  BOOST_TEST(n.sha == "a10867b14bb761a232cd80139fbd4c0d33264240");
  BOOST_TEST(n.deployment_description
             == "Mise en production de main \xe2\x80\x94 \xc3\xa9t\xc3\xa9");
  // The deployment's creator, not the status's creator nor the sender.
  BOOST_TEST(n.creator == "Codertocat");
  BOOST_TEST(n.chat_user == "codertocat");
  BOOST_TEST(n.room == "ops");
  BOOST_TEST(!n.changes.present);
  BOOST_TEST(n.changes.commits.empty());
}

BOOST_AUTO_TEST_CASE(payload_as_json_string) {
  auto n = notice_of(small_notice(
    R"(,"payload":"{\"name\":\"shop\",\"notify\":{\"room\":\"d\u00e9ploiements\",)"
    R"(\"user\":\"U024BE7LH\",\"adapter\":\"slack\"}}")"));
  BOOST_TEST(n.app == "shop");
  BOOST_TEST(n.room == "d\xc3\xa9ploiements");
  BOOST_TEST(n.chat_user == "U024BE7LH"); // no user_name: user
  auto msg = notice_error(small_notice(R"(,"payload":"[1,2]")"));
  BOOST_TEST(msg.rfind("field deployment.payload holds no JSON object", 0) == 0,
             msg);
  BOOST_TEST(notice_of(small_notice(R"(,"payload":"")")).app == "app");
}

BOOST_AUTO_TEST_CASE(fallbacks_when_fields_are_missing) {
  auto n = notice_of(small_notice(""));
  BOOST_TEST(n.repo == "octo/app");
  BOOST_TEST(n.app == "app"); // no payload, no repository.name
  BOOST_TEST(n.repo_url == "");
  BOOST_TEST(n.deployment_id == 7);
  BOOST_TEST(n.status_id == 0);
  BOOST_TEST(n.state == "pending");
  BOOST_TEST(n.description == "");
  BOOST_TEST(n.log_url == "");
  BOOST_TEST(n.environment_url == "");
  BOOST_TEST(n.task == "deploy");
  BOOST_TEST(n.deployment_description == "");
  BOOST_TEST(n.creator == "amy"); // sender.login
  BOOST_TEST(n.chat_user == "amy");
  BOOST_TEST(n.room == "");
  // repository.name when the payload names no app.
  auto named = with(small_notice(""), R"("full_name":"octo/app")",
                    R"("full_name":"octo/app","name":"App")");
  BOOST_TEST(notice_of(named).app == "App");
  // target_url when there is no log_url (null or empty counts as none).
  BOOST_TEST(notice_of(small_notice("", R"(,"target_url":"https://t")")).log_url
             == "https://t");
  BOOST_TEST(notice_of(small_notice("", R"(,"log_url":null,)"
                                        R"("target_url":"https://t")"))
               .log_url
             == "https://t");
  BOOST_TEST(notice_of(small_notice("", R"(,"log_url":"",)"
                                        R"("target_url":"https://t")"))
               .log_url
             == "https://t");
  // An empty task is a deploy.
  BOOST_TEST(notice_of(small_notice(R"(,"task":"")")).task == "deploy");
}

BOOST_AUTO_TEST_CASE(chat_user_falls_back_in_order) {
  auto user = [](const std::string& deployment_extra,
                 const std::string& sender = R"("sender":{"login":"amy"})") {
    return notice_of(with(small_notice(deployment_extra),
                          R"("sender":{"login":"amy"})", sender))
      .chat_user;
  };
  const std::string carol = R"(,"creator":{"login":"carol"})";
  BOOST_TEST(user(carol
                  + R"(,"payload":{"notify":{"user":"U1",)"
                    R"("user_name":"dana"}})")
             == "dana");
  BOOST_TEST(user(carol
                  + R"(,"payload":{"notify":{"user":"U1",)"
                    R"("user_name":""}})")
             == "U1");
  BOOST_TEST(user(carol + R"(,"payload":{"notify":{"room":"ops"}})")
             == "carol");
  BOOST_TEST(user(carol + R"(,"payload":{"notify":null})") == "carol");
  BOOST_TEST(user(R"(,"creator":null)") == "amy");
  BOOST_TEST(user(R"(,"creator":null)", R"("sender":null)") == "unknown");
  BOOST_TEST(user("", R"("x":0)") == "unknown");
  // Chat adapters with numeric ids.
  auto n = notice_of(
    small_notice(R"(,"payload":{"notify":{"user":12345,"room":678}})"));
  BOOST_TEST(n.chat_user == "12345");
  BOOST_TEST(n.room == "678");
  // Creator with no login at all falls back to the sender.
  BOOST_TEST(notice_of(small_notice(R"(,"creator":{"id":1})")).creator
             == "amy");
}

BOOST_AUTO_TEST_CASE(each_missing_required_field_is_named) {
  auto without = [](const std::string& from, const std::string& to = "") {
    return notice_error(with(deployment_status_event, from, to));
  };
  BOOST_TEST(without(R"("state": "success",)")
             == "missing field deployment_status.state");
  BOOST_TEST(without(R"("id": 326191728,)") == "missing field deployment.id");
  BOOST_TEST(without(R"("sha": "a10867b14bb761a232cd80139fbd4c0d33264240",)")
             == "missing field deployment.sha");
  BOOST_TEST(without(R"("ref": "main",)") == "missing field deployment.ref");
  BOOST_TEST(without(R"("environment": "production",
    "description": "Mise)",
                     R"("description": "Mise)")
             == "missing field deployment.environment");
  BOOST_TEST(without(R"("full_name": "Codertocat/Hello-World",)")
             == "missing field repository.full_name");
  // Whole objects missing.
  BOOST_TEST(notice_error(R"({"deployment":{"id":1}})")
             == "missing field deployment_status.state");
  BOOST_TEST(notice_error(R"({"deployment_status":{"state":"success"}})")
             == "missing field deployment.id");
  BOOST_TEST(notice_error(with(small_notice(""),
                               R"("repository":{"full_name":"octo/app"},)", ""))
             == "missing field repository.full_name");
  // An empty required string is as good as none.
  BOOST_TEST(notice_error(
               with(small_notice(""), R"("state":"pending")", R"("state":"")"))
             == "missing field deployment_status.state");
  BOOST_TEST(
    notice_error(with(small_notice(""), R"("ref":"main")", R"("ref":null)"))
    == "missing field deployment.ref");
}

BOOST_AUTO_TEST_CASE(wrong_types_are_named) {
  BOOST_TEST(notice_error(with(deployment_status_event, R"("id": 326191728,)",
                               R"("id": "326191728",)"))
             == "field deployment.id must be an integer");
  BOOST_TEST(notice_error(with(deployment_status_event, R"("id": 344110148,)",
                               R"("id": "344110148",)"))
             == "field deployment_status.id must be an integer");
  BOOST_TEST(notice_error(with(deployment_status_event,
                               R"("state": "success",)", R"("state": 1,)"))
             == "field deployment_status.state must be a string");
  BOOST_TEST(notice_error(small_notice("", R"(,"log_url":["x"])"))
             == "field deployment_status.log_url must be a string");
  BOOST_TEST(notice_error(small_notice(R"(,"task":false)"))
             == "field deployment.task must be a string");
  BOOST_TEST(notice_error(small_notice(R"(,"payload":{"name":3})"))
             == "field deployment.payload.name must be a string");
  BOOST_TEST(notice_error(small_notice(R"(,"payload":{"notify":"ops"})"))
             == "field deployment.payload.notify must be an object");
  BOOST_TEST(notice_error(small_notice(R"(,"payload":{"notify":)"
                                       R"({"room":true}})"))
             == "field deployment.payload.notify.room must be a string or "
                "an integer");
  BOOST_TEST(notice_error(small_notice(R"(,"payload":{"notify":)"
                                       R"({"user_name":1.5}})"))
             == "field deployment.payload.notify.user_name must be a string "
                "or an integer");
  BOOST_TEST(notice_error(small_notice(R"(,"payload":7)"))
             == "field deployment.payload must be an object or a string");
  BOOST_TEST(notice_error(R"({"deployment_status":"success"})")
             == "field deployment_status must be an object");
  BOOST_TEST(notice_error(with(small_notice(""), R"("full_name":"octo/app")",
                               R"("full_name":"octo/app","html_url":5)"))
             == "field repository.html_url must be a string");
}

BOOST_AUTO_TEST_CASE(malformed_json) {
  for (auto body :
       {std::string{R"({"deployment_status":)"}, std::string{"not json"},
        std::string{}, small_notice(R"(,"extra":[1,,2])")})
    BOOST_TEST(notice_error(body).rfind("malformed JSON: ", 0) == 0, body);
  BOOST_TEST(notice_error("\"x\"") == "not a JSON object");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(repository_name)

BOOST_AUTO_TEST_CASE(full_name_or_nothing) {
  // A repository hook's ping names its repository.
  BOOST_TEST(repository_full_name(
               R"({"zen":"Design for failure.","hook_id":30,)"
               R"("repository":{"id":1,"name":"app","full_name":"octo/app"},)"
               R"("sender":{"login":"octocat"}})")
             == "octo/app");
  BOOST_TEST(repository_full_name(status_event) == "Codertocat/Hello-World");
  // An organization hook's ping names none.
  BOOST_TEST(
    repository_full_name(R"({"zen":"Keep it logically awesome.","hook_id":31,)"
                         R"("organization":{"login":"octo"}})")
    == "");
  BOOST_TEST(repository_full_name(R"({"repository":null})") == "");
  BOOST_TEST(repository_full_name(R"({"repository":{"full_name":1}})") == "");
  BOOST_TEST(repository_full_name("not json") == "");
  BOOST_TEST(repository_full_name("") == "");
  BOOST_TEST(
    repository_full_name(R"({"repository":{"full_name":"\u00e9t\u00e9/app"}})")
    == "\xc3\xa9t\xc3\xa9/app");
}

// Found by fuzz_webhook: ondemand skips the fields it is not asked about
// without checking them, so a body broken there named a repository.
BOOST_AUTO_TEST_CASE(nothing_from_a_body_broken_where_it_is_not_read) {
  BOOST_TEST(repository_full_name(R"({"hook":{"url":"a":"b"},)"
                                  R"("repository":{"full_name":"octo/app"}})")
             == "");
  BOOST_TEST(repository_full_name(R"({"repository":{"full_name":"octo/app",)"
                                  R"("owner":[1 2]}})")
             == "");
  BOOST_TEST(repository_full_name(R"({"hook":{"url":"a"},)"
                                  R"("repository":{"full_name":"octo/app"}})")
             == "octo/app");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(form_encoded)

BOOST_AUTO_TEST_CASE(the_payload_field_is_decoded) {
  auto json = heaven::form_payload(
    "other=1&payload=%7B%22zen%22%3A+%22Keep+it+simple.%22%2C%22n%22%3A1%7D");
  BOOST_REQUIRE(json.has_value());
  BOOST_TEST(*json == R"({"zen": "Keep it simple.","n":1})");
}

BOOST_AUTO_TEST_CASE(no_payload_or_a_bad_escape_is_refused) {
  BOOST_TEST(!heaven::form_payload("zen=1").has_value());
  BOOST_TEST(!heaven::form_payload("").has_value());
  BOOST_TEST(!heaven::form_payload("payload=%7").has_value());
  BOOST_TEST(!heaven::form_payload("payload=%zz").has_value());
  BOOST_TEST((heaven::form_payload("payload=") == std::string{}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bounded_input)

BOOST_AUTO_TEST_CASE(a_nul_in_the_environment_is_refused_not_cut) {
  // JSON's \u0000 decodes to a NUL inside the string: heaven must neither
  // run "prod" nor keep the rest.
  BOOST_TEST(error_of(with(small_event(""), R"("environment":"staging")",
                           R"("environment":"prod\u0000x")"))
             == "deployment.environment contains a control character");
  BOOST_TEST(error_of(with(small_event(""), R"("environment":"staging")",
                           R"("environment":"prod\u001b[31m")"))
             == "deployment.environment contains a control character");
  BOOST_TEST(notice_error(with(small_notice(""), R"("environment":"staging")",
                               R"("environment":"prod\u0000")"))
             == "deployment.environment contains a control character");
}

BOOST_AUTO_TEST_CASE(an_environment_at_githubs_limit_is_taken_whole) {
  const std::string env(255, 'e');
  auto req = parsed(with(small_event(R"(,"payload":{"config":{")" + env
                                     + R"(_url":"https://e.example"}})"),
                         R"("environment":"staging")",
                         R"("environment":")" + env + "\""));
  BOOST_TEST(req.environment == env);
  BOOST_TEST(req.environment_url == "https://e.example");
  BOOST_TEST(error_of(with(small_event(""), R"("environment":"staging")",
                           R"("environment":")" + env + "e\""))
             == "deployment.environment is longer than 255 characters");
}

BOOST_AUTO_TEST_CASE(limit_checks_come_after_missing_fields) {
  // A missing field is still named as missing, whatever else is wrong.
  BOOST_TEST(error_of(R"({"deployment":{"id":1,"environment":"a\u0000"},)"
                      R"("repository":{"full_name":"o/r","clone_url":"x"}})")
             == "missing field deployment.sha");
}

BOOST_AUTO_TEST_CASE(what_heaven_reads_from_the_payload_is_checked) {
  auto msg = error_of(
    small_event(R"(,"payload":{"config":{"hosts":{"production":["web1",)"
                R"({"host":"web2","deploy_to":"/srv/\u0007"}]}}})"));
  BOOST_TEST(msg
             == "deployment.payload.config.hosts.production[1].deploy_to "
                "contains a control character");
  // Inside a payload sent as a JSON string too.
  msg = error_of(small_event(
    R"(,"payload":"{\"config\":{\"heroku_name\":\"app\\u0000\"}}")"));
  BOOST_TEST(msg
             == "deployment.payload.config.heroku_name contains a control "
                "character");
  BOOST_TEST(error_of(small_event(R"(,"payload":{"aws":{"region":"\n"}})"))
             == "deployment.payload.aws.region contains a control character");
  BOOST_TEST(error_of(small_event(R"(,"payload":{"config":{"a\rb":1}})"))
             == "a key of deployment.payload.config contains a control "
                "character");
  BOOST_TEST(error_of(small_event(R"(,"payload":{"notify":{"room":")"
                                  + std::string(256, 'r') + R"("}})"))
             == "deployment.payload.notify.room is longer than 255 "
                "characters");
  // The rest of the payload is kept as text and never read: anything goes.
  auto req = parsed(small_event(
    R"(,"payload":{"changelog":"line\nline\u0000","config":{"n":[1,2]}})"));
  BOOST_TEST(req.payload_json.find("changelog") != std::string::npos);
  // Numbers are fine where a chat adapter uses ids.
  auto n = notice_of(small_notice(R"(,"payload":{"notify":{"room":12345}})"));
  BOOST_TEST(n.room == "12345");
}

BOOST_AUTO_TEST_CASE(status_events_are_bounded) {
  std::string eleven = R"(,"branches":[)";
  for (int i = 0; i < 11; ++i)
    eleven += std::string{i ? "," : ""} + R"({"name":"b)" + std::to_string(i)
              + R"("})";
  eleven += "]";
  BOOST_TEST(status_error(small_status(eleven))
             == "branches has more than 10 entries");
  BOOST_TEST(status_of(small_status(R"(,"branches":[{"name":"a"},)"
                                    R"({"name":"b"}])"))
               .branches.size()
             == 2u);
  BOOST_TEST(status_error(small_status(R"(,"branches":[{"name":"a"},)"
                                       R"({"name":"b\u0000"}])"))
             == "branches[1].name contains a control character");
  BOOST_TEST(status_error(small_status(R"(,"branches":[{"name":")"
                                       + std::string(256, 'b') + R"("}])"))
             == "branches[0].name is longer than 255 bytes");
  BOOST_TEST(status_error(small_status(R"(,"branches":[1])"))
             == "field branches[0] must be an object");
  BOOST_TEST(status_error(with(small_status(""), R"("state":"success")",
                               R"("state":"success\n")"))
             == "state contains a control character");
  BOOST_TEST(status_error(small_status(R"(,"sender":{"login":")"
                                       + std::string(40, 's') + R"("})"))
             == "sender.login is longer than 39 characters");
}

BOOST_AUTO_TEST_CASE(deployment_status_fields_are_bounded) {
  BOOST_TEST(notice_error(small_notice("", R"(,"description":")"
                                             + std::string(141, 'd') + "\""))
             == "deployment_status.description is longer than 140 "
                "characters");
  // 140 characters of several bytes each are within GitHub's limit.
  std::string accents;
  for (int i = 0; i < 140; ++i)
    accents += "é";
  BOOST_TEST(notice_of(small_notice("", R"(,"description":")" + accents + "\""))
               .description
             == accents);
  BOOST_TEST(notice_error(small_notice("", R"(,"log_url":"https://x/\u0000")"))
             == "deployment_status.log_url contains a control character");
  BOOST_TEST(notice_error(with(small_notice(""), R"("full_name":"octo/app")",
                               R"("full_name":"octo/app/x")"))
             == "repository.full_name is not a GitHub repository name "
                "(letters, digits, '.', '-' and '_')");
}

BOOST_AUTO_TEST_CASE(deep_nesting_in_the_config_is_walked_to_the_bottom) {
  // 1000 levels (simdjson's limit is 1024): walked, and a NUL at the
  // bottom is found and named.
  const std::string open(1000, '['), close(1000, ']');
  parsed(small_event(R"(,"payload":{"config":{"deep":)" + open + R"("x")"
                     + close + "}}"));
  auto msg = error_of(small_event(R"(,"payload":{"config":{"deep":)" + open
                                  + R"("\u0000")" + close + "}}"));
  BOOST_TEST(msg.rfind("deployment.payload.config.deep[0][0][0]", 0) == 0u,
             msg.substr(0, 80));
  BOOST_TEST(msg.find("[0] contains a control character") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_lone_surrogate_is_malformed_json) {
  BOOST_TEST(error_of(with(small_event(""), R"("environment":"staging")",
                           R"("environment":"x\ud800")"))
               .rfind("malformed JSON: ", 0)
             == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
