// End-to-end tests of the HTTP API providers: the real `heaven serve` binary
// deploys to local stand-ins for GitHub, Heroku's Platform API and build
// output host, S3 and Elastic Beanstalk, over real sockets. The stand-ins
// answer the way the real APIs do (302 archive links, Heroku's build JSON,
// AWS's XML; the AWS ones refuse a request whose SigV4 signature does not
// hold), and every request heaven made is checked afterwards, as is every
// status GitHub was sent.
//
// The repository's clone_url names no repository at all: API providers
// take GitHub's archive of the sha, so a checkout would fail the test.

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/log_book.hpp"
#include "base/sigv4.hpp"
#include "base/text.hpp"
#include "tests/support/aws_stand_in.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr auto sha = "5e1f0c3a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
constexpr auto no_repo = "file:///nonexistent/repo.git";
constexpr auto heroku_key = "HRKU-e2eSECRETapikey-0123456789abcdef";
constexpr auto aws_key_id = "AKIDE2EHEAVEN0000001";
constexpr auto aws_secret = "e2eSECRETaws/secret+key/0123456789abcdefgh";
constexpr auto region = "eu-west-1";
constexpr auto bucket = "heaven-elasticbeanstalk-builds-eu-west-1";
constexpr auto eb_app = "octo-app";
// The tokens of the signed links the stand-ins hand out.
constexpr auto tarball_token = "TARBALLe2eLINKTOKEN";
constexpr auto zipball_token = "ZIPBALLe2eLINKTOKEN";
constexpr auto stream_token = "STREAMe2eLINKTOKEN";
constexpr auto build_id = "01234567-89ab-cdef-0123-456789abcdef";

/// A small binary "zip": NUL and high bytes must reach S3 unchanged.
const std::string zip_bytes{"PK\x03\x04heaven\0e2e\xff\x80 zip", 20};

const std::string json_type = "application/json";

// ---- the Heroku stand-ins --------------------------------------------------

/// What the Heroku stand-ins say and saw.
struct heroku_world {
  std::mutex mx;
  /// How the build ends: "succeeded", "failed", or "pending" for a build
  /// that never ends (its output stream stays open until heaven hangs up).
  std::string outcome = "succeeded";
  /// The build's output, in the pieces the stream sends.
  std::vector<std::string> output;
  /// Polls answered since the whole output was sent (-1: not yet sent).
  int polls_after_output = -1;
  /// Polls after the output that still say "pending".
  int pending_polls_after_output = 2;
  /// Set (after `polls_after_output`) when heaven hung up on an endless
  /// build's output.
  std::atomic<bool> stream_closed{false};
  std::atomic<bool> stopping{false};
};

/// A Heroku build as the Platform API describes it.
json heroku_build(const std::string& status, const std::string& source,
                  const std::string& stream_url) {
  bool done = status != "pending";
  return {{"app", {{"id", "a1b2c3d4-0000-4000-8000-000000000001"}}},
          {"buildpacks", json::array({{{"url", "heroku/nodejs"},
                                       {"name", "heroku/nodejs"}}})},
          {"created_at", "2024-05-01T12:00:00Z"},
          {"id", build_id},
          {"output_stream_url", stream_url},
          {"release", done ? json{{"id", "r-0001"}} : json(nullptr)},
          {"slug", done ? json{{"id", "s-0001"}} : json(nullptr)},
          {"source_blob",
           {{"checksum", nullptr},
            {"url", source},
            {"version", sha},
            {"version_description", nullptr}}},
          {"stack", "heroku-22"},
          {"status", status},
          {"updated_at", "2024-05-01T12:00:05Z"},
          {"user", {{"email", "alice@example.com"}, {"id", "u-0001"}}}};
}

// ---- the AWS stand-ins -----------------------------------------------------

/// What the AWS stand-ins know and saw.
struct aws_world {
  std::mutex mx;
  bool bucket_exists = false;
  /// Requests refused for their signature, and why.
  std::vector<std::string> rejected;
  /// The label UpdateEnvironment asked for.
  std::string label;
  /// DescribeEnvironments calls so far.
  int polls = 0;
  /// Made when UpdateEnvironment arrives (dated after it, as AWS's are).
  std::vector<eb_event> events;
};

