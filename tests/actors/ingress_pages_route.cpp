// Tests for route_request on the pages (/ui/...): who may see them, who may
// press their buttons (a session and its CSRF token), and what is read from
// the query and the forms; and the GitHub deployment a button asks for.
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/ingress_pages.hpp"
#include "actors/ingress_route.hpp"
#include "base/log_book.hpp"

using namespace heaven;

namespace {

const std::string key = "pages-log-key";
const std::string api_token = "pages-api-token";
const std::string live_session = "5e55";

using kind = route_decision::kind;
using page = route_decision::page_kind;
using act = route_decision::action_kind;

/// Routing with the API token and GitHub sign-in (one live session, amy's).
route_options options(bool token = true, bool sign_in = true) {
  route_options opts;
  opts.secret = "s";
  opts.log_key = key;
  opts.has_logs = true;
  if (token)
    opts.api_token = api_token;
  opts.github_sign_in = sign_in;
  if (sign_in)
    opts.session_login = [](std::string_view id) {
      return std::string{id == live_session ? "amy" : ""};
    };
  return opts;
}

struct request {
  std::string method = "GET";
  std::string target;
  std::string cookie;
  std::string authorization;
  std::string body;
};

route_decision route(const request& x, const route_options& opts = options()) {
  request_parts req;
  req.method = x.method;
  req.target = x.target;
  req.cookie = x.cookie;
  req.authorization = x.authorization;
  req.content_type = "application/x-www-form-urlencoded";
  req.body = x.body;
  return route_request(std::move(req), opts);
}

const std::string amy = "heaven_session=" + live_session;

/// The value of header `name` in `headers` ("" when absent).
std::string header(const string_pairs& headers, const std::string& name) {
  for (auto& [k, v] : headers)
    if (k == name)
      return v;
  return {};
}

std::string csrf() {
  return csrf_token(key, live_session);
}

} // namespace

BOOST_AUTO_TEST_SUITE(ingress_pages_route)

BOOST_AUTO_TEST_CASE(a_session_sees_pages_and_gets_its_csrf_token) {
  auto r = route({"GET", "/ui/locks", amy});
  BOOST_TEST((r.what == kind::page));
  BOOST_TEST((r.page == page::locks));
  BOOST_TEST(r.login == "amy");
  BOOST_TEST(r.csrf == csrf());
  BOOST_TEST(r.csrf.size() == 32u);
  // Another session's token differs.
  BOOST_TEST(csrf_token(key, "other") != r.csrf);
  BOOST_TEST(
    (route({"GET", "/ui/repositories", amy}).page == page::repositories));
  auto one = route({"GET", "/ui/deployments/42?done=rollback", amy});
  BOOST_TEST((one.page == page::deployment));
  BOOST_TEST(one.deployment_id == 42);
  BOOST_TEST(one.done == "rollback");
}

BOOST_AUTO_TEST_CASE(the_api_token_reads_pages_but_acts_on_nothing) {
  auto r = route({"GET", "/ui/deployments", "", "Bearer " + api_token});
  BOOST_TEST((r.what == kind::page));
  BOOST_TEST(r.login.empty());
  BOOST_TEST(r.csrf.empty());
  auto post = route({"POST", "/ui/locks/unlock", "", "Bearer " + api_token,
                     "repo=octo%2Fapp&environment=production&csrf=x"});
  BOOST_TEST(post.status == 403);
  BOOST_TEST((post.what == kind::answer));
  BOOST_TEST(post.content_type == "text/html; charset=utf-8");
}

