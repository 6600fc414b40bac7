// End-to-end test of the bundler_capistrano provider through the real
// `heaven serve`: the GitHub stand-in hands out a 302 to a real `git
// archive` of a Capistrano app, and heaven runs the real `bundle install`
// and `bundle exec cap` on it. No checkout is made: the clone URL names no
// repository at all.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr auto link_token = "e2eBUNDLERlinkTOKEN";

/// The `production` stage: `deploy` writes the branch and the sha it got
/// to $MARKER, locally (the stage names no server).
constexpr auto production_rb = R"rb(
task :deploy do
  run_locally do
    File.write(ENV.fetch("MARKER"), "#{fetch(:branch)} #{ENV["SHA"]}\n")
  end
  puts "bundled cap deployed #{fetch(:branch)}"
end
)rb";

struct bundler_world {
  fs::path tmp = make_temp_dir("e2e-bundler");
  fs::path origin = tmp / "origin";
  fs::path tarball = tmp / "app.tar.gz";
  fs::path marker = tmp / "marker";
  http_stub github;
  std::string sha;

  bundler_world() {
    run_checked("git init -q --initial-branch=main " + origin.string());
    write_file(origin / "Gemfile", "gem \"capistrano\", \"~> 3.17\"\n");
    write_file(origin / "Capfile", "require \"capistrano/setup\"\n");
    write_file(origin / "config" / "deploy.rb",
               "set :application, \"app\"\nset :scm, nil\n"
               "set :branch, ENV.fetch(\"BRANCH\", \"master\")\n");
    write_file(origin / "config" / "deploy" / "production.rb", production_rb);
    auto git = "git -C " + origin.string()
               + " -c user.name=t -c user.email=t@t ";
    run_checked(git + "add --all && " + git + "commit -q -m app");
    sha = run_checked(git + "rev-parse HEAD");
    run_checked(git + "archive --format=tar.gz --prefix=octo-app-"
                + sha.substr(0, 7) + "/ -o " + tarball.string() + " HEAD");
    github.respond_with([this](const recorded_request& r) {
      if (r.target == "/repos/octo/app/tarball/" + sha) {
        auto base = github.base_url();
        return stub_response{
          302,
          {{"Location", base + "codeload/app.tar.gz?token=" + link_token}},
          ""};
      }
      if (r.target == std::string{"/codeload/app.tar.gz?token="} + link_token)
        return stub_response{
          200, {{"Content-Type", "application/x-gzip"}}, read_file(tarball)};
      return stub_response{};
    });
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(e2e_bundler, bundler_world)

BOOST_AUTO_TEST_CASE(bundler_capistrano_deploys_githubs_tarball) {
  heaven_server h{
    tmp / "data", github.base_url(), {{"MARKER", marker.string()}}};
  json payload = {{"name", "app"},
                  {"config", {{"provider", "bundler_capistrano"}}}};
  auto event = deployment_event({.id = 7101,
                                 .sha = sha,
                                 .clone_url = "file:///nonexistent/repo.git",
                                 .payload = payload});
  auto res = h.post_event("deployment", "delivery-7101", event.dump());
  BOOST_REQUIRE_EQUAL(res.status, 201);
  auto row = h.wait_finished(id_of(h, 7101), 120);
  auto id = row.at("id").get<int64_t>();
  auto log = h.log(id);
  BOOST_TEST(row.at("state") == "success", log);
  BOOST_TEST(row.at("description")
             == "Deployed main (" + sha.substr(0, 7)
                  + ") to production with bundle exec cap");
  for (int i = 0; i < 200 && states(statuses(github, 7101)).size() < 3; ++i)
    std::this_thread::sleep_for(50ms);
  BOOST_TEST(states(statuses(github, 7101))
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  // cap ran with the ref and the sha.
  BOOST_TEST(read_file(marker) == "main " + sha + "\n");
  BOOST_TEST(log.find("bundled cap deployed main") != std::string::npos, log);
  BOOST_TEST(log.find("Running bundle exec cap production deploy")
               != std::string::npos,
             log);
  // The link's token stays out of the log; nothing was cloned, and the
  // unpacked app is gone; the gems directory is heaven's.
  BOOST_TEST(log.find(link_token) == std::string::npos);
  BOOST_TEST(!fs::exists(tmp / "data" / "mirrors"));
  auto unpacked = tmp / "data" / "workspaces" / std::to_string(id);
  BOOST_TEST(eventually([&] { return !fs::exists(unpacked); }));
  BOOST_TEST(fs::is_directory(tmp / "data" / "gems"));
  BOOST_TEST(read_file(h.stderr_file).find(link_token) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