/// The Beanstalk environment `name` of the app, as the stand-in shows it.
eb_environment environment(const std::string& name, const std::string& status,
                           const std::string& health,
                           const std::string& version) {
  return {name,
          "e-e2e0000001",
          eb_app,
          version,
          status,
          health,
          std::string{eb_app} + "-" + name + "." + region
            + ".elasticbeanstalk.com"};
}
// ---- the fixture -----------------------------------------------------------

/// Every stand-in, fresh for each test; heaven itself is started by the test.
struct api_fixture {
  fs::path tmp = make_temp_dir("api");
  heroku_world heroku;
  aws_world aws;
  // The stand-ins come after the worlds they read: they stop first.
  http_stub github;
  http_stub heroku_api;
  http_stub heroku_output;
  http_stub s3;
  http_stub eb;

  api_fixture() {
    heroku.output = {"-----> Building on the Heroku-22 stack\n"
                     "-----> Using buil",
                     "dpack: heroku/nodejs\n", "-----> Build succeeded!\n"};
    github.respond_with([this](auto& r) { return answer_github(r); });
    heroku_api.respond_with([this](auto& r) { return answer_heroku(r); });
    heroku_output.respond_with([this](auto& r) { return answer_output(r); });
    s3.respond_with([this](auto& r) { return answer_s3(r); });
    eb.respond_with([this](auto& r) { return answer_eb(r); });
  }

  ~api_fixture() {
    heroku.stopping = true;
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  // -- links the stand-ins hand out

  std::string tarball_location() const {
    return github.base_url() + "codeload/octo/app/legacy.tar.gz/" + sha
           + "?token=" + tarball_token;
  }

  std::string zip_path() const {
    return "/codeload/octo/app/legacy.zip/" + std::string{sha}
           + "?token=" + zipball_token;
  }

  std::string stream_url() const {
    return heroku_output.base_url() + "streams/" + build_id
           + "/logs?token=" + stream_token;
  }

  // -- the stand-ins' answers

  stub_response answer_github(const recorded_request& r) {
    auto repo = std::string{"/repos/octo/app/"};
    if (r.method == "POST" && r.target.ends_with("/statuses"))
      return {
        201,
        {{"Content-Type", json_type}},
        json{{"id", 1},
             {"state", json::parse(r.body, nullptr, false).value("state", "")}}
          .dump()};
    if (r.method == "GET" && r.target == repo + "tarball/" + sha)
      return {302, {{"Location", tarball_location()}}, ""};
    if (r.method == "GET" && r.target == repo + "zipball/" + sha)
      return {
        302, {{"Location", github.base_url() + zip_path().substr(1)}}, ""};
    if (r.method == "GET" && r.target == zip_path())
      return {200, {{"Content-Type", "application/zip"}}, zip_bytes};
    return {404, {{"Content-Type", json_type}}, R"({"message":"Not Found"})"};
  }

  stub_response answer_heroku(const recorded_request& r) {
    if (r.header("authorization") != "Bearer " + std::string{heroku_key})
      return {401,
              {{"Content-Type", json_type}},
              R"({"id":"unauthorized","message":"Invalid credentials )"
              R"(provided."})"};
    for (auto app : {"app-prod", "app-staging"}) {
      auto builds = "/apps/" + std::string{app} + "/builds";
      if (r.method == "POST" && r.target == builds)
        return {
          201,
          {{"Content-Type", json_type}},
          heroku_build("pending", tarball_location(), stream_url()).dump()};
      if (r.method == "GET" && r.target == builds + "/" + build_id)
        return {200,
                {{"Content-Type", json_type}},
                heroku_build(build_status(), tarball_location(), stream_url())
                  .dump()};
    }
    return {404,
            {{"Content-Type", json_type}},
            R"({"id":"not_found","message":"Couldn't find that app."})"};
  }

  /// A poll's answer: pending until the whole output was sent (and one
  /// poll more, or as many as `pending_polls_after_output` says, as Heroku
  /// ends a build after its output), then the outcome.
  std::string build_status() {
    std::lock_guard guard{heroku.mx};
    if (heroku.polls_after_output < 0
        || ++heroku.polls_after_output < heroku.pending_polls_after_output)
      return "pending";
    return heroku.outcome;
  }

