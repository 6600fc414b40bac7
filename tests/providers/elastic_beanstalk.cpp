// The ELASTIC_BEANSTALK provider against stand-ins for GitHub, S3 and
// Elastic Beanstalk. The AWS stand-ins check the SigV4 signature of every
// request as AWS would (from the request as received) and refuse the ones
// that don't match. In a virtual world (tests/support): the stand-ins behind
// the fake HTTP client, polls, retries and cancels on virtual time; one
// deployment end to end runs over real sockets through the real http_client
// actor.
#include "providers/elastic_beanstalk.hpp"
#include "tests/support/logger.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "actors/http_client.hpp"
#include "base/payload_config.hpp"
#include "base/sigv4.hpp"
#include "base/text.hpp"
#include "tests/support/aws_stand_in.hpp"
#include "tests/support/virtual_world.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;

namespace {

constexpr auto sha = "0123456789abcdef0123456789abcdef01234567";
constexpr auto access_key = "AKIDHEAVENTEST000001";
constexpr auto secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY01";
constexpr auto github_token = "ghp_heaven_github_token_0001";
constexpr auto zip_token = "ZIPBALLTOKEN_abcdef0123456789";
constexpr auto env_name = "octo-app-prod";
constexpr auto env_id = "e-abcdef1234";

/// A small binary "zip": NUL and high bytes must arrive unchanged.
const char zip_raw[] = "PK\x03\x04heaven\0zip\xff\x80\x01 end";
const std::string zip_bytes(zip_raw, sizeof(zip_raw) - 1);

/// What the AWS stand-ins know and what they saw (guarded by `mx`).
struct aws_world {
  std::mutex mx;
  std::string region = "us-east-1";
  bool bucket_exists = true;
  std::vector<std::string> rejected;
  std::map<std::string, int> calls;
  /// The label UpdateEnvironment asked for.
  std::string label;
  /// DescribeEnvironments calls so far.
  int polls = 0;
  /// The poll at which the environment is done.
  int ready_after = 3;
  std::string final_status = "Ready";
  std::string final_health = "Green";
  /// "" → the label UpdateEnvironment asked for.
  std::string final_version;
  std::vector<eb_event> events;
  /// Runs first; an answer replaces the normal one. (action, nth call)
  std::function<std::optional<stub_response>(const std::string&, int)> eb_hook;
  /// (method, target, nth call of that method and target)
  std::function<std::optional<stub_response>(const recorded_request&, int)>
    s3_hook;
};

/// The environment under test (or an older one of its name, `id`), as the
/// Beanstalk stand-in shows it.
eb_environment environment(const std::string& id, const std::string& status,
                           const std::string& health,
                           const std::string& version) {
  return {env_name,
          id,
          "octo-app",
          version,
          status,
          health,
          "octo-app-prod.elasticbeanstalk.com"};
}

/// What both fixtures share: the scripted GitHub, S3 and Elastic Beanstalk
/// (at base URLs the fixture sets; the AWS ones check every signature), the
/// job, what the provider told its deployment and what heaven logged.
struct eb_common {
  /// With the log context, to see which deployment a line is about.
  captured_log log{5000, true};
  std::shared_ptr<aws_world> world = std::make_shared<aws_world>();
  std::shared_ptr<record> rec = std::make_shared<record>();
  provider_actor provider;
  std::chrono::system_clock::time_point base = std::chrono::system_clock::now()
                                               + 1h;
  std::string github_base;
  std::string s3_base;
  std::string eb_base;

  eb_common() {
    world->events = {
      {1, event_date(1), "INFO", "Environment update is starting."},
      {2, event_date(2), "INFO", "Deploying new version to instance(s)."},
      {2, event_date(2), "WARN", "Instance i-1 is slow to respond."},
      {3, event_date(3), "INFO", "Environment update completed successfully."},
    };
  }

  std::string event_date(int second) const {
    return aws_date(base + std::chrono::seconds(second));
  }

  std::string zip_path() const {
    return "/codeload/octo/app/legacy.zip/" + std::string{sha};
  }

  std::string zip_location() const {
    return github_base + zip_path().substr(1) + "?token=" + zip_token;
  }

