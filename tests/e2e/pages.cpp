// End to end in a real browser: the real `heaven serve`, a GitHub stand-in
// (the OAuth web host, the API, the statuses, the deployments heaven
// creates), real signed webhooks running real scripts from a real git
// repository, and Debian's Chromium, headless, driven through WebDriver by
// tests/browser/pages.py. The browser signs in through the OAuth redirects,
// reads the deployments, watches a running deployment's log grow without a
// reload, unlocks a lock, enables a repository and rolls back; this file
// then checks what GitHub was asked and what heaven's store holds. The
// refusals (nobody signed in, someone outside the team, a POST without the
// CSRF token) are checked over plain HTTP. Screenshots are saved to
// <build>/test-output/screenshots.
#include <boost/test/unit_test.hpp>

#include <algorithm>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log_book.hpp"
#include "base/text.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr auto client_id = "Iv1.pagesclient";
constexpr auto client_secret = "pages-CLIENT-secret-3c4d5e";
constexpr auto access_token = "gho_pagesUSERtoken77";
constexpr auto oauth_code = "c0de-pages-77";
constexpr auto created_id = 880001;

/// `text` with %XX and '+' decoded (a query's values).
std::string url_decode(std::string_view text) {
  std::string plus{text};
  std::replace(plus.begin(), plus.end(), '+', ' ');
  return percent_decode(plus);
}

