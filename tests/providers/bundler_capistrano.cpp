// The bundler_capistrano provider against real tools: a real git archive as
// GitHub's tarball (served by a GitHub stand-in over a socket, behind the
// 302 GitHub answers), a real private gem server layout made by `gem build`
// and `gem generate_index` (served with Basic auth), and the real `bundle`,
// `cap`, `ssh-agent` and `ssh-add`.

#include "providers/bundler_capistrano.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/http_client.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"
#include "tools/support/sshd.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto github_token = "ghp_tarball_token_never_logged";
/// What GitHub's link carries for a private repository.
constexpr auto link_token = "codeload-link-secret";
constexpr auto gem_credentials = "deployer:s3cr3t-gem-pw";

/// The `production` stage. `deploy` runs locally (no servers): it loads the
/// gem from the private source, and writes what it saw to `observed` (path
/// filled in by the test).
constexpr auto production_rb = R"rb(
task :deploy do
  require "heaven_probe"
  run_locally do
    File.write(ENV.fetch("OBSERVED"), [
      "branch=#{fetch(:branch)}",
      "sha=#{ENV["SHA"]} env=#{ENV["DEPLOY_ENV"]} task=#{ENV["DEPLOY_TASK"]}",
      "probe=#{HeavenProbe::WORD}",
      "key_in_env=#{ENV.key?("DEPLOYMENT_PRIVATE_KEY")}",
      "credentials_in_env=#{ENV.key?("BUNDLER_PRIVATE_CREDENTIALS")}",
      "auth_sock=#{ENV["SSH_AUTH_SOCK"]}",
      "gem_home=#{ENV["GEM_HOME"]}",
    ].join("\n") + "\n")
    execute "ssh-add -l > #{ENV.fetch("OBSERVED")}-agent"
  end
  puts "cap deployed #{fetch(:branch)}"
end
)rb";

/// A gem source directory like a private gem server's: `gem build` of
/// heaven_probe (needed by the `deployment` group) and heaven_devonly (only
/// in `development`), indexed by `gem generate_index`.
fs::path make_gem_source(const fs::path& root) {
  for (std::string name : {"heaven_probe", "heaven_devonly"}) {
    auto dir = root / "build" / name;
    write_file(dir / "lib" / (name + ".rb"),
               "module HeavenProbe\n  WORD = \"" + name + "-loaded\"\nend\n");
    write_file(dir / (name + ".gemspec"),
               "Gem::Specification.new do |s|\n"
               "  s.name = \""
                 + name
                 + "\"\n  s.version = \"0.1.0\"\n"
                   "  s.summary = \"test gem\"\n  s.authors = [\"heaven\"]\n"
                   "  s.files = [\"lib/"
                 + name + ".rb\"]\nend\n");
    run_checked("cd " + dir.string() + " && gem build -q " + name
                + ".gemspec >/dev/null 2>&1");
    fs::create_directories(root / "index" / "gems");
    fs::copy_file(dir / (name + "-0.1.0.gem"),
                  root / "index" / "gems" / (name + "-0.1.0.gem"));
  }
  run_checked("gem generate_index -q -d " + (root / "index").string()
              + " >/dev/null 2>&1");
  return root / "index";
}