BOOST_AUTO_TEST_CASE(nobody_signed_in_is_sent_to_sign_in) {
  for (auto cookie : {std::string{}, std::string{"heaven_session=dead"}}) {
    auto r = route({"GET", "/ui/deployments", cookie});
    BOOST_TEST((r.what == kind::answer));
    BOOST_TEST(r.status == 302);
    BOOST_TEST(header(answer_headers(r), "Location") == "/auth/github");
  }
  // Without sign-in, the API token is the only way: 401 with a challenge.
  auto r = route({"GET", "/ui/deployments"}, options(true, false));
  BOOST_TEST(r.status == 401);
  BOOST_TEST(header(answer_headers(r), "WWW-Authenticate")
             == "Bearer realm=\"heaven\"");
  BOOST_TEST(header(answer_headers(r), "Content-Type")
             == "text/html; charset=utf-8");
  // With neither, there are no pages (the assets stay: they hold no data).
  auto off = options(false, false);
  BOOST_TEST(route({"GET", "/ui/deployments"}, off).status == 404);
  BOOST_TEST(route({"GET", "/"}, off).status == 404);
  auto css = route({"GET", "/ui/assets/heaven.css"}, off);
  BOOST_TEST((css.what == kind::answer));
  BOOST_TEST(css.status == 200);
  BOOST_TEST(css.content_type == "text/css; charset=utf-8");
  BOOST_TEST(!css.body.empty());
  BOOST_TEST(route({"GET", "/ui/assets/heaven.js"}, off).content_type
             == "text/javascript; charset=utf-8");
  BOOST_TEST(route({"GET", "/ui/assets/other.js"}, off).status == 404);
}

BOOST_AUTO_TEST_CASE(the_root_leads_to_the_deployments) {
  auto r = route({"GET", "/", amy});
  BOOST_TEST(r.status == 302);
  BOOST_TEST(r.location == "/ui/deployments");
  BOOST_TEST(route({"POST", "/", amy}).status == 405);
}

BOOST_AUTO_TEST_CASE(actions_need_the_sessions_csrf_token) {
  auto body = "repo=octo%2Fapp&environment=production+eu&csrf=";
  // Without it, with another session's, with a wrong one: 403.
  for (auto token : {std::string{}, csrf_token(key, "other"),
                     std::string{"0123456789abcdef0123456789abcdef"}}) {
    auto r = route({"POST", "/ui/locks/unlock", amy, "", body + token});
    BOOST_TEST(r.status == 403);
    BOOST_TEST((r.what == kind::answer));
  }
  // Without a session, even with the right token of that session: 401.
  BOOST_TEST(route({"POST", "/ui/locks/unlock", "", "", body + csrf()}).status
             == 401);
  auto r = route({"POST", "/ui/locks/unlock", amy, "", body + csrf()});
  BOOST_TEST((r.what == kind::action));
  BOOST_TEST((r.action == act::unlock));
  BOOST_TEST(r.repo == "octo/app");
  BOOST_TEST(r.environment == "production eu");
  BOOST_TEST(r.login == "amy");
  // A GET of an action is not allowed; nor a POST of a page.
  BOOST_TEST(route({"GET", "/ui/locks/unlock", amy}).status == 405);
  BOOST_TEST(route({"POST", "/ui/locks", amy, "", "csrf=" + csrf()}).status
             == 405);
}

BOOST_AUTO_TEST_CASE(each_action_reads_its_fields) {
  auto on = route({"POST", "/ui/repositories/switch", amy, "",
                   "repo=octo%2Fother&active=1&csrf=" + csrf()});
  BOOST_TEST((on.action == act::switch_repository));
  BOOST_TEST(on.repo == "octo/other");
  BOOST_TEST(on.active);
  auto off = route({"POST", "/ui/repositories/switch", amy, "",
                    "repo=octo%2Fother&active=0&csrf=" + csrf()});
  BOOST_TEST(!off.active);
  BOOST_TEST(route({"POST", "/ui/repositories/switch", amy, "",
                    "repo=octo%2Fother&active=yes&csrf=" + csrf()})
               .status
             == 400);
  BOOST_TEST(route({"POST", "/ui/locks/unlock", amy, "",
                    "environment=production&csrf=" + csrf()})
               .status
             == 400);
  auto back = route(
    {"POST", "/ui/deployments/7/rollback", amy, "", "csrf=" + csrf()});
  BOOST_TEST((back.action == act::rollback));
  BOOST_TEST(back.deployment_id == 7);
  BOOST_TEST(
    (route({"POST", "/ui/deployments/7/redeploy", amy, "", "csrf=" + csrf()})
       .action
     == act::redeploy));
  BOOST_TEST(
    route({"POST", "/ui/deployments/7/destroy", amy, "", "csrf=" + csrf()})
      .status
    == 404);
  BOOST_TEST(route({"GET", "/ui/deployments/0", amy}).status == 404);
  BOOST_TEST(route({"GET", "/ui/deployments/x", amy}).status == 404);
}

