// Tests for webhook signature checks and deployment event parsing.
#include <boost/test/unit_test.hpp>

#include <string>
#include <variant>

#include "actors/webhook.hpp"

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
  BOOST_TEST(!signature_valid(secret, body, "sha256=" + hex.substr(0, 63)
                                              + "g"));
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
  BOOST_TEST(error_of(event(R"("id":1,)" + sha + R"(,"environment":"e")",
                            repo))
             == "missing field deployment.ref");
  BOOST_TEST(error_of(event(R"("id":1,)" + sha + R"(,"ref":"m")", repo))
             == "missing field deployment.environment");
  const std::string dep
    = R"("id":1,)" + sha + R"(,"ref":"m","environment":"e")";
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
  BOOST_TEST(check_json_object(R"({"a":1} {"b":2})").rfind("malformed JSON: ",
                                                            0)
             == 0);
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