struct bundler_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  http_client_actor http = sys.spawn(http_client);
  std::shared_ptr<record> rec = std::make_shared<record>();
  deployment_actor sink = sys.spawn(deployment_recorder, rec);
  temp_dir tmp;
  fs::path data = tmp.path / "data";
  fs::path origin = tmp.path / "origin";
  fs::path observed = tmp.path / "observed";
  fs::path tarball = tmp.path / "app.tar.gz";
  fs::path gems;
  http_stub github;
  std::string sha;
  /// Status of the next tarball-link answers (then 302 for good).
  std::vector<int> link_failures;

  bundler_fixture() {
    become_subreaper();
    fs::create_directories(tmp.path / "home");
    fs::create_directories(data);
    github.respond_with(
      [this](const recorded_request& r) { return answer(r); });
  }

  ~bundler_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(http, caf::exit_reason::user_shutdown);
  }

  std::string base() const {
    auto url = github.base_url();
    return url.substr(0, url.size() - 1);
  }

  std::string link_path() const {
    return "/codeload/octo/app/legacy.tar.gz/" + sha;
  }

  /// GitHub (the link, then the archive) and the private gem server.
  stub_response answer(const recorded_request& r) {
    if (r.target == "/repos/octo/app/tarball/" + sha) {
      if (!link_failures.empty()) {
        auto status = link_failures.front();
        link_failures.erase(link_failures.begin());
        return {status, {}, R"({"message":"try later"})"};
      }
      return {
        302, {{"Location", base() + link_path() + "?token=" + link_token}}, ""};
    }
    if (r.target == link_path() + "?token=" + link_token)
      return {
        200, {{"Content-Type", "application/x-gzip"}}, read_file(tarball)};
    if (r.target.rfind("/gems/", 0) == 0 && !gems.empty()) {
      if (r.header("authorization")
          != "Basic " + base64(std::string{gem_credentials}))
        return {401, {{"WWW-Authenticate", "Basic realm=\"gems\""}}, ""};
      auto file = gems / r.target.substr(6);
      if (!fs::is_regular_file(file))
        return {404, {}, ""};
      return {
        200, {{"Content-Type", "application/octet-stream"}}, read_file(file)};
    }
    return {404, {}, R"({"message":"Not Found"})"};
  }

  static std::string base64(const std::string& text) {
    static constexpr char abc[]
      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < text.size(); i += 3) {
      auto n = (uint8_t(text[i]) << 16) | (uint8_t(text[i + 1]) << 8)
               | uint8_t(text[i + 2]);
      out += {abc[n >> 18], abc[(n >> 12) & 63], abc[(n >> 6) & 63],
              abc[n & 63]};
    }
    if (i + 1 == text.size()) {
      auto n = uint8_t(text[i]) << 16;
      out += {abc[n >> 18], abc[(n >> 12) & 63], '=', '='};
    } else if (i + 2 == text.size()) {
      auto n = (uint8_t(text[i]) << 16) | (uint8_t(text[i + 1]) << 8);
      out += {abc[n >> 18], abc[(n >> 12) & 63], abc[(n >> 6) & 63], '='};
    }
    return out;
  }

  /// Commits `files` and makes GitHub's tarball of the commit with `git
  /// archive` (one top directory, as GitHub's has).
  void repository(const std::map<std::string, std::string>& files) {
    run_checked("git init -q --initial-branch=main " + origin.string());
    for (auto& [path, text] : files)
      write_file(origin / path, text);
    auto git = "git -C " + origin.string()
               + " -c user.name=t -c user.email=t@t ";
    run_checked(git + "add --all && " + git + "commit -q -m app");
    sha = run_checked(git + "rev-parse HEAD");
    sha.erase(sha.find_last_not_of('\n') + 1);
    run_checked(git + "archive --format=tar.gz --prefix=octo-app-"
                + sha.substr(0, 7) + "/ -o " + tarball.string() + " HEAD");
  }

  /// A Capistrano app whose Gemfile takes heaven_probe from the private
  /// source (group deployment) and heaven_devonly (group development).
  void capistrano_app() {
    gems = make_gem_source(tmp.path / "gemsrc");
    auto gemfile = "gem \"capistrano\", \"~> 3.17\"\n"
                   "source \""
                   + base()
                   + "/gems/\" do\n"
                     "  gem \"heaven_probe\", group: :deployment\n"
                     "  group :development do\n"
                     "    gem \"heaven_devonly\"\n"
                     "  end\n"
                     "end\n";
    repository(
      {{"Gemfile", gemfile},
       {"Capfile", "require \"capistrano/setup\"\n"},
       {"config/deploy.rb", "set :application, \"app\"\n"
                            "set :scm, nil\n"
                            "set :branch, ENV.fetch(\"BRANCH\", \"master\")\n"},
       {"config/deploy/production.rb", production_rb}});
  }

  provider_job job(const std::string& environment = "production",
                   const std::string& task = "deploy") {
    provider_job j;
    j.id = 23;
    j.request.repo = "octo/app";
    j.request.sha = sha;
    j.request.ref = "feature/y";
    j.request.environment = environment;
    j.request.task = task;
    j.request.provider = "bundler_capistrano";
    j.request.payload_json = R"({"config":{"provider":"bundler_capistrano"}})";
    j.env = child_env(tmp.path / "home");
    j.env.emplace_back("OBSERVED", observed.string());
    j.env.emplace_back("BUNDLER_PRIVATE_SOURCE", base() + "/gems/");
    j.env.emplace_back("BUNDLER_PRIVATE_CREDENTIALS", gem_credentials);
    j.kill_grace_ms = 200;
    return j;
  }

  bundler_config config() {
    bundler_config c;
    c.api.http = http;
    c.api.github_api = github.base_url();
    c.api.github_token = github_token;
    c.api.attempts = 3;
    c.api.first_backoff_ms = 10;
    c.api.jitter = 0;
    c.data_dir = data.string();
    return c;
  }

  provider_outcome run(provider_job j) {
    bundler_capistrano_provider(config())(sys, std::move(j), sink);
    BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); },
                            std::chrono::seconds(120)));
    std::lock_guard<std::mutex> guard{rec->mx};
    BOOST_TEST(rec->results.size() == 1u);
    return rec->results.front();
  }

  std::string log_text() {
    std::lock_guard<std::mutex> guard{rec->mx};
    std::string text;
    for (auto& line : rec->lines)
      text += line.text + "\n";
    return text;
  }

  bool has_line(const std::string& text) {
    std::lock_guard<std::mutex> guard{rec->mx};
    return rec->has_line_locked(text);
  }

  /// The requests whose target starts with `prefix`.
  std::vector<recorded_request> requests_to(const std::string& prefix) {
    std::vector<recorded_request> result;
    for (auto& r : github.requests())
      if (r.target.rfind(prefix, 0) == 0)
        result.push_back(r);
    return result;
  }

  bool fetched(const std::string& path) {
    return !requests_to(path).empty();
  }

  fs::path workspace() const {
    return data / "workspaces" / "23";
  }

  /// True once the provider's directory is gone (removed on a thread of
  /// its own after the outcome).
  bool workspace_goes() const {
    return eventually([&] { return !fs::exists(workspace()); });
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(bundler_capistrano_suite)

BOOST_AUTO_TEST_CASE(credentials_variable_follows_bundlers_naming) {
  BOOST_TEST(bundler_credentials_variable("https://gems.example-corp.com/p/")
             == "BUNDLE_GEMS__EXAMPLE___CORP__COM");
  BOOST_TEST(bundler_credentials_variable("gems.example.com")
             == "BUNDLE_GEMS__EXAMPLE__COM");
  BOOST_TEST(bundler_credentials_variable("http://127.0.0.1:8080/gems/")
             == "BUNDLE_127__0__0__1");
  BOOST_TEST(bundler_credentials_variable("https://u:p@Gems.Example.com")
             == "BUNDLE_GEMS__EXAMPLE__COM");
  BOOST_TEST(bundler_credentials_variable("https:///nohost").empty());
  BOOST_TEST(bundler_credentials_variable("bad host$").empty());
}

BOOST_FIXTURE_TEST_CASE(deploys_githubs_tarball_with_the_bundled_cap,
                        bundler_fixture) {
  capistrano_app();
  auto key = make_key("ed25519");
  auto j = job();
  // Heaven's one-line form of the key.
  j.env.emplace_back("DEPLOYMENT_PRIVATE_KEY", one_line_key(key.private_key));
  auto result = run(j);
  BOOST_TEST(result.state == deploy_state::success, log_text());
  BOOST_TEST(result.description
             == "Deployed feature/y (" + sha.substr(0, 7)
                  + ") to production with bundle exec cap");
  // GitHub: the link with the token in the header, then the archive from
  // the link (its own token in the query, no Authorization).
  auto links = requests_to("/repos/");
  BOOST_REQUIRE_EQUAL(links.size(), 1u);
  BOOST_TEST(links[0].method == "GET");
  BOOST_TEST(links[0].header("authorization")
             == std::string{"token "} + github_token);
  auto archives = requests_to("/codeload/");
  BOOST_REQUIRE_EQUAL(archives.size(), 1u);
  BOOST_TEST(archives[0].header("authorization").empty());
  // The private gem server: every request authenticated; the deployment
  // group's gem downloaded, the development group's never.
  auto gem_requests = requests_to("/gems/");
  BOOST_REQUIRE(!gem_requests.empty());
  for (auto& r : gem_requests)
    BOOST_TEST(r.header("authorization")
               == "Basic " + base64(std::string{gem_credentials}));
  BOOST_TEST(fetched("/gems/gems/heaven_probe-0.1.0.gem"));
  BOOST_TEST(!fetched("/gems/gems/heaven_devonly-0.1.0.gem"));
  BOOST_TEST(fs::is_directory(data / "gems" / "gems" / "heaven_probe-0.1.0"));
  // What cap saw: the ref, the deployment's values, the bundled gem, the
  // key only through the agent, no gem credentials.
  auto seen = read_file(observed);
  auto sock_at = seen.find("auth_sock=");
  BOOST_REQUIRE(sock_at != std::string::npos);
  auto sock = seen.substr(sock_at + 10,
                          seen.find('\n', sock_at) - sock_at - 10);
  BOOST_TEST(sock.rfind("/tmp/heaven-agent-", 0) == 0u);
  BOOST_TEST(seen
             == "branch=feature/y\n"
                "sha="
                  + sha
                  + " env=production task=deploy\n"
                    "probe=heaven_probe-loaded\n"
                    "key_in_env=false\n"
                    "credentials_in_env=false\n"
                    "auth_sock="
                  + sock
                  + "\n"
                    "gem_home="
                  + (data / "gems").string() + "\n");
  auto fingerprint = key_fingerprint(key.public_key);
  BOOST_TEST(read_file(observed.string() + "-agent").find(fingerprint)
             != std::string::npos);
  // The agent and the unpacked app are gone with the deployment.
  BOOST_TEST(!fs::exists(fs::path{sock}.parent_path()));
  BOOST_TEST(workspace_goes());
  // The log tells the steps, and holds no secret.
  auto log = log_text();
  BOOST_TEST(has_line("Running bundle install (the deployment and heaven "
                      "groups)"));
  BOOST_TEST(has_line("bundle install --without development"));
  BOOST_TEST(has_line("Running bundle exec cap production deploy"));
  BOOST_TEST(has_line("cap deployed feature/y"));
  for (std::string secret :
       {std::string{github_token}, std::string{link_token},
        std::string{"s3cr3t-gem-pw"}, key.private_key.substr(40, 30)})
    BOOST_TEST(log.find(secret) == std::string::npos, "secret in the log");
}

BOOST_FIXTURE_TEST_CASE(
  wrong_gem_credentials_fail_bundle_install_and_run_no_cap, bundler_fixture) {
  capistrano_app();
  auto j = job();
  set_env(j.env, "BUNDLER_PRIVATE_CREDENTIALS", "deployer:wrong");
  auto result = run(j);
  BOOST_TEST(result.state == deploy_state::failure);
  BOOST_TEST(result.description.rfind("bundle install exited with status ", 0)
             == 0u);
  BOOST_TEST(!fs::exists(observed));
  BOOST_TEST(!has_line("Running bundle exec cap production deploy"));
  BOOST_TEST(workspace_goes());
}

BOOST_FIXTURE_TEST_CASE(
  a_transient_link_failure_is_retried_a_missing_one_is_not, bundler_fixture) {
  repository({{"README", "no Gemfile here\n"}});
  link_failures = {503, 502};
  auto result = run(job());
  // Two retries, then the archive: the missing Gemfile is an error, before
  // any tool ran.
  BOOST_TEST(requests_to("/repos/").size() == 3u);
  BOOST_TEST(has_line("GitHub's tarball link failed (HTTP 503), attempt 1 of "
                      "3; trying again in 10 ms"));
  BOOST_TEST(has_line("GitHub's tarball link failed (HTTP 502), attempt 2 of "
                      "3; trying again in 20 ms"));
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "no Gemfile in the repository at " + sha.substr(0, 7)
                  + ": bundler_capistrano needs one");
  BOOST_TEST(workspace_goes());
}