/// The decoded value of `name` in the query of `target` ("" if absent).
std::string query_value(const std::string& target, const std::string& name) {
  auto q = target.find('?');
  if (q == std::string::npos)
    return {};
  std::string_view rest{target};
  rest.remove_prefix(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    if (pair.starts_with(name + "="))
      return url_decode(pair.substr(name.size() + 1));
    if (amp == std::string_view::npos)
      break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

/// The value of the cookie `name` among `res`'s Set-Cookie headers.
std::string cookie_of(const http_response& res, const std::string& name) {
  for (auto& c : headers_of(res, "set-cookie"))
    if (c.starts_with(name + "="))
      return c.substr(name.size() + 1, c.find(';') - name.size() - 1);
  return {};
}

/// The `value` of the first hidden `csrf` input in `html`.
std::string csrf_in(const std::string& html) {
  constexpr std::string_view mark = R"(name="csrf" value=")";
  auto at = html.find(mark);
  if (at == std::string::npos)
    return {};
  at += mark.size();
  return html.substr(at, html.find('"', at) - at);
}

/// The git repository the deployments check out: script/deploy finishes
/// at once; script/live prints a coloured line, then a line every 0.5 s
/// until the file `gate` exists.
struct repo {
  fs::path dir;

  repo(const fs::path& where, const fs::path& gate, const fs::path& started)
    : dir(where) {
    fs::create_directories(dir / "script");
    run_checked("git -C " + dir.string() + " init -q --initial-branch=main");
    script("deploy", "echo \"deploying $SHA to $DEPLOY_ENV\"\n");
    script("live", "printf '\\033[32mok\\033[0m\\n'\n"
                   "touch "
                     + started.string()
                     + "\n"
                       "i=0\n"
                       "while [ ! -e "
                     + gate.string()
                     + " ]; do\n"
                       "  i=$((i + 1)); echo \"still deploying ($i)\"; "
                       "sleep 0.5\n"
                       "done\n"
                       "echo finished\n");
  }

  void script(const std::string& name, const std::string& body) {
    auto path = dir / "script" / name;
    std::ofstream{path} << "#!/bin/sh\n" << body;
    fs::permissions(path, fs::perms::owner_all);
  }

  /// Commits everything; returns the new sha.
  std::string commit(const std::string& message) {
    run_checked("cd " + dir.string()
                + " && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m '"
                + message + "'");
    return run_checked("git -C " + dir.string() + " rev-parse HEAD");
  }
};

struct fixture {
  fs::path tmp = make_temp_dir("pages");
  fs::path data = tmp / "data";
  fs::path gate = tmp / "gate";
  fs::path started = tmp / "started";
  fs::path shots = fs::path{HEAVEN_TEST_OUTPUT_DIR} / "screenshots";
  repo app{tmp / "app", gate, started};
  std::string sha_a, sha_b;
  http_stub github;
  std::mutex mtx;
  /// The login GitHub's /user names (the stub's thread reads it).
  std::string login = "amy";

  void set_login(std::string name) {
    std::lock_guard<std::mutex> guard{mtx};
    login = std::move(name);
  }

  fixture() {
    sha_a = app.commit("first");
    std::ofstream{app.dir / "README"} << "second\n";
    sha_b = app.commit("second");
    fs::create_directories(shots);
    for (auto& f : fs::directory_iterator{shots})
      fs::remove(f.path());
    github.respond_with([this](const recorded_request& r) -> stub_response {
      auto json_type = string_pairs{{"Content-Type", "application/json"}};
      if (r.method == "GET" && r.target.starts_with("/login/oauth/authorize?"))
        // GitHub's sign-in, already agreed to: back to heaven at once.
        return {302,
                {{"Location", query_value(r.target, "redirect_uri")
                                + "?code=" + oauth_code
                                + "&state=" + query_value(r.target, "state")}},
                ""};
      if (r.method == "POST" && r.target == "/login/oauth/access_token")
        return {200, json_type,
                std::string{R"({"access_token":")"} + access_token
                  + R"(","token_type":"bearer","scope":"read:org"})"};
      if (r.method == "GET" && r.target == "/user") {
        std::lock_guard<std::mutex> guard{mtx};
        return {200, json_type, R"({"login":")" + login + R"(","id":7})"};
      }
      if (r.method == "GET" && r.target == "/teams/42/memberships/amy")
        return {200, json_type, R"({"state":"active","role":"member"})"};
      if (r.method == "GET" && r.target.starts_with("/teams/42/memberships/"))
        return {404, json_type, R"({"message":"Not Found"})"};
      if (r.method == "POST" && r.target == "/repos/octo/app/deployments")
        return {201, json_type, R"({"id":)" + std::to_string(created_id) + "}"};
      return {201, json_type, "{}"};
    });
  }

  ~fixture() {
    std::ofstream{gate} << "done\n";
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  nlohmann::json payload(const std::string& script) const {
    return {{"name", "app"},
            {"config", {{"provider", "shell"}, {"deploy_script", script}}}};
  }

  /// Posts a deployment event; returns heaven's id for it.
  int64_t post(const heaven_server& h, int64_t github_id,
               const std::string& sha, const std::string& environment,
               const std::string& script, const std::string& task = "deploy",
               const std::string& description = "Deploying from chat",
               const std::string& who = "alice") const {
    auto ev = deployment_event({.id = github_id,
                                .sha = sha,
                                .clone_url = "file://" + app.dir.string(),
                                .payload = payload(script),
                                .environment = environment,
                                .description = description,
                                .login = who});
    ev["deployment"]["task"] = task;
    auto res = h.post_event("deployment",
                            "delivery-" + std::to_string(github_id), ev.dump());
    BOOST_REQUIRE_MESSAGE(res.status == 201, res.body);
    return id_of(h, github_id);
  }

  /// GET /auth/github, then GitHub's redirect back (as `login`); returns
  /// the callback's answer.
  http_response sign_in(const heaven_server& h, const std::string& name) {
    set_login(name);
    auto start = http_call("GET", h.base() + "/auth/github");
    BOOST_REQUIRE_EQUAL(start.status, 302);
    auto state = cookie_of(start, "heaven_oauth_state");
    BOOST_REQUIRE_EQUAL(state.size(), 64u);
    return http_call("GET",
                     h.base() + "/auth/github/callback?code=" + oauth_code
                       + "&state=" + state,
                     {{"Cookie", "heaven_oauth_state=" + state}});
  }
};

std::string encoded_callback(uint16_t port) {
  return "http%3A%2F%2F127.0.0.1%3A" + std::to_string(port)
         + "%2Fauth%2Fgithub%2Fcallback";
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(e2e_pages, fixture)

BOOST_AUTO_TEST_CASE(a_team_member_uses_the_pages_in_a_real_browser) {
  // No silent skip: without the browser this test fails, saying why.
  for (auto need : {"/usr/bin/chromium", "/usr/bin/chromedriver"})
    BOOST_REQUIRE_MESSAGE(fs::exists(need),
                          std::string{need}
                            + " is missing: install Debian's chromium and "
                              "chromium-driver (setup.sh does)");
  auto selenium = run_command("/usr/bin/python3 -c 'import selenium'");
  BOOST_REQUIRE_MESSAGE(selenium.status == 0,
                        "python3-selenium is missing (setup.sh installs it): "
                          + selenium.out);

  auto port = free_port();
  auto base = "http://127.0.0.1:" + std::to_string(port);
  heaven_server h{data,
                  github.base_url(),
                  {{"HEAVEN_LISTEN", "127.0.0.1:" + std::to_string(port)},
                   {"HEAVEN_PUBLIC_URL", base},
                   {"GITHUB_CLIENT_ID", client_id},
                   {"GITHUB_CLIENT_SECRET", client_secret},
                   {"GITHUB_TEAM_ID", "42"},
                   {"OCTOKIT_WEB_ENDPOINT", github.base_url()}}};
  BOOST_REQUIRE_EQUAL(h.port, port);

  // What the pages show: A deployed, then B (so A can be rolled back to),
  // a lock on staging, a deployment still running, a disabled repository.
  auto a = post(h, 501, sha_a, "production", "script/deploy");
  BOOST_REQUIRE_EQUAL(h.wait_finished(a).at("state"), "success");
  auto b = post(h, 502, sha_b, "production", "script/deploy");
  BOOST_REQUIRE_EQUAL(h.wait_finished(b).at("state"), "success");
  auto lock = post(h, 503, sha_b, "staging", "script/deploy", "deploy:lock",
                   "incident 7: db failover", "bob");
  h.wait_finished(lock);
  auto running = post(h, 504, sha_b, "qa", "script/live");
  BOOST_REQUIRE(eventually([&] { return fs::exists(started); }, 60s));
  auto disabled = run_command(
    "HEAVEN_CONFIG=/dev/null " + std::string{HEAVEN_BINARY}
    + " repos disable octo/other --data-dir " + data.string());
  BOOST_REQUIRE_MESSAGE(disabled.status == 0, disabled.out);
  auto locks = http_call("GET", base + "/locks", h.authorization());
  BOOST_REQUIRE_EQUAL(locks.status, 200);
  BOOST_REQUIRE_EQUAL(json::parse(locks.body).size(), 1u);

  // Nobody signed in is sent to sign in.
  auto res = http_call("GET", base + "/ui/deployments");
  BOOST_TEST(res.status == 302);
  BOOST_TEST(headers_of(res, "location")
             == std::vector<std::string>{"/auth/github"});
  // The API token reads the pages, without a button.
  res = http_call("GET", base + "/ui/locks", h.authorization());
  BOOST_TEST(res.status == 200);
  BOOST_TEST(res.body.find("data-environment=\"staging\"") != std::string::npos,
             res.body);
  BOOST_TEST(res.body.find("action=\"/ui/locks/unlock\"") == std::string::npos,
             res.body);

  // Someone outside the team: 403 and no session.
  res = sign_in(h, "mallory");
  BOOST_TEST(res.status == 403, res.body);
  BOOST_TEST(cookie_of(res, "heaven_session").empty());

  // A POST without the CSRF token (or with a wrong one) changes nothing.
  res = sign_in(h, "amy");
  BOOST_TEST(res.status == 302, res.body);
  auto session = cookie_of(res, "heaven_session");
  BOOST_REQUIRE_EQUAL(session.size(), 64u);
  string_pairs form = {{"Cookie", "heaven_session=" + session},
                       {"Content-Type", "application/x-www-form-urlencoded"}};
  auto page = http_call("GET", base + "/ui/locks", {form[0]});
  BOOST_TEST(page.status == 200);
  auto csrf = csrf_in(page.body);
  BOOST_TEST(!csrf.empty(), page.body);
  for (auto body :
       {std::string{"repo=octo%2Fapp&environment=staging"},
        "repo=octo%2Fapp&environment=staging&csrf=" + std::string(64, '0')}) {
    res = http_call("POST", base + "/ui/locks/unlock", form, body);
    BOOST_TEST(res.status == 403, body);
  }
  BOOST_TEST(
    json::parse(http_call("GET", base + "/locks", h.authorization()).body)
      .size()
    == 1u);

  // The browser.
  auto states = json{{std::to_string(a), "success"},
                     {std::to_string(b), "success"},
                     {std::to_string(running), "running"}};
  auto script = fs::path{HEAVEN_SOURCE_DIR} / "tests" / "browser" / "pages.py";
  // Chromium makes its singleton's directory in TMPDIR and leaves it: here,
  // the test's own directory, not the host's /tmp.
  auto browser_tmp = tmp / "browser-tmp";
  fs::create_directories(browser_tmp);
  auto ran = run_command(
    "TMPDIR=" + browser_tmp.string() + " timeout 300 /usr/bin/python3 "
    + script.string() + " --base " + base + " --running "
    + std::to_string(running) + " --rollback " + std::to_string(a)
    + " --states '" + states.dump() + "' --screenshots " + shots.string());
  BOOST_TEST_MESSAGE("pages.py:\n" + ran.out);
  BOOST_TEST(ran.status == 0, ran.out);
  auto at = ran.out.rfind("summary: ");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, ran.out);
  auto summary = json::parse(ran.out.substr(at + 9));
  for (auto name :
       {"deployments.png", "live-log.png", "locks.png", "repositories.png",
        "rollback.png", "deployments-phone.png"}) {
    BOOST_TEST(fs::exists(shots / name), name);
    BOOST_TEST_MESSAGE("screenshot: " << (shots / name).string());
  }
  BOOST_TEST(summary.at("signed_in_as") == "amy");
  BOOST_TEST(summary.at("unlock_notice") == "The lock is removed.");
  BOOST_TEST(summary.at("enable_notice")
             == "The repository is enabled: heaven acts on its events.");
  BOOST_TEST(summary.at("rollback_notice")
             == "GitHub is asked for a deployment rolling back to this one; "
                "it appears in the list when GitHub sends it.");

  // What heaven asked GitHub's sign-in, exactly: mallory's and amy's over
  // plain HTTP, then the browser's (which followed the authorize redirect).
  std::vector<recorded_request> oauth;
  for (auto& r : github.requests())
    if (r.target.starts_with("/login/") || r.target == "/user"
        || r.target.starts_with("/teams/"))
      oauth.push_back(r);
  std::vector<std::string> asked;
  for (auto& r : oauth)
    asked.push_back(r.method + " " + r.target.substr(0, r.target.find('?')));
  BOOST_TEST(asked
               == (std::vector<std::string>{
                 "POST /login/oauth/access_token", "GET /user",
                 "GET /teams/42/memberships/mallory",
                 "POST /login/oauth/access_token", "GET /user",
                 "GET /teams/42/memberships/amy", "GET /login/oauth/authorize",
                 "POST /login/oauth/access_token", "GET /user",
                 "GET /teams/42/memberships/amy"}),
             boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(oauth.size(), 10u);
  auto& authorize = oauth[6];
  auto state = query_value(authorize.target, "state");
  BOOST_TEST(state.size() == 64u);
  BOOST_TEST(authorize.target
             == std::string{"/login/oauth/authorize?client_id="} + client_id
                  + "&redirect_uri=" + encoded_callback(port)
                  + "&scope=read%3Aorg&state=" + state);
  auto& exchange = oauth[7];
  BOOST_TEST(exchange.header("accept") == "application/json");
  BOOST_TEST(exchange.header("content-type")
             == "application/x-www-form-urlencoded");
  BOOST_TEST(exchange.header("authorization") == "");
  BOOST_TEST(exchange.body
             == std::string{"client_id="} + client_id
                  + "&client_secret=" + client_secret + "&code=" + oauth_code
                  + "&redirect_uri=" + encoded_callback(port));
  for (auto k : {8, 9}) {
    BOOST_TEST(oauth[k].header("authorization")
               == std::string{"Bearer "} + access_token);
    BOOST_TEST(oauth[k].header("accept") == "application/vnd.github+json");
    BOOST_TEST(oauth[k].body == "");
  }

  // The unlock and the switch really happened.
  BOOST_TEST(http_call("GET", base + "/locks", h.authorization()).body == "[]");
  auto repos = run_command("HEAVEN_CONFIG=/dev/null "
                           + std::string{HEAVEN_BINARY} + " repos --data-dir "
                           + data.string());
  BOOST_TEST(repos.out.find("octo/other\tactive\t") != std::string::npos,
             repos.out);

  // The rollback: GitHub is asked to deploy A's sha again, as amy.
  std::vector<recorded_request> created;
  BOOST_TEST(eventually(
    [&] {
      created.clear();
      for (auto& r : github.requests())
        if (r.method == "POST" && r.target == "/repos/octo/app/deployments")
          created.push_back(r);
      return !created.empty();
    },
    30s));
  BOOST_REQUIRE_EQUAL(created.size(), 1u);
  BOOST_TEST(created[0].header("authorization")
             == std::string{"token "} + e2e_github_token);
  auto body = json::parse(created[0].body);
  auto expected_payload = payload("script/deploy");
  expected_payload["actor"] = "amy";
  BOOST_TEST(body.at("ref") == sha_a);
  BOOST_TEST(body.at("environment") == "production");
  BOOST_TEST(body.at("task") == "deploy");
  BOOST_TEST(body.at("auto_merge") == false);
  BOOST_TEST(body.at("payload") == expected_payload, body.dump());
  BOOST_TEST(body.at("description")
             == "Roll back to deployment 501 (" + sha_a.substr(0, 7)
                  + "), asked by amy on heaven");
  BOOST_TEST(body.size() == 6u, body.dump());

  // The running deployment ends when the gate opens.
  std::ofstream{gate} << "open\n";
  BOOST_TEST(h.wait_finished(running).at("state") == "success");
  // Following from a byte offset (the page's data-from) sends the rest of
  // the log only.
  auto whole = h.log(running);
  auto from = whole.find("still deploying (2)");
  BOOST_REQUIRE(from != std::string::npos);
  auto rest = http_call("GET",
                        base + "/deployments/" + std::to_string(running)
                          + "/log?token=" + log_token(h.log_key(), running)
                          + "&from=" + std::to_string(from));
  BOOST_TEST(rest.status == 200);
  BOOST_TEST(rest.body == whole.substr(from));
  BOOST_TEST(h.stop() == 0);
  auto own = read_text(h.stderr_file);
  BOOST_TEST(own.find(client_secret) == std::string::npos);
  BOOST_TEST(own.find(access_token) == std::string::npos);
  BOOST_TEST(own.find(session) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