  stub_response answer_output(const recorded_request&) {
    stub_response res{200, {{"Content-Type", "text/plain; charset=utf-8"}}, ""};
    res.stream = [this](const chunk_writer& write) {
      std::vector<std::string> pieces;
      bool endless = false;
      {
        std::lock_guard guard{heroku.mx};
        pieces = heroku.output;
        endless = heroku.outcome == "pending";
      }
      for (auto& piece : pieces)
        write(piece);
      // A build that never ends keeps its stream open until heaven hangs up.
      bool hung_up = false;
      while (endless && !heroku.stopping && !hung_up) {
        hung_up = !write("-----> still building\n");
        if (!hung_up)
          std::this_thread::sleep_for(100ms);
      }
      std::lock_guard guard{heroku.mx};
      heroku.polls_after_output = 0;
      if (hung_up)
        heroku.stream_closed = true;
    };
    return res;
  }

  /// Refuses `r` as AWS would when its signature does not hold.
  std::optional<stub_response> refusal(const recorded_request& r,
                                       const std::string& service) {
    std::lock_guard guard{aws.mx};
    return refuse_bad_signature(r, service, {aws_key_id, aws_secret, region},
                                aws.rejected);
  }

  stub_response answer_s3(const recorded_request& r) {
    if (auto no = refusal(r, "s3"))
      return *no;
    std::lock_guard guard{aws.mx};
    auto bucket_path = "/" + std::string{bucket} + "/";
    if (r.target == bucket_path && r.method == "HEAD")
      return {aws.bucket_exists ? 200 : 404, {}, ""};
    if (r.target == bucket_path && r.method == "PUT") {
      aws.bucket_exists = true;
      return {200, {{"Location", "/" + std::string{bucket}}}, ""};
    }
    if (r.method == "PUT" && r.target.starts_with(bucket_path)
        && aws.bucket_exists)
      return {
        200, {{"ETag", "\"" + sha256_hex(r.body).substr(0, 32) + "\""}}, ""};
    if (!aws.bucket_exists)
      return s3_error(404, "NoSuchBucket",
                      "The specified bucket does not "
                      "exist");
    return s3_error(400, "InvalidRequest", "unexpected " + r.target);
  }

  stub_response answer_eb(const recorded_request& r) {
    if (auto no = refusal(r, "elasticbeanstalk"))
      return *no;
    auto form = parse_form(r.body);
    auto action = form["Action"];
    auto name = form["EnvironmentName"];
    std::lock_guard guard{aws.mx};
    if (action == "CreateApplicationVersion")
      return eb_answer(action, "<ApplicationVersion><ApplicationName>"
                                 + form["ApplicationName"]
                                 + "</ApplicationName><VersionLabel>"
                                 + form["VersionLabel"]
                                 + "</VersionLabel></ApplicationVersion>");
    if (action == "UpdateEnvironment") {
      aws.label = form["VersionLabel"];
      auto now = std::chrono::system_clock::now();
      aws.events = {{1, aws_date(now + 1s), "INFO",
                     "Environment update is starting."},
                    {2, aws_date(now + 2s), "INFO",
                     "Deploying new version to instance(s)."},
                    {2, aws_date(now + 3s), "INFO",
                     "Environment update completed successfully."}};
      return eb_answer(action, environment_fields(environment(
                                 name, "Updating", "Grey", aws.label)));
    }
    if (action == "DescribeEnvironments") {
      bool ready = ++aws.polls >= 2;
      auto env = form["EnvironmentNames.member.1"];
      return eb_answer(action, "<Environments>"
                                 + environment_member(environment(
                                   env, ready ? "Ready" : "Updating",
                                   ready ? "Green" : "Grey",
                                   ready ? aws.label : "v-previous"))
                                 + "</Environments>");
    }
    if (action == "DescribeEvents")
      return eb_answer(action, events_xml(aws.events, aws.polls,
                                          form["StartTime"], eb_app, name));
    return eb_error(400, "InvalidAction", "unknown action " + action);
  }

  // -- heaven

  /// Settings for both providers, all pointing at the stand-ins; the names
  /// in `unset` are left out, `extra` is added.
  heaven_server::env_list settings(std::vector<std::string> unset = {},
                                   heaven_server::env_list extra = {}) const {
    heaven_server::env_list env = {
      {"HEROKU_API_KEY", heroku_key},
      {"HEAVEN_HEROKU_ENDPOINT", heroku_api.base_url()},
      {"HEAVEN_POLL_INTERVAL_MS", "50"},
      {"BEANSTALK_ACCESS_KEY_ID", aws_key_id},
      {"BEANSTALK_SECRET_ACCESS_KEY", aws_secret},
      {"HEAVEN_S3_ENDPOINT",
       "http://127.0.0.1:" + std::to_string(s3.port()) + "/{bucket}/"},
      {"HEAVEN_BEANSTALK_ENDPOINT", eb.base_url()},
    };
    std::erase_if(env, [&](auto& kv) {
      return std::find(unset.begin(), unset.end(), kv.first) != unset.end();
    });
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }

