// Tests for sign-in with GitHub's plain parts: the requests heaven makes,
// how it reads GitHub's answers and the callback's query and cookies, the
// cookies it sets, the sessions it keeps, and how routing takes the
// /auth routes.
#include <boost/test/unit_test.hpp>

#include <set>
#include <string>

#include "actors/ingress_auth.hpp"
#include "actors/ingress_route.hpp"

using namespace heaven;
using namespace std::chrono_literals;

namespace {

sign_in_options team() {
  sign_in_options o;
  o.client_id = "Iv1.client";
  o.client_secret = "client s3cret&=";
  o.team_id = "42";
  o.web_endpoint = "http://127.0.0.1:9/web/";
  o.api_endpoint = "http://127.0.0.1:9/api";
  o.public_url = "https://heaven.example.test/";
  return o;
}

sign_in_options org() {
  auto o = team();
  o.team_id = "";
  o.org = "octo";
  return o;
}

http_response answer(int status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

route_decision route(std::string_view method, std::string_view target,
                     std::string_view cookie, bool sign_in = true) {
  request_parts req;
  req.method = method;
  req.target = target;
  req.cookie = cookie;
  route_options opts;
  opts.secret = "s";
  opts.log_key = "k";
  opts.github_sign_in = sign_in;
  return route_request(std::move(req), opts);
}

} // namespace

BOOST_AUTO_TEST_SUITE(ingress_auth)

BOOST_AUTO_TEST_CASE(the_authorize_redirect_names_the_callback_and_state) {
  BOOST_TEST(callback_url(team())
             == "https://heaven.example.test/auth/github/callback");
  BOOST_TEST(authorize_location(team(), "abc123")
             == "http://127.0.0.1:9/web/login/oauth/authorize"
                "?client_id=Iv1.client"
                "&redirect_uri=https%3A%2F%2Fheaven.example.test%2Fauth%2F"
                "github%2Fcallback"
                "&scope=read%3Aorg&state=abc123");
  BOOST_TEST(secure_cookies(team()));
  auto plain = team();
  plain.public_url = "http://heaven.local:8080";
  BOOST_TEST(!secure_cookies(plain));
  BOOST_TEST(callback_url(plain)
             == "http://heaven.local:8080/auth/github/"
                "callback");
}

BOOST_AUTO_TEST_CASE(cookies_are_http_only_lax_and_secure_over_https) {
  BOOST_TEST(session_cookie("ab", 43200s, true)
             == "heaven_session=ab; Path=/; Max-Age=43200; HttpOnly; "
                "SameSite=Lax; Secure");
  BOOST_TEST(session_cookie("ab", 43200s, false)
             == "heaven_session=ab; Path=/; Max-Age=43200; HttpOnly; "
                "SameSite=Lax");
  BOOST_TEST(state_cookie("st", true)
             == "heaven_oauth_state=st; Path=/auth/github; Max-Age=600; "
                "HttpOnly; SameSite=Lax; Secure");
  BOOST_TEST(cleared_cookie("heaven_session", "/", false)
             == "heaven_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
}

BOOST_AUTO_TEST_CASE(the_callback_wants_the_state_of_its_cookie) {
  const std::string cookie = "x=1; heaven_oauth_state=s7a7e";
  BOOST_TEST(callback_code("code=c0de&state=s7a7e", cookie).value_or("-")
             == "c0de");
  BOOST_TEST(callback_code("state=s7a7e&code=c%2F1", cookie).value_or("-")
             == "c/1");
  for (auto [query, cookies] :
       {std::pair{"code=c0de&state=other", cookie},
        std::pair{"code=c0de&state=s7a7", cookie},
        std::pair{"code=c0de", cookie}, std::pair{"code=c0de&state=", cookie},
        std::pair{"state=s7a7e", cookie},
        std::pair{"code=&state=s7a7e", cookie},
        std::pair{"code=c0de&state=s7a7e", std::string{}},
        std::pair{"code=c0de&state=s7a7e", std::string{"heaven_oauth_state="}},
        std::pair{"code=c0de&state=s7a7e", std::string{"heaven_session=s7a7e"}},
        std::pair{"code=c0de&state=", std::string{"heaven_oauth_state="}}})
    BOOST_TEST(!callback_code(query, cookies), query << " / " << cookies);
}

BOOST_AUTO_TEST_CASE(the_code_exchange_keeps_the_secret_in_the_body) {
  auto req = token_request(team(), "c0de");
  BOOST_TEST(req.method == "POST");
  BOOST_TEST(req.url == "http://127.0.0.1:9/web/login/oauth/access_token");
  BOOST_TEST(req.url.find("s3cret") == std::string::npos);
  BOOST_TEST(req.body
             == "client_id=Iv1.client&client_secret=client%20s3cret%26%3D"
                "&code=c0de&redirect_uri=https%3A%2F%2Fheaven.example.test%2F"
                "auth%2Fgithub%2Fcallback");
  BOOST_TEST(
    (req.headers
     == string_pairs{{"Accept", "application/json"},
                     {"Content-Type", "application/x-www-form-urlencoded"},
                     {"User-Agent", "heaven"}}));
  BOOST_TEST(access_token_of(answer(200, R"({"access_token":"gho_1",)"
                                         R"("scope":"read:org"})"))
               .value_or("-")
             == "gho_1");
  for (auto bad :
       {answer(200, R"({"error":"bad_verification_code"})"),
        answer(200, R"({"access_token":""})"),
        answer(200, R"({"access_token":7})"), answer(200, "access_token=x"),
        answer(500, R"({"access_token":"gho_1"})"), answer(0, "")})
    BOOST_TEST(!access_token_of(bad), bad.body);
}

BOOST_AUTO_TEST_CASE(user_and_membership_are_asked_with_the_users_token) {
  auto user = user_request(team(), "gho_1");
  BOOST_TEST(user.method == "GET");
  BOOST_TEST(user.url == "http://127.0.0.1:9/api/user");
  auto headers = string_pairs{{"Accept", "application/vnd.github+json"},
                              {"Authorization", "Bearer gho_1"},
                              {"User-Agent", "heaven"}};
  BOOST_TEST((user.headers == headers));
  BOOST_TEST(login_of(answer(200, R"({"login":"amy","id":1})")).value_or("-")
             == "amy");
  BOOST_TEST(!login_of(answer(401, R"({"login":"amy"})")));
  BOOST_TEST(!login_of(answer(200, R"({"id":1})")));
  BOOST_TEST(login_of(answer(200, R"({"login":"a-B-9"})")).value_or("-")
             == "a-B-9");
  for (auto odd : {R"({"login":""})", R"({"login":"a/b"})",
                   R"({"login":"a
b"})",
                   R"({"login":"a b"})",
                   R"({"login":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})"})
    BOOST_TEST(!login_of(answer(200, odd)), odd);
  auto t = membership_request(team(), "amy", "gho_1");
  BOOST_TEST(t.method == "GET");
  BOOST_TEST(t.url == "http://127.0.0.1:9/api/teams/42/memberships/amy");
  BOOST_TEST((t.headers == headers));
  auto o = membership_request(org(), "amy", "gho_1");
  BOOST_TEST(o.url == "http://127.0.0.1:9/api/orgs/octo/members/amy");
  // A team wants an active membership; an organisation answers 204.
  BOOST_TEST(is_member(team(), answer(200, R"({"state":"active"})")));
  BOOST_TEST(!is_member(team(), answer(200, R"({"state":"pending"})")));
  BOOST_TEST(!is_member(team(), answer(404, R"({"state":"active"})")));
  BOOST_TEST(!is_member(team(), answer(204, "")));
  BOOST_TEST(is_member(org(), answer(204, "")));
  BOOST_TEST(!is_member(org(), answer(302, "")));
  BOOST_TEST(!is_member(org(), answer(404, "")));
  BOOST_TEST(!is_member(org(), answer(200, R"({"state":"active"})")));
}

BOOST_AUTO_TEST_CASE(sessions_expire_and_end) {
  session_table sessions{12h};
  auto t0 = session_table::clock::time_point{} + 1000h;
  auto a = sessions.open("amy", t0);
  auto b = sessions.open("bob", t0 + 1h);
  BOOST_TEST(a.size() == 64u);
  BOOST_TEST(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  BOOST_TEST(a != b);
  BOOST_TEST(sessions.valid(a, t0 + 12h - 1s));
  BOOST_TEST(!sessions.valid(a, t0 + 12h));
  // Forgotten once expired.
  BOOST_TEST(!sessions.valid(a, t0));
  BOOST_TEST(sessions.valid(b, t0 + 12h));
  BOOST_TEST(!sessions.valid("", t0));
  BOOST_TEST(!sessions.valid(b.substr(1), t0 + 1h));
  sessions.close(b);
  BOOST_TEST(!sessions.valid(b, t0 + 1h));
  BOOST_TEST(sessions.size() == 0u);
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i)
    ids.insert(random_hex(32));
  BOOST_TEST(ids.size() == 100u);
}

BOOST_AUTO_TEST_CASE(auth_routes_are_there_with_sign_in_only) {
  using kind = route_decision::kind;
  BOOST_TEST((route("GET", "/auth/github", "").what == kind::sign_in));
  auto cb = route("GET", "/auth/github/callback?code=c0de&state=s1",
                  "heaven_oauth_state=s1");
  BOOST_TEST((cb.what == kind::callback));
  BOOST_TEST(cb.code == "c0de");
  BOOST_TEST(cb.line == "GET /auth/github/callback");
  auto wrong = route("GET", "/auth/github/callback?code=c0de&state=s1",
                     "heaven_oauth_state=s2");
  BOOST_TEST(wrong.status == 403);
  BOOST_TEST(wrong.body == json_error("sign-in state mismatch"));
  auto out = route("POST", "/auth/signout", "heaven_session=abc");
  BOOST_TEST((out.what == kind::sign_out));
  BOOST_TEST(out.session == "abc");
  BOOST_TEST(route("POST", "/auth/signout", "").session == "");
  BOOST_TEST(route("GET", "/auth/signout", "").status == 405);
  BOOST_TEST(route("POST", "/auth/github", "").status == 405);
  for (auto target : {"/auth/github", "/auth/github/callback?code=c&state=s",
                      "/auth/signout"})
    BOOST_TEST(route("GET", target, "heaven_oauth_state=s", false).status
                 == 404,
               target);
}

BOOST_AUTO_TEST_SUITE_END()
