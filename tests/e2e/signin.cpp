// End to end: sign-in with GitHub (the OAuth web flow) through the real
// `heaven serve`, with a GitHub stand-in playing both the web host (authorize,
// access token) and the API (user, team membership). The requests heaven
// makes of GitHub are asserted exactly; a member's session reads
// /deployments and /locks, anyone else gets 403 and no session.
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "tools/support/heaven_process.hpp"
#include "tools/support/http_call.hpp"
#include "tools/support/http_stub.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

constexpr auto client_id = "Iv1.e2eclient";
constexpr auto client_secret = "e2e-CLIENT-secret-9f8e7d";
constexpr auto access_token = "gho_e2eUSERtoken42";
constexpr auto callback = "https%3A%2F%2Fheaven.example.test%2Fauth%2Fgithub"
                          "%2Fcallback";

/// The value of cookie `name` set by `set_cookie` ("name=value; ...").
std::string cookie_of(const std::string& set_cookie, const std::string& name) {
  if (set_cookie.rfind(name + "=", 0) != 0)
    return {};
  auto end = set_cookie.find(';');
  return set_cookie.substr(name.size() + 1, end - name.size() - 1);
}

bool is_hex(const std::string& s, std::size_t size) {
  return s.size() == size
         && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

struct fixture {
  fs::path tmp = make_temp_dir("signin");
  http_stub github;
  /// The login GitHub's /user names (the stub's thread reads it).
  std::mutex mtx;
  std::string login = "amy";

  void set_login(std::string name) {
    std::lock_guard<std::mutex> guard{mtx};
    login = std::move(name);
  }

  fixture() {
    github.respond_with([this](const recorded_request& r) -> stub_response {
      auto json = string_pairs{{"Content-Type", "application/json"}};
      if (r.method == "POST" && r.target == "/login/oauth/access_token")
        return {200, json,
                std::string{R"({"access_token":")"} + access_token
                  + R"(","token_type":"bearer","scope":"read:org"})"};
      if (r.method == "GET" && r.target == "/user") {
        std::lock_guard<std::mutex> guard{mtx};
        return {200, json, R"({"login":")" + login + R"(","id":7})"};
      }
      if (r.method == "GET" && r.target == "/teams/42/memberships/amy")
        return {200, json, R"({"state":"active","role":"member"})"};
      if (r.method == "GET" && r.target == "/orgs/octo/members/amy")
        return {204, {}, ""};
      if (r.method == "GET" && r.target.starts_with("/orgs/octo/members/"))
        return {404, json, R"({"message":"Not Found"})"};
      if (r.method == "GET" && r.target.starts_with("/teams/42/memberships/"))
        return {404, json, R"({"message":"Not Found"})"};
      return {201, json, "{}"};
    });
  }

  ~fixture() {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  heaven_server::env_list sign_in_env() const {
    return {{"GITHUB_CLIENT_ID", client_id},
            {"GITHUB_CLIENT_SECRET", client_secret},
            {"GITHUB_TEAM_ID", "42"},
            {"OCTOKIT_WEB_ENDPOINT", github.base_url()}};
  }

  /// GET /auth/github; returns the state heaven bound to the browser.
  std::string start_sign_in(const heaven_server& h) {
    auto res = http_call("GET", h.base() + "/auth/github");
    BOOST_TEST(res.status == 302);
    auto cookies = headers_of(res, "set-cookie");
    BOOST_REQUIRE_EQUAL(cookies.size(), 1u);
    auto state = cookie_of(cookies[0], "heaven_oauth_state");
    BOOST_TEST(is_hex(state, 64), cookies[0]);
    BOOST_TEST(cookies[0]
               == "heaven_oauth_state=" + state
                    + "; Path=/auth/github; Max-Age=600; HttpOnly; "
                      "SameSite=Lax; Secure");
    BOOST_TEST(
      headers_of(res, "location")
      == std::vector<std::string>{
        github.base_url() + "login/oauth/authorize?client_id=" + client_id
        + "&redirect_uri=" + callback + "&scope=read%3Aorg&state=" + state});
    return state;
  }

  /// GitHub's redirect back to heaven, with `state` in the query and
  /// `cookie_state` in the browser's cookie.
  http_response come_back(const heaven_server& h, const std::string& state,
                          const std::string& cookie_state) {
    string_pairs headers;
    if (!cookie_state.empty())
      headers.emplace_back("Cookie", "heaven_oauth_state=" + cookie_state);
    return http_call(
      "GET", h.base() + "/auth/github/callback?code=c0de-42&state=" + state,
      headers);
  }
};

string_pairs session(const std::string& id) {
  return {{"Cookie", "theme=dark; heaven_session=" + id}};
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(e2e_signin, fixture)

BOOST_AUTO_TEST_CASE(a_team_member_signs_in_reads_and_signs_out) {
  heaven_server h{tmp / "data", github.base_url(), sign_in_env()};
  auto state = start_sign_in(h);
  BOOST_TEST(github.requests().empty());
  auto res = come_back(h, state, state);
  BOOST_TEST(res.status == 302, res.body);
  BOOST_TEST(headers_of(res, "location") == std::vector<std::string>{"/"});
  auto cookies = headers_of(res, "set-cookie");
  BOOST_REQUIRE_EQUAL(cookies.size(), 2u);
  auto id = cookie_of(cookies[0], "heaven_session");
  BOOST_TEST(is_hex(id, 64), cookies[0]);
  BOOST_TEST(cookies[0]
             == "heaven_session=" + id
                  + "; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure");
  BOOST_TEST(cookies[1]
             == "heaven_oauth_state=; Path=/auth/github; Max-Age=0; HttpOnly; "
                "SameSite=Lax; Secure");
  // What heaven asked GitHub, exactly.
  auto asked = github.requests();
  BOOST_REQUIRE_EQUAL(asked.size(), 3u);
  BOOST_TEST(asked[0].method == "POST");
  BOOST_TEST(asked[0].target == "/login/oauth/access_token");
  BOOST_TEST(asked[0].header("accept") == "application/json");
  BOOST_TEST(asked[0].header("content-type")
             == "application/x-www-form-urlencoded");
  BOOST_TEST(asked[0].header("authorization") == "");
  BOOST_TEST(asked[0].body
             == std::string{"client_id="} + client_id + "&client_secret="
                  + client_secret + "&code=c0de-42&redirect_uri=" + callback);
  BOOST_TEST(asked[1].method == "GET");
  BOOST_TEST(asked[1].target == "/user");
  BOOST_TEST(asked[1].header("authorization")
             == std::string{"Bearer "} + access_token);
  BOOST_TEST(asked[1].header("accept") == "application/vnd.github+json");
  BOOST_TEST(asked[1].body == "");
  BOOST_TEST(asked[2].method == "GET");
  BOOST_TEST(asked[2].target == "/teams/42/memberships/amy");
  BOOST_TEST(asked[2].header("authorization")
             == std::string{"Bearer "} + access_token);
  for (auto& r : asked)
    BOOST_TEST(r.target.find(client_secret) == std::string::npos);

  // The session reads /deployments and /locks, not /metrics.
  auto list = http_call("GET", h.base() + "/deployments", session(id));
  BOOST_TEST(list.status == 200);
  BOOST_TEST(list.body == "[]");
  auto locks = http_call("GET", h.base() + "/locks", session(id));
  BOOST_TEST(locks.status == 200);
  BOOST_TEST(locks.body == "[]");
  BOOST_TEST(http_call("GET", h.base() + "/metrics", session(id)).status
             == 401);
  // The API token still reads them.
  BOOST_TEST(
    http_call("GET", h.base() + "/deployments", h.authorization()).status
    == 200);
  // An unknown session is nobody.
  auto other = std::string(64, 'a');
  res = http_call("GET", h.base() + "/deployments", session(other));
  BOOST_TEST(res.status == 401);
  BOOST_TEST(res.body == R"({"error":"unauthorized"})");

  // Signing out ends the session and clears its cookie.
  res = http_call("POST", h.base() + "/auth/signout", session(id));
  BOOST_TEST(res.status == 303);
  BOOST_TEST(headers_of(res, "set-cookie")
             == std::vector<std::string>{
               "heaven_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; "
               "Secure"});
  res = http_call("GET", h.base() + "/deployments", session(id));
  BOOST_TEST(res.status == 401);
  BOOST_TEST(res.body == R"({"error":"unauthorized"})");

  BOOST_TEST(h.stop() == 0);
  auto own = read_text(h.stderr_file);
  BOOST_TEST(own.find("sign-in: amy signed in") != std::string::npos, own);
  BOOST_TEST(own.find(client_secret) == std::string::npos, own);
  BOOST_TEST(own.find(id) == std::string::npos, own);
  BOOST_TEST(own.find(access_token) == std::string::npos, own);
  BOOST_TEST(own.find(state) == std::string::npos, own);
}

BOOST_AUTO_TEST_CASE(someone_outside_the_team_gets_403_and_no_session) {
  set_login("eve");
  heaven_server h{tmp / "data", github.base_url(), sign_in_env()};
  auto state = start_sign_in(h);
  auto res = come_back(h, state, state);
  BOOST_TEST(res.status == 403);
  BOOST_TEST(res.body == R"({"error":"not a member of the team 42"})");
  BOOST_TEST(headers_of(res, "set-cookie").empty());
  auto asked = github.requests();
  BOOST_REQUIRE_EQUAL(asked.size(), 3u);
  BOOST_TEST(asked[2].target == "/teams/42/memberships/eve");
  BOOST_TEST(h.stop() == 0);
  auto own = read_text(h.stderr_file);
  BOOST_TEST(own.find("sign-in: eve is not a member of team 42 (404)")
               != std::string::npos,
             own);
  BOOST_TEST(own.find(client_secret) == std::string::npos, own);
}

BOOST_AUTO_TEST_CASE(an_organisation_lets_in_its_members_only) {
  auto env = sign_in_env();
  env.erase(env.begin() + 2); // GITHUB_TEAM_ID
  env.emplace_back("HEAVEN_GITHUB_ORG", "octo");
  heaven_server h{tmp / "data", github.base_url(), env};
  auto state = start_sign_in(h);
  auto res = come_back(h, state, state);
  BOOST_TEST(res.status == 302, res.body);
  auto cookies = headers_of(res, "set-cookie");
  BOOST_REQUIRE_EQUAL(cookies.size(), 2u);
  auto id = cookie_of(cookies[0], "heaven_session");
  BOOST_TEST(http_call("GET", h.base() + "/deployments", session(id)).status
             == 200);
  set_login("eve");
  state = start_sign_in(h);
  res = come_back(h, state, state);
  BOOST_TEST(res.status == 403);
  BOOST_TEST(res.body
             == R"({"error":"not a member of the organisation octo"})");
  BOOST_TEST(headers_of(res, "set-cookie").empty());
  std::vector<std::string> asked;
  for (auto& r : github.requests())
    asked.push_back(r.method + " " + r.target);
  BOOST_TEST(asked
               == (std::vector<std::string>{
                 "POST /login/oauth/access_token", "GET /user",
                 "GET /orgs/octo/members/amy", "POST /login/oauth/access_token",
                 "GET /user", "GET /orgs/octo/members/eve"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_wrong_or_missing_state_is_403_and_asks_github_nothing) {
  heaven_server h{tmp / "data", github.base_url(), sign_in_env()};
  auto state = start_sign_in(h);
  auto other = start_sign_in(h);
  for (auto [query, cookie] :
       {std::pair{state, other}, std::pair{state, std::string{}},
        std::pair{std::string{}, state}}) {
    auto res = come_back(h, query, cookie);
    BOOST_TEST(res.status == 403);
    BOOST_TEST(res.body == R"({"error":"sign-in state mismatch"})");
    BOOST_TEST(headers_of(res, "set-cookie").empty());
  }
  BOOST_TEST(github.requests().empty());
}

BOOST_AUTO_TEST_CASE(a_client_id_without_a_team_or_org_refuses_to_start) {
  auto out = run_command(
    "cd " + tmp.string()
    + " && env -i PATH=$PATH GITHUB_WEBHOOK_SECRET=s GITHUB_CLIENT_ID=x "
      "GITHUB_CLIENT_SECRET=y HEAVEN_DATA_DIR="
    + (tmp / "data").string() + " " + HEAVEN_BINARY + " serve 2>&1");
  BOOST_TEST(out.status == 2, out.out);
  BOOST_TEST(out.out.find("GITHUB_CLIENT_ID is set, but neither GITHUB_TEAM_ID "
                          "nor HEAVEN_GITHUB_ORG")
               != std::string::npos,
             out.out);
  BOOST_TEST(!fs::exists(tmp / "data" / "heaven.db"));
}

BOOST_AUTO_TEST_SUITE_END()