  /// Delivers a deployment event of `payload` for the sha (to
  /// `environment`) and waits until heaven ended it, GitHub got its last
  /// status, and heaven has nothing left to send (so a second terminal
  /// status would be there). Returns heaven's row.
  json deploy(const heaven_server& h, int64_t github_id, json payload,
              const std::string& environment = "production") {
    auto event = heaven::test::deployment_event({.id = github_id,
                                                 .sha = sha,
                                                 .clone_url = no_repo,
                                                 .payload = std::move(payload),
                                                 .environment = environment});
    auto delivery = "delivery-" + std::to_string(github_id);
    auto res = h.post_event("deployment", delivery, event.dump());
    BOOST_REQUIRE_EQUAL(res.status, 201);
    auto row = h.wait_finished(id_of(h, github_id));
    auto ended = [&] {
      auto seen = states(statuses(github, github_id));
      return !seen.empty()
             && (seen.back() == "success" || seen.back() == "failure"
                 || seen.back() == "error");
    };
    for (int i = 0; i < 600 && !ended(); ++i)
      std::this_thread::sleep_for(50ms);
    BOOST_REQUIRE_MESSAGE(ended(), "GitHub got no terminal status");
    h.wait_quiet();
    return row;
  }

  /// Checks what every status request carried; returns the descriptions.
  std::vector<std::string> check_statuses(const heaven_server& h,
                                          int64_t github_id, int64_t id,
                                          const std::string& environment_url) {
    auto log_url = std::string{e2e_public_url} + "/deployments/"
                   + std::to_string(id)
                   + "/log?token=" + log_token(h.log_key(), id);
    std::vector<std::string> descriptions;
    for (auto& r : statuses(github, github_id)) {
      BOOST_TEST(r.method == "POST");
      BOOST_TEST(r.header("authorization")
                 == "token " + std::string{e2e_github_token});
      BOOST_TEST(r.header("accept") == "application/vnd.github+json");
      BOOST_TEST(r.header("content-type") == json_type);
      auto body = json::parse(r.body);
      BOOST_TEST(body.value("log_url", "") == log_url);
      BOOST_TEST(body.value("target_url", "") == log_url);
      BOOST_TEST(body.value("environment_url", "") == environment_url);
      descriptions.push_back(body.at("description"));
    }
    return descriptions;
  }

  /// The GitHub requests that were not statuses.
  std::vector<recorded_request> github_other() const {
    std::vector<recorded_request> out;
    for (auto& r : github.requests())
      if (!r.target.ends_with("/statuses"))
        out.push_back(r);
    return out;
  }

  /// The log behind the `log_url` of `github_id`'s last status, fetched from
  /// heaven (the link names heaven's public URL).
  std::string log_via_link(const heaven_server& h, int64_t github_id) {
    auto posted = statuses(github, github_id);
    BOOST_REQUIRE(!posted.empty());
    std::string link = json::parse(posted.back().body).at("log_url");
    std::string base = e2e_public_url;
    BOOST_REQUIRE(link.starts_with(base));
    auto res = http_call("GET", h.base() + link.substr(base.size()));
    BOOST_REQUIRE_EQUAL(res.status, 200);
    return res.body;
  }
};

json heroku_payload() {
  return {{"name", "app"},
          {"config",
           {{"provider", "heroku"},
            {"heroku_production_name", "app-prod"},
            {"production_url", "https://app-prod.herokuapp.com"}}}};
}

json beanstalk_payload() {
  return {{"name", "app-eb"},
          {"config",
           {{"provider", "elastic_beanstalk"},
            {"app_name", eb_app},
            {"production_url", "http://octo-app-production.eu-west-1."
                               "elasticbeanstalk.com"}}},
          {"aws", {{"region", region}}}};
}

const std::string sha7 = std::string{sha}.substr(0, 7);
const std::string queued = "Queued main (" + sha7 + ") for production by alice";