BOOST_AUTO_TEST_CASE(the_list_reads_its_filter) {
  auto r = route({"GET",
                  "/ui/deployments?repo=octo%2Fapp&environment=production"
                  "&state=running&before=120",
                  amy});
  BOOST_TEST((r.page == page::deployments));
  BOOST_TEST(r.filter.repo == "octo/app");
  BOOST_TEST(r.filter.environment == "production");
  BOOST_TEST(r.filter.state == "running");
  BOOST_TEST(r.filter.before == 120);
  BOOST_TEST(r.filter.limit == 50);
  // Empty fields are no filter.
  auto all = route({"GET", "/ui/deployments?repo=&state=", amy});
  BOOST_TEST(all.filter.repo.empty());
  BOOST_TEST(all.filter.state.empty());
  BOOST_TEST(route({"GET", "/ui/deployments?state=happy", amy}).status == 400);
  BOOST_TEST(route({"GET", "/ui/deployments?before=-3", amy}).status == 400);
  BOOST_TEST(
    route({"GET", "/ui/deployments?repo=" + std::string(201, 'a'), amy}).status
    == 400);
}

BOOST_AUTO_TEST_CASE(the_live_log_starts_where_it_is_asked_to) {
  auto target = "/deployments/9/log?token=" + log_token(key, 9);
  auto whole = route({"GET", target});
  BOOST_TEST((whole.what == kind::log));
  BOOST_TEST(whole.log_from == 0u);
  auto tail = route({"GET", target + "&from=4096"});
  BOOST_TEST(tail.log_from == 4096u);
  BOOST_TEST(route({"GET", target + "&from=-1"}).status == 400);
}

BOOST_AUTO_TEST_SUITE_END()

// -- what "Deploy this sha again" and "Roll back" ask GitHub for -------------

BOOST_AUTO_TEST_SUITE(ingress_pages_actions)

BOOST_AUTO_TEST_CASE(deploying_again_repeats_the_deployment_for_the_person) {
  deployment_detail d;
  d.found = true;
  d.row.id = 12;
  d.row.github_id = 4321;
  d.row.repo = "octo/app";
  d.row.app = "shop";
  d.row.environment = "production";
  d.row.sha = "a10867b14bb761a232cd80139fbd4c0d33264240";
  d.row.task = "deploy:migrations";
  d.request.payload_json
    = R"({"name":"shop","actor":"hubot","config":{"provider":"shell"}})";
  auto payload = nlohmann::json{
    {"name", "shop"}, {"actor", "amy"}, {"config", {{"provider", "shell"}}}};
  BOOST_TEST(nlohmann::json::parse(redeploy_body(d, "amy", true))
             == (nlohmann::json{{"ref", d.row.sha},
                                {"environment", "production"},
                                {"task", "deploy:migrations"},
                                {"auto_merge", false},
                                {"payload", payload},
                                {"description",
                                 "Roll back to deployment 4321 (a10867b), "
                                 "asked by amy on heaven"}}));
  auto again = nlohmann::json::parse(redeploy_body(d, "amy", false));
  BOOST_TEST(again.at("description")
             == "Deploy a10867b again, asked by amy on heaven");
  BOOST_TEST(again.at("payload") == payload);
  // A payload that is not an object starts over; a deployment GitHub never
  // numbered is named by heaven's id.
  d.request.payload_json = "[1]";
  d.row.github_id = 0;
  d.row.task.clear();
  auto bare = nlohmann::json::parse(redeploy_body(d, "amy", true));
  BOOST_TEST(bare.at("payload") == (nlohmann::json{{"actor", "amy"}}));
  BOOST_TEST(bare.at("task") == "deploy");
  BOOST_TEST(bare.at("description")
             == "Roll back to deployment #12 (a10867b), asked by amy on "
                "heaven");
}

BOOST_AUTO_TEST_SUITE_END()