  std::string bucket() const {
    return "heaven-elasticbeanstalk-builds-" + world->region;
  }

  /// Points heaven at the stand-ins (virtual hosts or real stubs), which
  /// answer as `world` says.
  template <class Host>
  void serve(Host& github, Host& s3, Host& eb) {
    github_base = github.base_url();
    s3_base = s3.base_url();
    eb_base = eb.base_url();
    github.respond_with(
      [this](const recorded_request& r) { return answer_github(r); });
    s3.respond_with([this](const recorded_request& r) { return answer_s3(r); });
    eb.respond_with([this](const recorded_request& r) { return answer_eb(r); });
  }

  stub_response answer_github(const recorded_request& r) {
    if (r.method == "GET"
        && r.target == "/repos/octo/app/zipball/" + std::string{sha})
      return stub_response{302, {{"Location", zip_location()}}, ""};
    if (r.method == "GET" && r.target == zip_path() + "?token=" + zip_token)
      return stub_response{
        200, {{"Content-Type", "application/zip"}}, zip_bytes};
    return stub_response{404, {}, R"({"message":"Not Found"})"};
  }

  /// Refuses requests whose signature does not hold, as AWS would.
  std::optional<stub_response> refusal(const recorded_request& r,
                                       const std::string& service) {
    std::lock_guard<std::mutex> guard{world->mx};
    return refuse_bad_signature(
      r, service, {access_key, secret_key, world->region}, world->rejected);
  }

  stub_response answer_s3(const recorded_request& r) {
    if (auto no = refusal(r, "s3"))
      return *no;
    int nth = 0;
    std::function<std::optional<stub_response>(const recorded_request&, int)>
      hook;
    {
      std::lock_guard<std::mutex> guard{world->mx};
      nth = ++world->calls[r.method + " " + r.target];
      hook = world->s3_hook;
    }
    if (hook)
      if (auto res = hook(r, nth))
        return *res;
    std::lock_guard<std::mutex> guard{world->mx};
    auto bucket_path = "/" + bucket() + "/";
    if (r.target == bucket_path && r.method == "HEAD")
      return xml(world->bucket_exists ? 200 : 404, "");
    if (r.target == bucket_path && r.method == "PUT") {
      world->bucket_exists = true;
      return stub_response{200, {{"Location", "/" + bucket()}}, ""};
    }
    if (r.method == "PUT" && r.target.rfind(bucket_path, 0) == 0
        && world->bucket_exists)
      return stub_response{200, {{"ETag", "\"abc\""}}, ""};
    return s3_error(400, "InvalidRequest", "unexpected " + r.target);
  }

  stub_response answer_eb(const recorded_request& r) {
    if (auto no = refusal(r, "elasticbeanstalk"))
      return *no;
    auto form = parse_form(r.body);
    auto action = form["Action"];
    int nth = 0;
    std::function<std::optional<stub_response>(const std::string&, int)> hook;
    {
      std::lock_guard<std::mutex> guard{world->mx};
      nth = ++world->calls[action];
      hook = world->eb_hook;
    }
    if (hook)
      if (auto res = hook(action, nth))
        return *res;
    std::lock_guard<std::mutex> guard{world->mx};
    auto& w = *world;
    if (action == "CreateApplicationVersion")
      return eb_answer(action, "<ApplicationVersion><VersionLabel>"
                                 + form["VersionLabel"]
                                 + "</VersionLabel></ApplicationVersion>");
    if (action == "UpdateEnvironment") {
      w.label = form["VersionLabel"];
      return eb_answer(action, environment_fields(environment(
                                 env_id, "Updating", "Grey", w.label)));
    }
    if (action == "DescribeEnvironments") {
      ++w.polls;
      bool done = w.polls >= w.ready_after;
      auto version = !done                     ? "previous-version"
                     : w.final_version.empty() ? w.label
                                               : w.final_version;
      // An older, terminated environment of the same name comes first, as
      // AWS lists recently deleted ones too.
      return eb_answer(
        action, "<Environments>"
                  + environment_member(environment("e-gone00000", "Terminated",
                                                   "Grey", "ancient-version"))
                  + environment_member(
                    environment(env_id, done ? w.final_status : "Updating",
                                done ? w.final_health : "Grey", version))
                  + "</Environments>");
    }
    if (action == "DescribeEvents")
      return eb_answer(action, events_xml(w.events, w.polls, form["StartTime"],
                                          "octo-app", env_name));
    return eb_error(400, "InvalidAction", "unknown " + action);
  }