/// True when `text` contains `part`.
bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Checks the Heroku requests of one build (heaven's deployment `id`): the
/// POST, marked as heaven's, then only polls.
void check_heroku_requests(const std::vector<recorded_request>& reqs,
                           const std::string& source, int64_t id) {
  BOOST_REQUIRE_GE(reqs.size(), 2u);
  for (auto& r : reqs) {
    BOOST_TEST(r.header("accept") == "application/vnd.heroku+json; version=3");
    BOOST_TEST(r.header("authorization")
               == "Bearer " + std::string{heroku_key});
  }
  BOOST_TEST(reqs[0].method == "POST");
  BOOST_TEST(reqs[0].target == "/apps/app-prod/builds");
  BOOST_TEST(reqs[0].header("content-type") == json_type);
  auto mark = "heaven deployment " + std::to_string(id) + " of octo/app";
  BOOST_TEST(
    json::parse(reqs[0].body)
    == (json{
      {"source_blob",
       {{"url", source}, {"version", sha}, {"version_description", mark}}}}));
  for (size_t i = 1; i < reqs.size(); ++i) {
    BOOST_TEST(reqs[i].method == "GET");
    BOOST_TEST(reqs[i].target
               == std::string{"/apps/app-prod/builds/"} + build_id);
    BOOST_TEST(reqs[i].body == "");
  }
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(end_to_end_api, api_fixture)

BOOST_AUTO_TEST_CASE(heroku_builds_the_sha_without_a_checkout) {
  heaven_server h{tmp / "data", github.base_url(), settings()};
  auto row = deploy(h, 5001, heroku_payload());
  auto id = row.at("id").get<int64_t>();
  BOOST_TEST(row.at("state") == "success");
  auto success = "Heroku build 01234567 succeeded on app-prod";
  BOOST_TEST(row.at("description") == success);
  // GitHub: the statuses, and the tarball link (asked with the token).
  BOOST_TEST(states(statuses(github, 5001))
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(check_statuses(h, 5001, id, "https://app-prod.herokuapp.com")
             == (std::vector<std::string>{queued,
                                          "Deploying main (" + sha7
                                            + ") to production with heroku",
                                          success}));
  auto gh = github_other();
  BOOST_REQUIRE_EQUAL(gh.size(), 1u);
  BOOST_TEST(gh[0].method == "GET");
  BOOST_TEST(gh[0].target == "/repos/octo/app/tarball/" + std::string{sha});
  BOOST_TEST(gh[0].header("authorization")
             == "token " + std::string{e2e_github_token});
  BOOST_TEST(gh[0].header("accept") == "application/vnd.github+json");
  BOOST_TEST(gh[0].header("user-agent") == "heaven");
  // Heroku: one build of that link, then polls of it.
  check_heroku_requests(heroku_api.requests(), tarball_location(), id);
  // The output host: the signed stream link, without the API key.
  auto out = heroku_output.requests();
  BOOST_REQUIRE_EQUAL(out.size(), 1u);
  BOOST_TEST(out[0].method == "GET");
  BOOST_TEST(out[0].target
             == std::string{"/streams/"} + build_id
                  + "/logs?token=" + stream_token);
  BOOST_TEST(out[0].header("authorization") == "");
  // The log behind GitHub's link: heaven's steps and the build's output,
  // lines put back together across the stream's pieces.
  auto log = log_via_link(h, 5001);
  BOOST_TEST(has(log, "heaven: " + queued + "\n"), log);
  BOOST_TEST(has(log, "heaven: Heroku build " + std::string{build_id}
                        + " started on app-prod\n"),
             log);
  BOOST_TEST(has(log, "-----> Building on the Heroku-22 stack\n"
                      "-----> Using buildpack: heroku/nodejs\n"
                      "-----> Build succeeded!\n"),
             log);
  BOOST_TEST(has(log, "heaven: success: " + std::string{success} + "\n"), log);
  // Nothing was cloned: heaven made neither a mirror nor a checkout.
  BOOST_TEST(!fs::exists(tmp / "data" / "mirrors"));
  BOOST_TEST(!fs::exists(tmp / "data" / "workspaces"));
}

BOOST_AUTO_TEST_CASE(heroku_reports_a_failed_build_as_failure) {
  heroku.outcome = "failed";
  heroku.output = {"-----> Building on the Heroku-22 stack\n",
                   "npm ERR! Missing script: \"build\"\n",
                   " !     Push rejected, failed to compile Node.js app.\n"};
  heaven_server h{tmp / "data", github.base_url(), settings()};
  auto row = deploy(h, 5002, heroku_payload());
  auto failure = "Heroku build 01234567 failed on app-prod (see the log)";
  BOOST_TEST(row.at("state") == "failure");
  BOOST_TEST(row.at("description") == failure);
  BOOST_TEST(states(statuses(github, 5002))
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  auto descriptions = check_statuses(h, 5002, row.at("id"),
                                     "https://app-prod.herokuapp.com");
  BOOST_REQUIRE_EQUAL(descriptions.size(), 3u);
  BOOST_TEST(descriptions[2] == failure);
  check_heroku_requests(heroku_api.requests(), tarball_location(),
                        row.at("id").get<int64_t>());
  auto log = log_via_link(h, 5002);
  BOOST_TEST(has(log, "npm ERR! Missing script: \"build\"\n"
                      " !     Push rejected, failed to compile Node.js app.\n"),
             log);
  BOOST_TEST(has(log, "heaven: failure: " + std::string{failure} + "\n"), log);
}

BOOST_AUTO_TEST_CASE(heroku_without_an_api_key_is_an_error_and_calls_nobody) {
  heaven_server h{tmp / "data", github.base_url(),
                  settings({"HEROKU_API_KEY"})};
  auto row = deploy(h, 5003, heroku_payload());
  auto why = "HEROKU_API_KEY is not set: heaven can't deploy to Heroku";
  BOOST_TEST(row.at("state") == "error");
  BOOST_TEST(row.at("description") == why);
  BOOST_TEST(states(statuses(github, 5003))
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  auto descriptions = check_statuses(h, 5003, row.at("id"),
                                     "https://app-prod.herokuapp.com");
  BOOST_REQUIRE_EQUAL(descriptions.size(), 3u);
  BOOST_TEST(descriptions[2] == why);
  // Nobody but GitHub's status API heard of it.
  BOOST_TEST(github_other().empty());
  BOOST_TEST(heroku_api.requests().empty());
  BOOST_TEST(heroku_output.requests().empty());
}

BOOST_AUTO_TEST_CASE(heroku_build_that_outlasts_the_timeout_is_let_go) {
  heroku.outcome = "pending";
  heroku.output = {"-----> Building on the Heroku-22 stack\n"};
  heaven_server h{tmp / "data", github.base_url(),
                  settings({}, {{"DEPLOYMENT_TIMEOUT", "2"}})};
  auto row = deploy(h, 5004, heroku_payload());
  auto timed_out = "Deployment timed out after 2 seconds";
  BOOST_TEST(row.at("state") == "failure");
  BOOST_TEST(row.at("description") == timed_out);
  // Exactly one terminal status.
  BOOST_TEST(states(statuses(github, 5004))
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  auto descriptions = check_statuses(h, 5004, row.at("id"),
                                     "https://app-prod.herokuapp.com");
  BOOST_REQUIRE_EQUAL(descriptions.size(), 3u);
  BOOST_TEST(descriptions[2] == timed_out);
  // heaven hung up on the output stream...
  for (int i = 0; i < 400 && !heroku.stream_closed; ++i)
    std::this_thread::sleep_for(50ms);
  BOOST_TEST(heroku.stream_closed.load());
  // ...and polls no more. heaven's own poll timer is the clock: a later
  // build of another app (app-staging), which heaven follows with the same
  // interval for at least `pending` polls, would have seen a poll of the
  // first build meanwhile if anything still followed it.
  auto polls_of = [&](const std::string& app) {
    std::vector<recorded_request> out;
    for (auto& r : heroku_api.requests())
      if (r.target.starts_with("/apps/" + app + "/"))
        out.push_back(r);
    return out;
  };
  auto first_build = polls_of("app-prod");
  auto polls = first_build.size();
  BOOST_TEST(polls >= 2u);
  BOOST_TEST(heroku_api.requests().size() == polls);
  const int pending = 6;
  {
    std::lock_guard guard{heroku.mx};
    heroku.outcome = "succeeded";
    heroku.output = {"-----> Building the next one\n"};
    heroku.polls_after_output = -1;
    heroku.pending_polls_after_output = pending;
  }
  auto next_payload = heroku_payload();
  next_payload["config"]["heroku_staging_name"] = "app-staging";
  auto next = deploy(h, 5005, next_payload, "staging");
  BOOST_TEST(next.at("state") == "success");
  BOOST_TEST(polls_of("app-staging").size() >= pending + 1u);
  BOOST_TEST(polls_of("app-prod").size() == polls);
  check_heroku_requests(first_build, tarball_location(),
                        row.at("id").get<int64_t>());
  auto log = log_via_link(h, 5004);
  BOOST_TEST(has(log, "-----> still building\n"), log);
  // The log says the build was let go, not stopped, then ends as Heaven's
  // logs end after a timeout.
  std::string tail = std::string{"heaven: Stopped following Heroku build "}
                     + build_id + ": Heroku may still finish it\n"
                     + "heaven: DEPLOYMENT TIMED OUT AFTER 2 SECONDS\n";
  BOOST_TEST(log.ends_with(tail), log);
}

BOOST_AUTO_TEST_CASE(elastic_beanstalk_deploys_with_signed_requests) {
  heaven_server h{tmp / "data", github.base_url(), settings()};
  auto row = deploy(h, 6001, beanstalk_payload());
  auto id = row.at("id").get<int64_t>();
  std::string label;
  {
    std::lock_guard guard{aws.mx};
    label = aws.label;
    for (auto& why : aws.rejected)
      BOOST_ERROR("refused: " << why);
  }
  BOOST_TEST(std::regex_match(label,
                              std::regex{std::string{sha}.substr(0, 12)
                                         + "-\\d{14}-" + std::to_string(id)}),
             label);
  auto success = "Elastic Beanstalk environment production is Ready on "
                 + label;
  BOOST_TEST(row.at("state") == "success");
  BOOST_TEST(row.at("description") == success);
  // Exactly one terminal status: success.
  BOOST_TEST(states(statuses(github, 6001))
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(
    check_statuses(h, 6001, id,
                   "http://octo-app-production.eu-west-1."
                   "elasticbeanstalk.com")
    == (std::vector<std::string>{queued,
                                 "Deploying main (" + sha7
                                   + ") to production with elastic_beanstalk",
                                 success}));
  // GitHub: the zipball link (with the token), then the zip (without).
  auto gh = github_other();
  BOOST_REQUIRE_EQUAL(gh.size(), 2u);
  BOOST_TEST(gh[0].method == "GET");
  BOOST_TEST(gh[0].target == "/repos/octo/app/zipball/" + std::string{sha});
  BOOST_TEST(gh[0].header("authorization")
             == "token " + std::string{e2e_github_token});
  BOOST_TEST(gh[0].header("accept") == "application/vnd.github+json");
  BOOST_TEST(gh[1].method == "GET");
  BOOST_TEST(gh[1].target == zip_path());
  BOOST_TEST(gh[1].header("authorization") == "");
  // S3: no bucket yet, so CreateBucket (in eu-west-1), then the zip.
  auto bucket_path = "/" + std::string{bucket} + "/";
  auto s3r = s3.requests();
  BOOST_REQUIRE_EQUAL(s3r.size(), 3u);
  for (auto& r : s3r)
    BOOST_TEST(has(r.header("authorization"), "/eu-west-1/s3/aws4_request"));
  BOOST_TEST(s3r[0].method == "HEAD");
  BOOST_TEST(s3r[0].target == bucket_path);
  BOOST_TEST(s3r[0].header("x-amz-content-sha256") == sha256_hex(""));
  BOOST_TEST(s3r[1].method == "PUT");
  BOOST_TEST(s3r[1].target == bucket_path);
  BOOST_TEST(s3r[1].header("content-type") == "application/xml");
  BOOST_TEST(s3r[1].body
             == "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/"
                "doc/2006-03-01/\"><LocationConstraint>eu-west-1"
                "</LocationConstraint></CreateBucketConfiguration>");
  BOOST_TEST(s3r[2].method == "PUT");
  BOOST_TEST(s3r[2].target
             == bucket_path + "octo-app-" + std::string{sha} + ".zip");
  BOOST_TEST(s3r[2].header("content-type") == "application/zip");
  BOOST_TEST(s3r[2].header("x-amz-content-sha256") == sha256_hex(zip_bytes));
  BOOST_TEST(s3r[2].body == zip_bytes);
  // Elastic Beanstalk: version, update, and two polls of two calls each.
  auto ebr = eb.requests();
  BOOST_REQUIRE_EQUAL(ebr.size(), 6u);
  for (auto& r : ebr) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.target == "/");
    BOOST_TEST(r.header("content-type")
               == "application/x-www-form-urlencoded; charset=utf-8");
    BOOST_TEST(has(r.header("authorization"),
                   "/eu-west-1/elasticbeanstalk/aws4_request"));
  }
  BOOST_TEST(ebr[0].body
             == "Action=CreateApplicationVersion&Version=2010-12-01"
                "&ApplicationName=octo-app&VersionLabel="
                  + label + "&Description=octo%2Fapp%20main%20%28" + sha7
                  + "%29%20deployed%20by%20alice%20with%20heaven"
                    "&SourceBundle.S3Bucket="
                  + bucket + "&SourceBundle.S3Key=octo-app-" + sha
                  + ".zip&AutoCreateApplication=false");
  BOOST_TEST(ebr[1].body
             == "Action=UpdateEnvironment&Version=2010-12-01"
                "&ApplicationName=octo-app&EnvironmentName=production"
                "&VersionLabel="
                  + label);
  for (size_t i : {2u, 4u})
    BOOST_TEST(ebr[i].body
               == "Action=DescribeEnvironments&Version=2010-12-01"
                  "&ApplicationName=octo-app"
                  "&EnvironmentNames.member.1=production");
  std::vector<std::string> since;
  for (size_t i : {3u, 5u}) {
    since.push_back(parse_form(ebr[i].body)["StartTime"]);
    BOOST_TEST(ebr[i].body
               == "Action=DescribeEvents&Version=2010-12-01"
                  "&ApplicationName=octo-app&EnvironmentName=production"
                  "&StartTime="
                    + percent_encode(since.back()));
  }
  std::vector<eb_event> events;
  {
    std::lock_guard guard{aws.mx};
    events = aws.events;
  }
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  // The second poll asks for events from the newest one seen.
  BOOST_TEST(since[1] == events[0].date);
  // The log: each event once, oldest first, between heaven's own lines.
  auto log = log_via_link(h, 6001);
  std::string expected_events;
  for (auto& e : events)
    expected_events += e.date + " " + e.severity + " " + e.message + "\n";
  BOOST_TEST(has(log, expected_events), log);
  BOOST_TEST(has(log, "heaven: Uploaded s3://" + std::string{bucket}
                        + "/octo-app-" + sha + ".zip\n"),
             log);
  BOOST_TEST(has(log, "heaven: success: " + success + "\n"), log);
}

BOOST_AUTO_TEST_CASE(no_secret_reaches_heavens_log_or_the_deployment_logs) {
  // The build's output prints the secrets (as a careless build may): the
  // deployment log must show them redacted.
  heroku.output = {"-----> Building on the Heroku-22 stack\n",
                   "key " + std::string{heroku_key} + " token "
                     + e2e_github_token + " aws " + aws_secret + "\n",
                   "-----> Build succeeded!\n"};
  heaven_server h{tmp / "data", github.base_url(),
                  settings({}, {{"HEAVEN_LOG_LEVEL", "trace"}})};
  auto heroku_row = deploy(h, 7001, heroku_payload());
  auto eb_row = deploy(h, 7002, beanstalk_payload());
  BOOST_TEST(heroku_row.at("state") == "success");
  BOOST_TEST(eb_row.at("state") == "success");
  auto heroku_log = log_via_link(h, 7001);
  auto eb_log = log_via_link(h, 7002);
  BOOST_TEST(has(heroku_log, "key [redacted] token [redacted] aws "
                             "[redacted]\n"),
             heroku_log);
  std::string statuses_sent;
  for (auto& r : github.requests())
    statuses_sent += r.body + "\n";
  BOOST_TEST(h.stop() == 0);
  auto own = read_text(h.stderr_file);
  // heaven's own log does speak of both deployments.
  BOOST_TEST(has(own, std::string{"Heroku build "} + build_id), own);
  BOOST_TEST(has(own, "Elastic Beanstalk environment production"), own);
  for (std::string secret :
       {std::string{heroku_key}, std::string{aws_secret},
        std::string{e2e_github_token}, std::string{tarball_token},
        std::string{zipball_token}, std::string{stream_token},
        std::string{"Signature="}}) {
    BOOST_TEST(!has(own, secret), secret << " in heaven's log:\n" << own);
    BOOST_TEST(!has(heroku_log, secret), secret << " in the Heroku log");
    BOOST_TEST(!has(eb_log, secret), secret << " in the Beanstalk log");
    BOOST_TEST(!has(statuses_sent, secret), secret << " sent to GitHub");
  }
}

BOOST_AUTO_TEST_SUITE_END()
