#include "actors/ingress_auth.hpp"

#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include "actors/ingress_route.hpp"
#include "base/text.hpp"

namespace heaven {

namespace {

/// `base` and `path` with one '/' between them.
std::string join(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/')
    base.remove_suffix(1);
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return std::string{base} + "/" + std::string{path};
}

std::string cookie(std::string_view name, std::string_view value,
                   std::string_view path, long long max_age, bool secure) {
  auto c = std::string{name} + "=" + std::string{value} + "; Path="
           + std::string{path} + "; Max-Age=" + std::to_string(max_age)
           + "; HttpOnly; SameSite=Lax";
  if (secure)
    c += "; Secure";
  return c;
}

/// The JSON object of a 200 answer, or null.
nlohmann::json object_of(const http_response& res) {
  if (res.status != 200)
    return nullptr;
  auto j = nlohmann::json::parse(res.body, nullptr, false);
  return j.is_object() ? j : nlohmann::json{};
}

string_pairs api_headers(std::string_view token) {
  return {{"Accept", "application/vnd.github+json"},
          {"Authorization", "Bearer " + std::string{token}},
          {"User-Agent", "heaven"}};
}

} // namespace

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
    throw std::runtime_error("no random bytes from the system");
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes);
  for (auto b : buf) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

std::string callback_url(const sign_in_options& o) {
  return join(o.public_url, "auth/github/callback");
}

std::string authorize_location(const sign_in_options& o,
                               std::string_view state) {
  return join(o.web_endpoint, "login/oauth/authorize")
         + "?client_id=" + percent_encode(o.client_id)
         + "&redirect_uri=" + percent_encode(callback_url(o)) + "&scope="
         + percent_encode("read:org") + "&state=" + percent_encode(state);
}

bool secure_cookies(const sign_in_options& o) {
  return o.public_url.starts_with("https://");
}

std::string session_cookie(std::string_view id, std::chrono::seconds max_age,
                           bool secure) {
  return cookie(session_cookie_name, id, "/", max_age.count(), secure);
}

std::string state_cookie(std::string_view state, bool secure) {
  return cookie(state_cookie_name, state, "/auth/github", 600, secure);
}

std::string cleared_cookie(std::string_view name, std::string_view path,
                           bool secure) {
  return cookie(name, "", path, 0, secure);
}

std::optional<std::string> callback_code(std::string_view query,
                                         std::string_view cookie_header) {
  auto state = query_param(query, "state");
  auto bound = cookie_value(cookie_header, state_cookie_name);
  if (state.empty() || bound.empty() || !equal_constant_time(state, bound))
    return std::nullopt;
  auto code = percent_decode(query_param(query, "code"));
  if (code.empty())
    return std::nullopt;
  return code;
}

http_request token_request(const sign_in_options& o, std::string_view code) {
  http_request req;
  req.method = "POST";
  req.url = join(o.web_endpoint, "login/oauth/access_token");
  req.headers = {{"Accept", "application/json"},
                 {"Content-Type", "application/x-www-form-urlencoded"},
                 {"User-Agent", "heaven"}};
  req.body = "client_id=" + percent_encode(o.client_id) + "&client_secret="
             + percent_encode(o.client_secret) + "&code=" + percent_encode(code)
             + "&redirect_uri=" + percent_encode(callback_url(o));
  req.timeout_ms = 10000;
  return req;
}

std::optional<std::string> access_token_of(const http_response& res) {
  auto j = object_of(res);
  if (!j.is_object() || !j.contains("access_token")
      || !j["access_token"].is_string())
    return std::nullopt;
  auto token = j["access_token"].get<std::string>();
  if (token.empty())
    return std::nullopt;
  return token;
}

http_request user_request(const sign_in_options& o, std::string_view token) {
  http_request req;
  req.url = join(o.api_endpoint, "user");
  req.headers = api_headers(token);
  req.timeout_ms = 10000;
  return req;
}

std::optional<std::string> login_of(const http_response& res) {
  auto j = object_of(res);
  if (!j.is_object() || !j.contains("login") || !j["login"].is_string())
    return std::nullopt;
  auto login = j["login"].get<std::string>();
  // GitHub's logins: letters, digits and '-', at most 39 (it is logged and
  // goes into a URL).
  if (login.empty() || login.size() > 39
      || login.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
           != std::string::npos)
    return std::nullopt;
  return login;
}

http_request membership_request(const sign_in_options& o,
                                std::string_view login,
                                std::string_view token) {
  http_request req;
  req.url = o.team_id.empty()
              ? join(o.api_endpoint, "orgs/" + percent_encode(o.org)
                                       + "/members/" + percent_encode(login))
              : join(o.api_endpoint, "teams/" + percent_encode(o.team_id)
                                       + "/memberships/"
                                       + percent_encode(login));
  req.headers = api_headers(token);
  req.timeout_ms = 10000;
  return req;
}

bool is_member(const sign_in_options& o, const http_response& res) {
  if (o.team_id.empty())
    return res.status == 204;
  auto j = object_of(res);
  return j.is_object() && j.contains("state") && j["state"] == "active";
}

std::string session_table::open(std::string login, clock::time_point now) {
  auto id = random_hex(32);
  std::lock_guard<std::mutex> guard{mtx_};
  // Expired sessions are forgotten as new ones come.
  std::erase_if(sessions_,
                [now](auto& kv) { return kv.second.expires <= now; });
  sessions_[id] = session{std::move(login), now + ttl_};
  return id;
}

bool session_table::valid(std::string_view id, clock::time_point now) {
  return !login_of(id, now).empty();
}

std::string session_table::login_of(std::string_view id,
                                    clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto it = sessions_.find(std::string{id});
  if (it == sessions_.end())
    return {};
  if (it->second.expires <= now) {
    sessions_.erase(it);
    return {};
  }
  return it->second.login;
}

void session_table::close(std::string_view id) {
  std::lock_guard<std::mutex> guard{mtx_};
  sessions_.erase(std::string{id});
}

std::size_t session_table::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return sessions_.size();
}

} // namespace heaven
