// heaven's own log through the real `heaven serve` binary: with
// HEAVEN_LOG_FORMAT=json every line of its stderr is one JSON object, the
// lines about a deployment carry its id, repository and environment, and no
// configured secret appears in either format, even where heaven logs what a
// server echoed back or what an event named.

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr auto heroku_key = "heroku-key-SECRET-4242";

/// Every secret the test heaven has.
const std::vector<std::string> all_secrets = {e2e_github_token,
                                              e2e_webhook_secret, heroku_key};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

/// A repository with a deploy script, a GitHub stand-in that refuses every
/// status with an answer echoing the credentials it got (heaven logs that
/// answer when it drops the status), and what one heaven logged for a
/// shell deployment that succeeds and one whose provider is named by a
/// secret (refused; heaven logs the name).
struct fixture {
  fs::path tmp = make_temp_dir("logs");
  http_stub github;
  fs::path repo = tmp / "app";
  std::string sha;

  fixture() {
    fs::create_directories(repo / "script");
    std::ofstream{repo / "script" / "deploy"}
      << "#!/bin/sh\necho \"deploying with $GITHUB_TOKEN\"\n";
    fs::permissions(repo / "script" / "deploy", fs::perms::owner_all);
    run_checked("cd " + repo.string()
                + " && git init -q --initial-branch=main && git add -A && "
                  "git -c user.name=t -c user.email=t@t commit -q -m first");
    sha = run_checked("git -C " + repo.string() + " rev-parse HEAD");
    github.respond_with([](const recorded_request& r) {
      if (r.method == "POST" && r.target.find("/statuses") != std::string::npos)
        return stub_response{422,
                             {{"Content-Type", "application/json"}},
                             json{{"message", "Validation Failed for "
                                                + r.header("authorization")}}
                               .dump()};
      return stub_response{};
    });
  }

  ~fixture() {
    fs::remove_all(tmp);
  }

  std::string event(int64_t github_id, const std::string& provider,
                    const std::string& environment) const {
    return deployment_event(
             {.id = github_id,
              .sha = sha,
              .clone_url = "file://" + repo.string(),
              .payload = {{"config",
                           {{"provider", provider},
                            {"deploy_script", "script/deploy"}}}},
              .environment = environment})
      .dump();
  }

  /// What heaven wrote to stderr in `format`; `shell` and `refused` are
  /// the ids of the two deployments.
  struct run {
    std::string stderr_text;
    int64_t shell = 0;
    int64_t refused = 0;
  };

