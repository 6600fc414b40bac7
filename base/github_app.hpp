/// heaven as a GitHub App (GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY): signs the
/// app's JWT (RS256) with its private key, finds each repository's
/// installation, and exchanges it for an installation token, cached per
/// installation and renewed before it has less than a minute left. Every
/// GitHub call heaven makes for a repository carries that repository's
/// token (see token_at_hand); repositories the app is not installed on fall
/// back to GITHUB_TOKEN. The key, the JWT and the tokens go only into
/// `Authorization` headers: never into a URL, an argv or a log line (each
/// token is taught to the log redaction as it is issued).
///
/// Thread-safe: every actor that talks to GitHub shares one. Actors ask
/// with token_at_hand, which never calls GitHub: a background thread (the
/// refresher) fetches what is not at hand, renews cached tokens ahead of
/// time, and fetches the first token of an installation a webhook event
/// names. token_for may block its caller on GitHub's API (at most a lookup
/// and an exchange, HTTP timeouts bounding them): only the refresher and
/// threads of their own (the command line) call it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/github.hpp"

namespace heaven {

struct github_app_options {
  /// GITHUB_APP_ID: the JWT's `iss`.
  std::string app_id;
  /// The app's private key: PEM (PKCS#1 or PKCS#8), its newlines real or
  /// `\n` escapes.
  std::string private_key;
  /// OCTOKIT_API_ENDPOINT, e.g. "https://api.github.com/" or
  /// "https://ghe.example.com/api/v3/".
  std::string api_endpoint = "https://api.github.com/";
  /// GITHUB_TOKEN: for repositories the app is not installed on ("" none).
  std::string fallback_token;
  /// HEAVEN_CA_FILE ("" the system's authorities).
  std::string ca_file;
  /// A token is never handed out with less than this many seconds left.
  int64_t margin_s = 60;
  /// How long "the app is not installed on this repository" (a 404) is
  /// believed before it is asked again.
  int64_t not_installed_s = 300;
  /// Whole-request timeout of one call to GitHub.
  int64_t timeout_ms = 30000;
  /// After a lookup or exchange for a repository failed, callers get that
  /// failure at once for this long instead of each calling GitHub (and
  /// blocking) again: in an outage at most one caller per repository waits
  /// on GitHub per pause.
  int64_t failure_pause_ms = 2000;
  /// Renew cached tokens ahead of time on a thread of its own.
  bool refresher = true;
  /// The clock tokens' lives are judged by, in Unix seconds (replaceable
  /// in tests; JWTs always use the wall clock).
  std::function<int64_t()> now;
};

/// A repository's credentials for GitHub.
struct repo_token {
  /// The token to send ("" when there is none: no installation and no
  /// GITHUB_TOKEN).
  std::string token;
  /// The installation it belongs to; 0 when it is GITHUB_TOKEN.
  int64_t installation = 0;
  /// Set when heaven could not get one just now (GitHub unreachable, an
  /// error answer): a passing failure, worded for a status description;
  /// `token` is then empty.
  std::string error;
};

class github_app {
public:
  /// The app of `opts`, or nullptr and `error` set (naming the setting,
  /// never showing the key) when the key or the id is unusable.
  static std::shared_ptr<github_app> make(github_app_options opts,
                                          std::string& error);

  ~github_app();
  github_app(const github_app&) = delete;
  github_app& operator=(const github_app&) = delete;

  /// A JWT for the app, signed now: {"alg":"RS256","typ":"JWT"},
  /// {"iat": now-60, "exp": now+540, "iss": app id}.
  std::string jwt() const;

  /// The token for `repo` ("owner/name"): its installation's (fetched or
  /// renewed when needed), else GITHUB_TOKEN when the app is not installed
  /// on it.
  repo_token token_for(const std::string& repo);