  beanstalk_config config_with(http_client_actor http) const {
    beanstalk_config c;
    c.http = std::move(http);
    c.s3_endpoint = s3_base + "{bucket}/";
    c.beanstalk_endpoint = eb_base;
    c.access_key_id = access_key;
    c.secret_access_key = secret_key;
    c.github_api = github_base;
    c.github_token = github_token;
    c.poll_interval_ms = 20;
    c.attempts = 3;
    c.first_backoff_ms = 10;
    c.jitter = 0;
    return c;
  }

  provider_job job(const std::string& app_name = "octo-app",
                   const std::string& region = "") const {
    provider_job j;
    j.id = 42;
    j.request.github_id = 7;
    j.request.repo = "octo/app";
    j.request.sha = sha;
    j.request.ref = "main";
    j.request.environment = env_name;
    j.request.task = "deploy";
    j.request.actor = "hubot-user";
    j.request.app = "app";
    j.request.provider = "elastic_beanstalk";
    std::string payload = R"({"config":{"provider":"elastic_beanstalk")";
    if (!app_name.empty())
      payload += R"(,"app_name":")" + app_name + "\"";
    payload += "}";
    if (!region.empty())
      payload += R"(,"aws":{"region":")" + region + "\"}";
    j.request.payload_json = payload + "}";
    return j;
  }

  bool has_line(const std::string& text) {
    std::lock_guard<std::mutex> guard{rec->mx};
    return rec->has_line_locked(text);
  }

  /// The forms of `requests` (to Beanstalk), in order.
  static std::vector<std::map<std::string, std::string>>
  forms_of(const std::vector<recorded_request>& requests) {
    std::vector<std::map<std::string, std::string>> out;
    for (auto& r : requests)
      out.push_back(parse_form(r.body));
    return out;
  }

  /// No request was refused for its signature; no secret reached any log.
  void check_clean() {
    {
      std::lock_guard<std::mutex> guard{world->mx};
      for (auto& why : world->rejected)
        BOOST_ERROR("rejected: " << why);
    }
    std::vector<std::string> texts = log.lines();
    {
      std::lock_guard<std::mutex> guard{rec->mx};
      for (auto& line : rec->lines)
        texts.push_back(line.text);
      for (auto& result : rec->results)
        texts.push_back(result.description);
    }
    BOOST_TEST(!texts.empty());
    for (auto& text : texts)
      for (std::string secret :
           {std::string{secret_key}, std::string{zip_token},
            std::string{github_token}, std::string{"token="},
            std::string{"codeload"}, std::string{"AWS4-HMAC-SHA256"},
            std::string{"Signature="}})
        BOOST_TEST(text.find(secret) == std::string::npos,
                   "'" << secret << "' leaked into: " << text);
  }
};

/// The provider in a virtual world (tests/support): the services behind the
/// fake HTTP client, polls and retries on virtual time.
struct eb_fixture : eb_common, virtual_world {
  fake_host& github = net->host("http://github.test/");
  fake_host& s3 = net->host("http://s3.test/");
  fake_host& eb = net->host("http://beanstalk.test/");
  deployment_actor sink = keep(sys.spawn(deployment_recorder, rec));

  eb_fixture() {
    serve(github, s3, eb);
  }

  beanstalk_config config() const {
    return config_with(http);
  }

  void start(provider_job j, beanstalk_config c) {
    auto factory = elastic_beanstalk_provider(std::move(c));
    j.config = read_payload_config(j.request);
    provider = keep(factory(sys, std::move(j), sink).actor);
  }

  void start(provider_job j) {
    start(std::move(j), config());
  }

