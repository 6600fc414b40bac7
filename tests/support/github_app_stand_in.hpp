/// GitHub as a GitHub App meets it, for tests: an RSA key made with
/// OpenSSL's command line, JWTs checked by an independent implementation
/// (python3-jwt, run as /usr/bin/python3), installation tokens issued with
/// a short life, and every other API call checked for the token it
/// carries. Real HTTP on 127.0.0.1 (http_stub).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "tools/support/http_stub.hpp"

namespace heaven::test {

/// An app's RSA key pair, made by `openssl genrsa` in a directory.
struct app_key {
  /// PKCS#1 ("BEGIN RSA PRIVATE KEY"), as GitHub hands it out.
  std::filesystem::path private_pem;
  /// The same key as PKCS#8 ("BEGIN PRIVATE KEY").
  std::filesystem::path pkcs8_pem;
  std::filesystem::path public_pem;
};

/// Makes a 2048-bit key pair in `dir`.
app_key make_app_key(const std::filesystem::path& dir);

/// Checks `jwt` with python3-jwt against `public_pem`: "" when it is a
/// valid JWT of app `app_id` (header alg RS256 and typ JWT, a good
/// signature, `iss` the app id, `iat` in the past, `exp` after now and at
/// most 600 s after `iat`), else why not.
std::string verify_app_jwt(const std::string& jwt,
                           const std::filesystem::path& public_pem,
                           const std::string& app_id);

/// GitHub's API for a GitHub App, under `prefix` ("/" or "/api/v3/").
class app_github {
public:
  app_github(std::string app_id, std::filesystem::path public_pem,
             std::string prefix = "/");
  /// Lets held exchanges go (answered 503) before the server stops.
  ~app_github();

  /// The API base heaven is given: base URL + prefix.
  std::string api_url() const;

  /// The app is installed on `repo` as `installation`.
  void install(const std::string& repo, int64_t installation);
  /// Seconds each installation token lives.
  void token_life(int64_t seconds);
  /// The token accepted for repositories the app is not installed on.
  void fallback_token(std::string token);
  /// Revoke every token issued so far: a call carrying one gets a 401; a
  /// token issued later is accepted.
  void revoke_tokens();
  /// Revoke every token issued so far when the next call to `target`
  /// arrives (before looking at its token), once.
  void revoke_at(std::string target);
  /// Refuse every call carrying an installation token (true), as GitHub
  /// does when the app lost its access.
  void refuse_all(bool on);
  /// Answer the next `n` token exchanges with a 500.
  void fail_exchanges(int n);
  /// Hold every exchange of `installation` without an answer (as a GitHub
  /// that hangs does) until release_exchanges, or two minutes.
  void hold_exchanges(int64_t installation);
  void release_exchanges();
  /// Exchanges being held right now.
  int held_exchanges() const;
  /// Keep `path` holding the live tokens, one "<token> <expires_at>" a
  /// line (for a git server that accepts only those).
  void write_tokens_to(std::filesystem::path path);

  struct issued_token {
    int64_t installation = 0;
    std::string token;
    int64_t issued_at = 0;
    int64_t expires_at = 0;
  };
  /// Every token issued, in order.
  std::vector<issued_token> tokens() const;

  /// One API call (not a JWT call) and what the stand-in found of its
  /// token.
  struct use {
    std::string method;
    std::string target;
    std::string repo;
    /// The token it carried (`Authorization: token ...`).
    std::string token;
    /// Seconds left before that token expired (installation tokens).
    int64_t seconds_left = 0;
    /// "" when the token was the right one for the repository: a live,
    /// unrevoked token of its installation, or the fallback token where the
    /// app is not installed; else what was wrong.
    std::string problem;
    /// The answer's status.
    int status = 0;
    /// The request's body.
    std::string body;
  };
  std::vector<use> uses() const;

  /// What was wrong with each JWT that failed verification, and the number
  /// of JWT calls (lookups and exchanges).
  std::vector<std::string> jwt_problems() const;
  int jwt_calls() const;
  /// `GET /repos/{repo}/installation` calls so far.
  int lookups() const;

  /// The recording server underneath.
  http_stub stub;

private:
  stub_response handle(const recorded_request& r);
  stub_response api_call(const recorded_request& r, const std::string& repo);
  /// Rewrites tokens_file_ (mutex_ held).
  void write_tokens();

  std::string app_id_;
  std::filesystem::path public_pem_;
  std::string prefix_;
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> installs_;
  int64_t life_ = 3600;
  std::string fallback_;
  bool refuse_all_ = false;
  int fail_exchanges_ = 0;
  std::set<int64_t> held_;
  int holding_ = 0;
  bool closing_ = false;
  std::condition_variable released_;
  std::set<std::string> revoked_;
  std::vector<issued_token> tokens_;
  std::vector<use> uses_;
  std::vector<std::string> jwt_problems_;
  int jwt_calls_ = 0;
  int lookups_ = 0;
  std::filesystem::path tokens_file_;
  std::string revoke_at_;
};

} // namespace heaven::test