  /// The answer token_for would give for `repo` when it is at hand (a
  /// cached token, GITHUB_TOKEN for a repository known not to have the app,
  /// or a failure that still stands), without calling GitHub. Else nullopt:
  /// the refresher fetches it, and calls `ready` (if set) from its thread
  /// once it tried, whatever came of it. Without the refresher
  /// (options.refresher false) it is token_for.
  std::optional<repo_token> token_at_hand(const std::string& repo,
                                          std::function<void()> ready = {});

  /// A webhook event of `repo` named its installation: no need to ask.
  /// Without a token of that installation at hand, the refresher fetches
  /// one at once, so the deployment the event starts finds it ready.
  void installation_seen(const std::string& repo, int64_t installation);

  /// GitHub refused `token` for `repo` (HTTP 401): forgets it, so the next
  /// token_for gets a new one. Returns true when it was an installation
  /// token (worth one more try); false for GITHUB_TOKEN or an unknown one.
  /// An empty `token` stands for the installation's current one.
  bool refused(const std::string& repo, const std::string& token);

  /// Ends the refresher (a fetch under way gives up) and forgets who waits
  /// for a token: no callback runs after it returns, and token_at_hand
  /// answers what is not at hand with a failure. Called before the actors'
  /// system ends; the destructor calls it too.
  void stop();

  /// Installation tokens issued so far (for tests and the log).
  int64_t tokens_issued() const;

private:
  explicit github_app(github_app_options opts, void* key);

  struct token_entry {
    std::string token;
    int64_t expires = 0;
    int64_t issued = 0;
  };
  struct repo_entry {
    int64_t installation = 0;
    /// Not installed (a 404) until this time.
    int64_t not_installed_until = 0;
  };

  int64_t now() const;
  /// token_for's answer when it needs no call to GitHub (mutex_ held).
  std::optional<repo_token> known(const std::string& repo);
  /// Fetches a new token of `installation` (fetch_ held); "" or why not.
  std::string exchange(int64_t installation);
  /// Asks GitHub for `repo`'s installation (fetch_ held): the id, 0 when
  /// not installed, or why not.
  std::string look_up(const std::string& repo, int64_t& installation);
  /// Whether `t` may be handed out now.
  bool usable(const token_entry& t) const;
  void refresh_loop();

  github_app_options opts_;
  /// The EVP_PKEY (kept out of this header).
  void* key_;
  mutable std::mutex mutex_;
  /// Held while calling GitHub: one lookup or exchange at a time, so that
  /// concurrent callers wait for the token being fetched instead of
  /// fetching it again.
  std::mutex fetch_;
  std::map<std::string, repo_entry> repos_;
  std::map<int64_t, token_entry> tokens_;
  /// Repositories whose last lookup or exchange failed: until when that
  /// answer stands, and the failure.
  struct failure {
    std::chrono::steady_clock::time_point until;
    std::string why;
  };
  std::map<std::string, failure> failing_;
  /// Installations an event named while none of their tokens was at hand:
  /// the refresher fetches them next.
  std::set<int64_t> wanted_;
  /// Installations whose fetch ahead of use failed: not tried ahead of use
  /// again before this time.
  std::map<int64_t, std::chrono::steady_clock::time_point> wanted_failed_;
  /// Repositories token_at_hand found nothing at hand for: the refresher
  /// gets their tokens next, then calls these.
  std::map<std::string, std::vector<std::function<void()>>> wanted_repos_;
  int64_t issued_ = 0;
  bool stopping_ = false;
  /// Set when the app ends: a call to GitHub under way (the refresher's)
  /// gives up at once instead of holding the end up to its timeout.
  std::atomic<bool> abort_{false};
  std::condition_variable wake_;
  std::thread refresher_;
};

/// The token `req` carries in `Authorization: token ...` ("" none).
std::string github_token_of(const http_request& req);

/// Replaces the token `req` carries (none when `token` is empty).
void set_github_token(http_request& req, const std::string& token);

} // namespace heaven