  /// Runs until the provider reports; its one outcome.
  provider_outcome outcome() {
    BOOST_REQUIRE_MESSAGE(run_until([&] { return !rec->results.empty(); }),
                          "the provider never reported a result");
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  /// Runs one deployment and returns its outcome.
  provider_outcome run(provider_job j) {
    start(std::move(j));
    return outcome();
  }
  using virtual_world::run;

  /// The Beanstalk requests' forms, in order.
  std::vector<std::map<std::string, std::string>> eb_forms() const {
    return forms_of(eb.requests());
  }
};

/// The provider through the real http_client actor to stand-ins on real
/// sockets: a deployment end to end.
struct real_eb_fixture : eb_common {
  http_stub github;
  http_stub s3;
  http_stub eb;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor client = sys.spawn(http_client);
  deployment_actor sink = sys.spawn(deployment_recorder, rec);

  real_eb_fixture() {
    serve(github, s3, eb);
  }

  ~real_eb_fixture() {
    if (provider)
      caf::anon_send_exit(provider, caf::exit_reason::kill);
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  }

  /// Runs one deployment and returns its outcome.
  provider_outcome run(provider_job j) {
    auto factory = elastic_beanstalk_provider(config_with(client));
    j.config = read_payload_config(j.request);
    provider = factory(sys, std::move(j), sink).actor;
    BOOST_REQUIRE_MESSAGE(rec->wait([&] { return !rec->results.empty(); }, 30s),
                          "the provider never reported a result");
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }
};

/// The form body heaven must send for CreateApplicationVersion.
std::string
create_version_body(const std::string& app_enc, const std::string& label,
                    const std::string& bucket, const std::string& key_enc) {
  return "Action=CreateApplicationVersion&Version=2010-12-01&ApplicationName="
         + app_enc + "&VersionLabel=" + label
         + "&Description=octo%2Fapp%20main%20%280123456%29%20deployed%20by%20"
           "hubot-user%20with%20heaven"
         + "&SourceBundle.S3Bucket=" + bucket + "&SourceBundle.S3Key=" + key_enc
         + "&AutoCreateApplication=false";
}

constexpr auto form_type = "application/x-www-form-urlencoded; charset=utf-8";

} // namespace

BOOST_AUTO_TEST_SUITE(elastic_beanstalk)