  run deploy_twice(const std::string& format) {
    run out;
    heaven_server h{tmp / ("data-" + format),
                    github.base_url(),
                    {{"HEAVEN_LOG_FORMAT", format},
                     {"HEAVEN_LOG_LEVEL", "debug"},
                     {"HEROKU_API_KEY", heroku_key}}};
    BOOST_TEST(
      h.post_event("deployment", "d-1", event(501, "shell", "production"))
        .status
      == 201);
    out.shell = id_of(h, 501);
    BOOST_TEST(h.wait_finished(out.shell).at("state") == "success");
    BOOST_TEST(
      h.post_event("deployment", "d-2", event(502, heroku_key, "staging"))
        .status
      == 201);
    out.refused = id_of(h, 502);
    auto refused = h.wait_finished(out.refused);
    BOOST_TEST(refused.at("state") == "error");
    // It never ran: its log is the one line of its refusal (no file),
    // the provider's name redacted there too.
    auto why = refused.at("description").get<std::string>();
    auto named = why.find(heroku_key);
    BOOST_REQUIRE(named != std::string::npos);
    why.replace(named, std::string{heroku_key}.size(), "[redacted]");
    BOOST_TEST(why.starts_with("unknown provider '[redacted]' (heaven knows: "),
               why);
    auto problems = h.unstarted_log_problems(out.refused,
                                             "heaven: error: " + why + "\n");
    BOOST_TEST(problems.empty(), problems);
    // Every status was answered (refused): their drops are logged.
    h.wait_quiet();
    BOOST_TEST(h.stop() == 0);
    out.stderr_text = read_text(h.stderr_file);
    fs::remove(h.stderr_file);
    return out;
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(heaven_log, fixture)

BOOST_AUTO_TEST_CASE(json_lines_parse_carry_the_deployment_and_hide_secrets) {
  auto r = deploy_twice("json");
  auto lines = lines_of(r.stderr_text);
  BOOST_REQUIRE(lines.size() > 10u);
  BOOST_TEST(r.stderr_text.back() == '\n');
  std::regex utc{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"};
  const std::set<std::string> levels = {"trace",   "debug", "info",
                                        "warning", "error", "critical"};
  const std::set<std::string> keys = {
    "time", "level", "message", "deployment", "repository", "environment"};
  std::vector<json> parsed;
  for (auto& line : lines) {
    auto j = json::parse(line, nullptr, false);
    BOOST_REQUIRE_MESSAGE(j.is_object(), "not a JSON object: " << line);
    BOOST_TEST(j.at("time").is_string(), line);
    BOOST_TEST(std::regex_match(j.at("time").get<std::string>(), utc), line);
    BOOST_TEST(levels.count(j.at("level").get<std::string>()) == 1u, line);
    BOOST_TEST(j.at("message").is_string(), line);
    for (auto& [k, v] : j.items())
      BOOST_TEST(keys.count(k) == 1u, "unknown key " << k << ": " << line);
    if (j.contains("deployment"))
      BOOST_TEST(j.at("deployment").is_number_integer(), line);
    parsed.push_back(std::move(j));
  }
  auto message = [](const json& j) {
    return j.at("message").get<std::string>();
  };
  // Every line that speaks of the shell deployment as its subject (the
  // checkout, the script, its end) carries the deployment's fields.
  auto shell_prefix = "deployment " + std::to_string(r.shell) + " ";
  int about_shell = 0;
  for (auto& j : parsed) {
    if (!starts_with(message(j), shell_prefix))
      continue;
    ++about_shell;
    BOOST_TEST(j.value("deployment", int64_t{0}) == r.shell, j.dump());
    BOOST_TEST(j.value("repository", "") == "octo/app", j.dump());
    BOOST_TEST(j.value("environment", "") == "production", j.dump());
  }
  // "has a private checkout", "runs script/deploy", "ends with success",
  // "of octo/app to production ended".
  BOOST_TEST(about_shell >= 4);
  // The refusal names the provider (a secret: redacted) and carries the
  // refused deployment.
  int refusals = 0;
  for (auto& j : parsed)
    if (starts_with(message(j), "deployment " + std::to_string(r.refused)
                                  + " of octo/app to staging refused: "
                                    "unknown provider '[redacted]'")) {
      ++refusals;
      BOOST_TEST(j.value("deployment", int64_t{0}) == r.refused, j.dump());
      BOOST_TEST(j.value("repository", "") == "octo/app", j.dump());
      BOOST_TEST(j.value("environment", "") == "staging", j.dump());
    }
  BOOST_TEST(refusals == 1);
  // Whatever carries a deployment carries the right repository and
  // environment for it.
  for (auto& j : parsed) {
    if (!j.contains("deployment"))
      continue;
    auto id = j.at("deployment").get<int64_t>();
    BOOST_TEST((id == r.shell || id == r.refused), j.dump());
    BOOST_TEST(j.value("environment", "")
                 == (id == r.shell ? "production" : "staging"),
               j.dump());
  }
  // Lines about heaven itself carry none.
  int plain = 0;
  for (auto& j : parsed)
    if (starts_with(message(j), "heaven listens on port")) {
      ++plain;
      BOOST_TEST(!j.contains("deployment"));
    }
  BOOST_TEST(plain == 1);
  // GitHub's refusals echoed the token; heaven logged them redacted.
  int echoed = 0;
  for (auto& j : parsed)
    if (message(j).find("HTTP 422") != std::string::npos
        && message(j).find("Validation Failed for token [redacted]")
             != std::string::npos)
      ++echoed;
  BOOST_TEST(echoed >= 3);
  for (auto& s : all_secrets)
    BOOST_TEST(r.stderr_text.find(s) == std::string::npos,
               "secret '" << s << "' in the log:\n"
                          << r.stderr_text);
}

BOOST_AUTO_TEST_CASE(text_lines_hide_the_same_secrets) {
  auto r = deploy_twice("text");
  BOOST_TEST(r.stderr_text.find("Validation Failed for token [redacted]")
               != std::string::npos,
             r.stderr_text);
  BOOST_TEST(r.stderr_text.find("refused: unknown provider '[redacted]'")
               != std::string::npos,
             r.stderr_text);
  for (auto& s : all_secrets)
    BOOST_TEST(r.stderr_text.find(s) == std::string::npos,
               "secret '" << s << "' in the log:\n"
                          << r.stderr_text);
  // Text, not JSON.
  BOOST_TEST(r.stderr_text.find("] [heaven] [info] heaven listens on port")
               != std::string::npos,
             r.stderr_text);
}

BOOST_AUTO_TEST_CASE(an_unknown_log_format_stops_heaven_at_start) {
  auto res = run_command("cd " + tmp.string()
                         + " && env -i PATH=$PATH HEAVEN_CONFIG=/dev/null "
                           "HEAVEN_LOG_FORMAT=xml GITHUB_WEBHOOK_SECRET=s "
                         + HEAVEN_BINARY + " serve 2>&1");
  BOOST_TEST(res.status == 2);
  BOOST_TEST(res.out
               == "heaven: HEAVEN_LOG_FORMAT must be text or json, got "
                  "'xml'\n",
             res.out);
}

BOOST_AUTO_TEST_CASE(why_heaven_cannot_start_is_json_too) {
  // A database heaven cannot open (a directory in its place).
  fs::create_directories(tmp / "data" / "heaven.db");
  auto env = "cd " + tmp.string()
             + " && env -i PATH=$PATH HEAVEN_CONFIG=/dev/null "
               "HEAVEN_LOG_FORMAT=json HEAVEN_LISTEN=127.0.0.1:0 "
               "HEAVEN_DATA_DIR="
             + (tmp / "data").string() + " ";
  auto no_db = run_command(env + "GITHUB_WEBHOOK_SECRET=s " + HEAVEN_BINARY
                           + " serve");
  BOOST_TEST(no_db.status == 1);
  // Without a webhook secret.
  auto no_secret = run_command(env + HEAVEN_BINARY + " serve");
  BOOST_TEST(no_secret.status == 2);
  for (auto* r : {&no_db, &no_secret}) {
    auto lines = lines_of(r->out);
    BOOST_REQUIRE(!lines.empty());
    for (auto& line : lines)
      BOOST_TEST(json::parse(line, nullptr, false).is_object(), line);
    auto last = json::parse(lines.back(), nullptr, false);
    BOOST_TEST(last.value("level", "") == "critical", r->out);
  }
  BOOST_TEST(
    starts_with(
      json::parse(lines_of(no_db.out).back()).at("message").get<std::string>(),
      "cannot use the database in " + (tmp / "data").string() + ": "),
    no_db.out);
  BOOST_TEST(json::parse(lines_of(no_secret.out).back()).at("message")
               == "GITHUB_WEBHOOK_SECRET is not set, so heaven could not tell "
                  "GitHub's webhooks from anyone else's.\nSet it to the "
                  "secret of your repository's webhook (or pass "
                  "--webhook-secret-file <file>), or pass --insecure to "
                  "accept unsigned events on a private test machine.",
             no_secret.out);
}

BOOST_AUTO_TEST_SUITE_END()