BOOST_FIXTURE_TEST_CASE(a_refused_link_is_an_error_naming_the_token,
                        bundler_fixture) {
  repository({{"Gemfile", "gem \"capistrano\"\n"}});
  link_failures = {404};
  auto result = run(job());
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "could not get GitHub's tarball of octo/app at "
                  + sha.substr(0, 7)
                  + " (HTTP 404): can GITHUB_TOKEN read the repository?");
  BOOST_TEST(requests_to("/repos/").size() == 1u);
  BOOST_TEST(requests_to("/codeload/").empty());
}

BOOST_FIXTURE_TEST_CASE(an_unsafe_stage_or_task_runs_nothing, bundler_fixture) {
  repository({{"Gemfile", "gem \"capistrano\"\n"},
              {"Capfile", "raise 'cap must not run'\n"}});
  auto result = run(job("production;touch pwned"));
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "environment production;touch pwned is not a Capistrano "
                "stage name ([A-Za-z0-9_.-]+)");
  {
    std::lock_guard<std::mutex> guard{rec->mx};
    rec->results.clear();
  }
  result = run(job("production", "deploy;touch pwned"));
  BOOST_TEST(result.state == deploy_state::error);
  BOOST_TEST(result.description
             == "task deploy;touch pwned is not a deploy task");
  BOOST_TEST(!has_line("Running bundle install (the deployment and heaven "
                       "groups)"));
  BOOST_TEST(workspace_goes());
}

BOOST_FIXTURE_TEST_CASE(cancel_while_fetching_ends_at_once, bundler_fixture) {
  repository({{"Gemfile", "gem \"capistrano\"\n"}});
  // GitHub never answers in time: every link request is a 503 retried
  // after a long backoff.
  link_failures = {503, 503, 503};
  auto c = config();
  c.api.first_backoff_ms = 60000;
  auto provider = bundler_capistrano_provider(c)(sys, job(), sink).actor;
  BOOST_REQUIRE(github.wait_for(1));
  caf::anon_send(provider, cancel_atom::value);
  BOOST_REQUIRE(rec->wait([&] { return !rec->results.empty(); }));
  std::lock_guard<std::mutex> guard{rec->mx};
  BOOST_TEST(rec->results.front().state == deploy_state::failure);
  BOOST_TEST(rec->results.front().description == "cancelled");
}

BOOST_AUTO_TEST_SUITE_END()