BOOST_FIXTURE_TEST_CASE(deploys_and_follows_until_ready, real_eb_fixture) {
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::success);
  auto label = world->label;
  BOOST_TEST(std::regex_match(label, std::regex{"0123456789ab-\\d{14}-42"}),
             label);
  BOOST_TEST(result.description
             == "Elastic Beanstalk environment octo-app-prod is Ready on "
                  + label);
  // GitHub: the zipball link with the token, then the link without it.
  auto gh = github.requests();
  BOOST_REQUIRE_EQUAL(gh.size(), 2u);
  BOOST_TEST(gh[0].method == "GET");
  BOOST_TEST(gh[0].target == "/repos/octo/app/zipball/" + std::string{sha});
  BOOST_TEST(gh[0].header("authorization")
             == "token " + std::string{github_token});
  BOOST_TEST(gh[0].header("accept") == "application/vnd.github+json");
  BOOST_TEST(gh[0].header("user-agent") == "heaven");
  BOOST_TEST(gh[1].method == "GET");
  BOOST_TEST(gh[1].target == zip_path() + "?token=" + zip_token);
  BOOST_TEST(gh[1].header("authorization") == "");
  // S3: the bucket is there (no CreateBucket), then the zip.
  auto s3r = s3.requests();
  BOOST_REQUIRE_EQUAL(s3r.size(), 2u);
  BOOST_TEST(s3r[0].method == "HEAD");
  BOOST_TEST(s3r[0].target == "/heaven-elasticbeanstalk-builds-us-east-1/");
  BOOST_TEST(s3r[0].header("x-amz-content-sha256") == sha256_hex(""));
  BOOST_TEST(s3r[1].method == "PUT");
  BOOST_TEST(s3r[1].target
             == "/heaven-elasticbeanstalk-builds-us-east-1/octo-app-"
                  + std::string{sha} + ".zip");
  BOOST_TEST(s3r[1].header("content-type") == "application/zip");
  BOOST_TEST(s3r[1].header("x-amz-content-sha256") == sha256_hex(zip_bytes));
  BOOST_TEST(s3r[1].body == zip_bytes);
  // Elastic Beanstalk: version, update, then three polls of two calls.
  auto ebr = eb.requests();
  BOOST_REQUIRE_EQUAL(ebr.size(), 8u);
  for (auto& r : ebr) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/");
    BOOST_TEST(r.header("content-type") == form_type);
    BOOST_TEST(!r.header("x-amz-date").empty());
    BOOST_TEST(r.header("authorization").find("/us-east-1/elasticbeanstalk/")
               != std::string::npos);
  }
  BOOST_TEST(ebr[0].body
             == create_version_body("octo-app", label,
                                    "heaven-elasticbeanstalk-builds-us-east-1",
                                    "octo-app-" + std::string{sha} + ".zip"));
  BOOST_TEST(ebr[1].body
             == "Action=UpdateEnvironment&Version=2010-12-01"
                "&ApplicationName=octo-app&EnvironmentName=octo-app-prod"
                "&VersionLabel="
                  + label);
  std::vector<std::string> start_times;
  for (std::size_t i = 2; i < ebr.size(); i += 2) {
    BOOST_TEST(ebr[i].body
               == "Action=DescribeEnvironments&Version=2010-12-01"
                  "&ApplicationName=octo-app"
                  "&EnvironmentNames.member.1=octo-app-prod");
    auto form = parse_form(ebr[i + 1].body);
    start_times.push_back(form["StartTime"]);
    BOOST_TEST(ebr[i + 1].body
               == "Action=DescribeEvents&Version=2010-12-01"
                  "&ApplicationName=octo-app&EnvironmentName=octo-app-prod"
                  "&StartTime="
                    + percent_encode(form["StartTime"]));
  }
  BOOST_REQUIRE_EQUAL(start_times.size(), 3u);
  BOOST_TEST(
    std::regex_match(start_times[0],
                     std::regex{"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"}),
    start_times[0]);
  BOOST_TEST(start_times[1] == event_date(1));
  BOOST_TEST(start_times[2] == event_date(2));
  // Each event once, oldest first, as it came.
  std::vector<std::string> expected_events{
    event_date(1) + " INFO Environment update is starting.",
    event_date(2) + " INFO Deploying new version to instance(s).",
    event_date(2) + " WARN Instance i-1 is slow to respond.",
    event_date(3) + " INFO Environment update completed successfully.",
  };
  BOOST_TEST(rec->texts(stream::out) == expected_events,
             boost::test_tools::per_element());
  BOOST_TEST(has_line("Downloading the zipball of octo/app at 0123456"));
  BOOST_TEST(
    has_line("Downloaded " + std::to_string(zip_bytes.size()) + " bytes"));
  BOOST_TEST(has_line(
    "Follow it in the AWS console: https://us-east-1.console.aws.amazon.com"
    "/elasticbeanstalk/home?region=us-east-1#/environments"));
  BOOST_TEST(has_line(
    "The environment answers at http://octo-app-prod.elasticbeanstalk.com"));
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(creates_missing_bucket_in_us_east_1, eb_fixture) {
  world->bucket_exists = false;
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::success);
  auto s3r = s3.requests();
  BOOST_REQUIRE_EQUAL(s3r.size(), 3u);
  BOOST_TEST(s3r[0].method == "HEAD");
  BOOST_TEST(s3r[1].method == "PUT");
  BOOST_TEST(s3r[1].target == "/heaven-elasticbeanstalk-builds-us-east-1/");
  // us-east-1 is the one region CreateBucket takes no configuration for.
  BOOST_TEST(s3r[1].body == "");
  BOOST_TEST(s3r[1].header("x-amz-content-sha256") == sha256_hex(""));
  BOOST_TEST(s3r[2].method == "PUT");
  BOOST_TEST(s3r[2].body == zip_bytes);
  BOOST_TEST(has_line("Creating S3 bucket "
                      "heaven-elasticbeanstalk-builds-us-east-1 in us-east-1"));
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(creates_missing_bucket_elsewhere_with_constraint,
                        eb_fixture) {
  world->region = "eu-west-1";
  world->bucket_exists = false;
  // An application name that needs escaping, in the key and in the forms.
  auto result = run(job("Octo App", "eu-west-1"));
  BOOST_TEST(result.state == deploy_state::success);
  auto bucket = std::string{"heaven-elasticbeanstalk-builds-eu-west-1"};
  auto s3r = s3.requests();
  BOOST_REQUIRE_EQUAL(s3r.size(), 3u);
  BOOST_TEST(s3r[1].method == "PUT");
  BOOST_TEST(s3r[1].target == "/" + bucket + "/");
  BOOST_TEST(s3r[1].body
             == "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/"
                "doc/2006-03-01/\"><LocationConstraint>eu-west-1"
                "</LocationConstraint></CreateBucketConfiguration>");
  BOOST_TEST(s3r[1].header("authorization").find("/eu-west-1/s3/")
             != std::string::npos);
  BOOST_TEST(s3r[2].target
             == "/" + bucket + "/Octo%20App-" + std::string{sha} + ".zip");
  auto ebr = eb.requests();
  BOOST_REQUIRE_GE(ebr.size(), 2u);
  BOOST_TEST(ebr[0].body
             == create_version_body("Octo%20App", world->label, bucket,
                                    "Octo%20App-" + std::string{sha} + ".zip"));
  BOOST_TEST(has_line(
    "Follow it in the AWS console: https://eu-west-1.console.aws.amazon.com"
    "/elasticbeanstalk/home?region=eu-west-1#/environments"));
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(ready_on_another_version_is_a_failure, eb_fixture) {
  world->final_version = "someone-elses-version";
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "Elastic Beanstalk environment octo-app-prod is Ready on "
                "someone-elses-version, not on "
                  + world->label + " (the update did not stick)");
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(red_health_is_a_failure, eb_fixture) {
  world->final_health = "Red";
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "Elastic Beanstalk environment octo-app-prod is Ready on "
                  + world->label + " but its health is Red");
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(terminated_environment_is_a_failure, eb_fixture) {
  world->final_status = "Terminating";
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description
             == "Elastic Beanstalk environment octo-app-prod is Terminating");
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(refused_credentials_are_not_retried, eb_fixture) {
  world->eb_hook = [](const std::string& action,
                      int) -> std::optional<stub_response> {
    if (action == "CreateApplicationVersion")
      return eb_error(403, "InvalidClientTokenId",
                      "The security token included in the request is "
                      "invalid.");
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "CreateApplicationVersion failed: AWS refused the "
                "credentials: InvalidClientTokenId: The security token "
                "included in the request is invalid.");
  BOOST_TEST(eb.requests().size() == 1u);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(unknown_application_reports_aws_message, eb_fixture) {
  world->eb_hook = [](const std::string& action,
                      int) -> std::optional<stub_response> {
    if (action == "CreateApplicationVersion")
      return eb_error(400, "InvalidParameterValue",
                      "No Application named 'octo-app' found.");
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "CreateApplicationVersion failed: InvalidParameterValue: No "
                "Application named 'octo-app' found.");
  BOOST_TEST(eb.requests().size() == 1u);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(throttling_and_503_are_retried, eb_fixture) {
  world->eb_hook = [](const std::string& action,
                      int nth) -> std::optional<stub_response> {
    if (action == "UpdateEnvironment" && nth == 1)
      return eb_error(400, "Throttling", "Rate exceeded");
    if (action == "UpdateEnvironment" && nth == 2)
      return stub_response{503,
                           {{"Content-Type", "text/html"}},
                           "<html>Service Unavailable</html>"};
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::success);
  auto forms = eb_forms();
  std::vector<std::string> updates;
  for (auto& r : eb.requests())
    if (parse_form(r.body)["Action"] == "UpdateEnvironment")
      updates.push_back(r.body);
  BOOST_REQUIRE_EQUAL(updates.size(), 3u);
  // 10 ms after the first, 20 ms after the second.
  std::vector<int64_t> at;
  for (auto* c : eb.calls())
    if (parse_form(c->received.body)["Action"] == "UpdateEnvironment")
      at.push_back(c->at.count());
  BOOST_TEST(at[1] - at[0] == 10);
  BOOST_TEST(at[2] - at[1] == 20);
  BOOST_TEST(updates[0] == updates[1]);
  BOOST_TEST(updates[1] == updates[2]);
  BOOST_TEST(forms.at(1)["Action"] == "UpdateEnvironment");
  BOOST_TEST(forms.at(2)["Action"] == "UpdateEnvironment");
  BOOST_TEST(forms.at(3)["Action"] == "UpdateEnvironment");
  BOOST_TEST(forms.at(4)["Action"] == "DescribeEnvironments");
  BOOST_TEST(has_line("UpdateEnvironment failed (Throttling: Rate exceeded), "
                      "attempt 1 of 3; trying again in 10 ms"));
  BOOST_TEST(has_line("UpdateEnvironment failed (HTTP 503), attempt 2 of 3; "
                      "trying again in 20 ms"));
  // heaven's lines carry the deployment (the JSON log's fields), in the
  // answers' handlers as well.
  std::string about = " [deployment=42 repository=octo/app "
                      "environment=octo-app-prod]";
  BOOST_TEST(log.exactly("warning deployment 42: UpdateEnvironment failed "
                         "(HTTP 503), attempt 2 of 3; trying again in 20 ms"
                         + about)
               == 1u,
             log.all());
  BOOST_TEST(log.containing("deployment 42") >= 3u);
  BOOST_TEST(log.containing("deployment 42") == log.containing(about),
             log.all());
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(server_errors_give_up_after_attempts, eb_fixture) {
  world->s3_hook = [](const recorded_request& r,
                      int) -> std::optional<stub_response> {
    if (r.method == "PUT")
      return s3_error(500, "InternalError",
                      "We encountered an internal error. Please try again.");
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "PutObject failed after 3 attempts: InternalError: We "
                "encountered an internal error. Please try again.");
  auto s3r = s3.requests();
  BOOST_REQUIRE_EQUAL(s3r.size(), 4u);
  BOOST_TEST(s3r[0].method == "HEAD");
  for (std::size_t i = 1; i < 4; ++i) {
    BOOST_TEST(s3r[i].method == "PUT");
    BOOST_TEST(s3r[i].body == zip_bytes);
  }
  BOOST_TEST(eb.requests().empty());
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(network_failures_are_retried_then_reported,
                        eb_fixture) {
  auto c = config();
  // Nothing answers there: every attempt is a network failure.
  c.beanstalk_endpoint = "http://gone.test/";
  start(job(), c);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description.rfind(
               "CreateApplicationVersion failed after 3 attempts: ", 0)
               == 0u,
             result.description);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(head_bucket_forbidden_and_moved, eb_fixture) {
  world->s3_hook = [](const recorded_request& r,
                      int) -> std::optional<stub_response> {
    if (r.method == "HEAD")
      return stub_response{403, {}, ""};
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "HeadBucket failed: S3 bucket "
                "heaven-elasticbeanstalk-builds-us-east-1 refused these "
                "credentials (403): the access key may be wrong, or the "
                "bucket belongs to another account");
  BOOST_TEST(s3.requests().size() == 1u);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(head_bucket_in_another_region, eb_fixture) {
  world->s3_hook = [](const recorded_request& r,
                      int) -> std::optional<stub_response> {
    if (r.method == "HEAD")
      return stub_response{301, {{"x-amz-bucket-region", "eu-central-1"}}, ""};
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "HeadBucket failed: S3 bucket "
                "heaven-elasticbeanstalk-builds-us-east-1 is in another "
                "region (eu-central-1), not us-east-1");
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(create_bucket_already_owned_is_fine, eb_fixture) {
  world->bucket_exists = false;
  world->s3_hook = [this](const recorded_request& r,
                          int) -> std::optional<stub_response> {
    if (r.method == "PUT" && r.target == "/" + bucket() + "/") {
      std::lock_guard<std::mutex> guard{world->mx};
      world->bucket_exists = true;
      return s3_error(409, "BucketAlreadyOwnedByYou",
                      "Your previous request to create the named bucket "
                      "succeeded and you already own it.");
    }
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::success);
  BOOST_TEST(s3.requests().size() == 3u);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(missing_app_name_makes_no_request, eb_fixture) {
  auto result = run(job(""));
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "payload.config.app_name is missing: heaven doesn't know "
                "which Elastic Beanstalk application to deploy");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(s3.requests().empty());
  BOOST_TEST(eb.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(missing_credentials_make_no_request, eb_fixture) {
  auto c = config();
  c.secret_access_key.clear();
  start(job(), c);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "BEANSTALK_SECRET_ACCESS_KEY is not set: heaven has no AWS "
                "credentials for Elastic Beanstalk");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(s3.requests().empty());
  BOOST_TEST(eb.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(missing_both_credentials_names_both, eb_fixture) {
  auto c = config();
  c.access_key_id.clear();
  c.secret_access_key.clear();
  start(job(), c);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "BEANSTALK_ACCESS_KEY_ID and BEANSTALK_SECRET_ACCESS_KEY are "
                "not set: heaven has no AWS credentials for Elastic "
                "Beanstalk");
  BOOST_TEST(github.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(bad_region_makes_no_request, eb_fixture) {
  auto result = run(job("octo-app", "evil.example.com/x"));
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "payload.aws.region \"evil.example.com/x\" is not an AWS "
                "region");
  BOOST_TEST(github.requests().empty());
  BOOST_TEST(s3.requests().empty());
  BOOST_TEST(eb.requests().empty());
}

BOOST_FIXTURE_TEST_CASE(missing_zipball_is_an_error, eb_fixture) {
  github.respond_with([](const recorded_request&) {
    return stub_response{404, {}, R"({"message":"Not Found"})"};
  });
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "GitHub has no zipball of octo/app at " + std::string{sha}
                  + " (can GITHUB_TOKEN read it?)");
  BOOST_TEST(github.requests().size() == 1u);
  BOOST_TEST(s3.requests().empty());
  BOOST_TEST(eb.requests().empty());
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(cancel_while_polling_stops_everything, eb_fixture) {
  world->ready_after = 1000000;
  // The second poll cancels the deployment; its answer reaches the provider
  // after the cancel: whatever comes after would be a bug.
  world->eb_hook = [this](const std::string& action,
                          int nth) -> std::optional<stub_response> {
    if (action == "DescribeEnvironments" && nth == 2)
      caf::anon_send(provider, cancel_atom::value);
    return std::nullopt;
  };
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_TEST(has_line("Stopped following Elastic Beanstalk environment "
                      "octo-app-prod; AWS may still finish the update"));
  // Version, update, poll 1 (2 calls), poll 2's DescribeEnvironments.
  BOOST_TEST(eb.requests().size() == 5u);
  // Many poll intervals later, and for ever after, still nothing new.
  advance(10 * 20ms);
  BOOST_TEST(eb.requests().size() == 5u);
  settle();
  BOOST_TEST(eb.requests().size() == 5u);
  BOOST_TEST(rec->results.size() == 1u);
  check_clean();
}

BOOST_FIXTURE_TEST_CASE(cancel_between_polls_stops_polling, eb_fixture) {
  world->ready_after = 1000000;
  start(job());
  BOOST_REQUIRE(run_until([&] { return eb.requests().size() >= 6u; }));
  // The polls come every 20 ms.
  std::vector<int64_t> polls;
  for (auto* c : eb.calls())
    if (parse_form(c->received.body)["Action"] == "DescribeEnvironments")
      polls.push_back(c->at.count());
  BOOST_REQUIRE_EQUAL(polls.size(), 2u);
  BOOST_TEST(polls[1] - polls[0] == 20);
  auto down = watch(provider);
  caf::anon_send(provider, cancel_atom::value);
  auto result = outcome();
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description == "cancelled");
  BOOST_REQUIRE(run_until([&] { return *down; }));
  // Nothing was in flight, and the count stays put for ever after.
  BOOST_TEST(net->waiting().empty());
  auto count = eb.requests().size();
  settle();
  BOOST_TEST(eb.requests().size() == count);
  BOOST_TEST(has_line("Stopped following Elastic Beanstalk environment "
                      "octo-app-prod; AWS may still finish the update"));
  check_clean();
}

BOOST_AUTO_TEST_SUITE_END()
