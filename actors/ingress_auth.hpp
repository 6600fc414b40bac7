/// Sign-in with GitHub (the OAuth web flow) for the read side: the requests
/// heaven makes of GitHub, how it reads their answers, the cookies it sets,
/// and the sessions it keeps. The parts outsiders control (the callback's
/// query, cookies, GitHub's answers) are read here by plain functions, so
/// they can be tested without a connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "messages/types.hpp"

namespace heaven {

/// What sign-in needs of heaven's settings.
struct sign_in_options {
  std::string client_id;     ///< GITHUB_CLIENT_ID
  std::string client_secret; ///< GITHUB_CLIENT_SECRET
  /// GITHUB_TEAM_ID: only its active members are let in; else
  std::string team_id;
  /// HEAVEN_GITHUB_ORG: the organisation's members.
  std::string org;
  std::string web_endpoint; ///< OCTOKIT_WEB_ENDPOINT (authorize, token)
  std::string api_endpoint; ///< OCTOKIT_API_ENDPOINT (user, membership)
  std::string public_url;   ///< HEAVEN_PUBLIC_URL (the callback's base)
};

/// The session cookie's name.
inline constexpr std::string_view session_cookie_name = "heaven_session";
/// The cookie binding the OAuth `state` to the browser.
inline constexpr std::string_view state_cookie_name = "heaven_oauth_state";

/// `bytes` random bytes from the system's CSPRNG (OpenSSL's RAND_bytes),
/// as lower-case hex. Throws std::runtime_error when none can be had.
std::string random_hex(std::size_t bytes);

/// `<public_url>/auth/github/callback` (one '/' between them).
std::string callback_url(const sign_in_options& o);

/// The `Location` of `GET /auth/github`: GitHub's authorize page with
/// client_id, redirect_uri, scope `read:org` and `state`, percent-encoded.
std::string authorize_location(const sign_in_options& o,
                               std::string_view state);

/// Cookies are `Secure` when heaven's public URL is https.
bool secure_cookies(const sign_in_options& o);

/// `Set-Cookie` values. A session: `heaven_session=<id>; Path=/; HttpOnly;
/// SameSite=Lax` (`; Secure` when `secure`), kept by the browser for the
/// session's time. The state: on `/auth/github` only, for 10 minutes.
std::string session_cookie(std::string_view id, std::chrono::seconds max_age,
                           bool secure);
std::string state_cookie(std::string_view state, bool secure);
/// A cookie of `name` on `path` the browser drops at once.
std::string cleared_cookie(std::string_view name, std::string_view path,
                           bool secure);

/// The callback's `code`, when its query's `state` is the state cookie's
/// (both non-empty, compared in constant time); nullopt otherwise, and when
/// there is no code.
std::optional<std::string> callback_code(std::string_view query,
                                         std::string_view cookie_header);

/// The code exchange: POST `<web>/login/oauth/access_token`, `Accept:
/// application/json`, a form body with client_id, client_secret, code and
/// redirect_uri (the secret in the body only, never in the URL).
http_request token_request(const sign_in_options& o, std::string_view code);

/// The access token of GitHub's answer to `token_request` (nullopt on
/// anything but 200 with a JSON `access_token`).
std::optional<std::string> access_token_of(const http_response& res);

/// GET `<api>/user` with the user's token.
http_request user_request(const sign_in_options& o, std::string_view token);

/// The `login` of GitHub's answer to `user_request` (nullopt unless 200
/// with a login of GitHub's shape: letters, digits and '-', 1 to 39).
std::optional<std::string> login_of(const http_response& res);

/// The membership question: with a team, GET
/// `<api>/teams/<team_id>/memberships/<login>`; else GET
/// `<api>/orgs/<org>/members/<login>`.
http_request membership_request(const sign_in_options& o,
                                std::string_view login, std::string_view token);

/// Does GitHub's answer to `membership_request` let the person in? A team:
/// 200 with `"state":"active"`; an organisation: 204.
bool is_member(const sign_in_options& o, const http_response& res);

/// The sessions of signed-in people, in memory: each a random id (32 bytes,
/// hex) that lives `ttl`. Safe to use from any thread.
class session_table {
public:
  using clock = std::chrono::steady_clock;

  explicit session_table(std::chrono::seconds ttl) : ttl_(ttl) {
  }

  std::chrono::seconds ttl() const {
    return ttl_;
  }

  /// A new session of `login`, started at `now`; returns its id.
  std::string open(std::string login, clock::time_point now);

  /// Is `id` a session that has not expired at `now`? An expired one is
  /// forgotten.
  bool valid(std::string_view id, clock::time_point now);

  /// The login of session `id` when it has not expired at `now`, else ""
  /// (an expired one is forgotten).
  std::string login_of(std::string_view id, clock::time_point now);

  /// Ends session `id` (nothing when there is none).
  void close(std::string_view id);

  /// Sessions held (expired ones not yet forgotten included).
  std::size_t size() const;

private:
  struct session {
    std::string login;
    clock::time_point expires;
  };
  std::chrono::seconds ttl_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, session> sessions_;
};

} // namespace heaven
