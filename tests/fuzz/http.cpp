// Fuzz target: bytes a client sends to heaven's port. They go through
// Beast's request parser with the ingress's limits, one request after
// another as on a keep-alive connection, and each request through
// route_request (routes, methods, the /events headers, signature and body,
// log and lock tokens, the read side's credentials), with a webhook secret,
// in insecure mode (so event bodies are parsed too), and with the read
// side guarded by a token and sign-in. Only the sockets and the actors
// are left out.
// Boost 1.74's Asio needs <utility> first under C++20.
#include <utility>

#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "actors/ingress_route.hpp"
#include "base/pages.hpp"
#include "base/webhook.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

namespace http = boost::beast::http;

namespace {

/// Small, so the fuzzer reaches the 413 path.
constexpr std::size_t max_body = 4096;

std::string_view view(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

void check(const route_decision& d, const http::request<http::string_body>& req,
           std::string_view target) {
  require(d.line
            == std::string{view(req.method_string())} + " "
                 + std::string{target.substr(0, target.find('?'))},
          "the log line is not \"METHOD /path\"");
  switch (d.what) {
    case route_decision::kind::answer:
      require(d.status == 200 || d.status == 302 || d.status == 400
                || d.status == 401 || d.status == 403 || d.status == 404
                || d.status == 405 || d.status == 422,
              "an unexpected status");
      // Redirects go only to heaven's own pages or its sign-in.
      require((d.status == 302) == !d.location.empty(),
              "Location is set exactly on 302");
      require(d.location.empty() || d.location == "/auth/github"
                || d.location == "/ui/deployments",
              "a redirect elsewhere");
      if (d.content_type.empty() && d.status != 302)
        require(nlohmann::json::accept(d.body), "an answer that is not JSON");
      else if (d.content_type.starts_with("text/html"))
        require(d.body.starts_with("<!DOCTYPE html>"),
                "an HTML answer that is not a page");
      else if (!d.content_type.empty())
        require(d.status == 200
                  && (d.body == pages::stylesheet()
                      || d.body == pages::script()),
                "a file that is not heaven's stylesheet or script");
      require((d.status == 405) == !d.allow.empty(),
              "Allow is set exactly on 405");
      break;
    case route_decision::kind::event:
      // The type comes from the request's own header, never from a guess.
      require(to_string(d.event.type) == view(req["X-GitHub-Event"]),
              "the event's kind is not the X-GitHub-Event it came with");
      require(!d.event.delivery.empty(), "an event without a delivery id");
      require(check_json_object(d.event.body).empty(),
              "an event body that is not a JSON object");
      break;
    case route_decision::kind::list:
      // The read side wants credentials the fuzzer does not have (or is
      // off).
      require(false, "the deployments answered without credentials");
      break;
    case route_decision::kind::health:
      require(view(req.method_string()) == "GET",
              "/healthz answered a method other than GET");
      break;
    case route_decision::kind::metrics:
      require(false, "the metrics answered without the API token");
      break;
    case route_decision::kind::sign_in:
      require(view(req.method_string()) == "GET", "sign-in but not a GET");
      break;
    case route_decision::kind::callback:
      // The fuzzer may send the state cookie with the same state.
      require(!d.code.empty(), "a callback without a code");
      break;
    case route_decision::kind::sign_out:
      require(view(req.method_string()) == "POST", "sign-out but not a POST");
      break;
    case route_decision::kind::page:
    case route_decision::kind::action:
      // Pages want a session or the API token, which the fuzzer does not
      // have.
      require(false, "a page answered without credentials");
      break;
    case route_decision::kind::locks:
    case route_decision::kind::log:
      // The tokens are HMACs of a key the fuzzer does not know.
      require(false, "a token was guessed");
      break;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto rest = text(data, size);
  route_options secure;
  secure.secret = "It's a Secret to Everybody";
  secure.log_key = "fuzz log key";
  secure.has_logs = true;
  route_options insecure;
  insecure.insecure = true;
  insecure.log_key = "fuzz log key";
  // The read side on, with a token and sign-in the fuzzer does not know.
  route_options guarded = secure;
  guarded.api_token = "fuzz api token";
  guarded.github_sign_in = true;
  guarded.session_login = [](std::string_view) { return std::string{}; };
  while (!rest.empty()) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(max_body);
    parser.eager(true);
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      auto n = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(n);
      if (ec == http::error::need_more && n > 0 && !rest.empty()) {
        ec = {};
        continue;
      }
      break;
    }
    // A body over the limit is answered 413 and the connection is dropped;
    // so is a bad request, and an unfinished one waits for its timeout.
    if (ec || !parser.is_done())
      return 0;
    auto req = parser.release();
    auto target = view(req.target());
    auto field = [&](auto name) { return view(req[name]); };
    for (auto* opts : {&secure, &insecure, &guarded}) {
      request_parts parts{view(req.method_string()),
                          target,
                          field("X-GitHub-Event"),
                          field("X-GitHub-Delivery"),
                          field("X-Hub-Signature-256"),
                          field(http::field::content_type),
                          field(http::field::authorization),
                          field(http::field::cookie),
                          req.body()};
      check(route_request(std::move(parts), *opts), req, target);
    }
    if (!req.keep_alive())
      return 0;
  }
  return 0;
}
