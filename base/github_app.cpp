#include "base/github_app.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>

#include "base/github.hpp"
#include "base/log_format.hpp"
#include "base/retry.hpp"
#include "base/text.hpp"
#include "base/thread_name.hpp"
#include "base/times.hpp"

namespace heaven {

namespace {

using nlohmann::json;

EVP_PKEY* pkey(void* key) {
  return static_cast<EVP_PKEY*>(key);
}

std::string base64url(std::string_view bytes) {
  auto text = base64_encode(bytes);
  for (auto& c : text) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  while (!text.empty() && text.back() == '=')
    text.pop_back();
  return text;
}

/// `text` with `\n` (and `\r\n`) escapes as real newlines: the one-line
/// form of a PEM key an environment file can hold.
std::string unescape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else if (text[i] == '\\' && i + 3 < text.size() && text[i + 1] == 'r'
               && text[i + 2] == '\\' && text[i + 3] == 'n') {
      out += '\n';
      i += 3;
    } else if (text[i] != '\r') {
      out += text[i];
    }
  }
  return out;
}

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

/// libcurl's progress callback: non-zero ends the transfer.
int abort_when_set(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0;
}

/// Sends `req` with libcurl (blocking; bounded by its timeout, and ended
/// early once `abort` is set).
http_response perform(const http_request& req, const std::string& ca_file,
                      const std::atomic<bool>& abort) {
  http_response res;
  std::unique_ptr<CURL, void (*)(CURL*)> curl{curl_easy_init(),
                                              curl_easy_cleanup};
  if (!curl) {
    res.error = "curl_easy_init failed";
    return res;
  }
  curl_slist* headers = nullptr;
  for (auto& [k, v] : req.headers)
    headers = curl_slist_append(headers, (k + ": " + v).c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list{
    headers, curl_slist_free_all};
  auto* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(req.body.size()));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout_ms));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!ca_file.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &res.body);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_when_set);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA,
                   const_cast<std::atomic<bool>*>(&abort));
  auto rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    res.error = curl_easy_strerror(rc);
    res.body.clear();
    return res;
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  res.status = static_cast<int>(status);
  return res;
}

} // namespace

std::shared_ptr<github_app> github_app::make(github_app_options opts,
                                             std::string& error) {
  if (opts.app_id.empty()
      || opts.app_id.find_first_not_of("0123456789") != std::string::npos) {
    error = "GITHUB_APP_ID must be the app's numeric id";
    return nullptr;
  }
  auto pem = unescape(opts.private_key);
  std::unique_ptr<BIO, void (*)(BIO*)> bio{
    BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free_all};
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr,
                                                const_cast<char*>(""))
                      : nullptr;
  if (!key) {
    error = "GITHUB_APP_PRIVATE_KEY is not a PEM private key (expected the "
            "app's .pem as GitHub gives it: -----BEGIN RSA PRIVATE KEY-----, "
            "or PKCS#8, its newlines real or \\n escapes)";
    return nullptr;
  }
  if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    error = "GITHUB_APP_PRIVATE_KEY is not an RSA key (GitHub Apps sign "
            "with RS256)";
    return nullptr;
  }
  std::shared_ptr<github_app> app{new github_app(std::move(opts), key)};
  // A key that cannot sign is found now, not at the first deployment.
  if (app->jwt().empty()) {
    error = "GITHUB_APP_PRIVATE_KEY cannot sign a JWT";
    return nullptr;
  }
  if (app->opts_.refresher)
    app->refresher_ = std::thread{[raw = app.get()] { raw->refresh_loop(); }};
  return app;
}

github_app::github_app(github_app_options opts, void* key)
  : opts_(std::move(opts)), key_(key) {
  opts_.private_key.clear(); // The parsed key is all it needs.
  if (!opts_.now)
    opts_.now = [] { return static_cast<int64_t>(std::time(nullptr)); };
}

github_app::~github_app() {
  stop();
  EVP_PKEY_free(pkey(key_));
}

void github_app::stop() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  abort_ = true;
  wake_.notify_all();
  if (refresher_.joinable())
    refresher_.join();
  // The askers' callbacks (actor handles) go now, not after their system.
  std::lock_guard lock{mutex_};
  wanted_repos_.clear();
}

int64_t github_app::now() const {
  return opts_.now();
}

std::string github_app::jwt() const {
  // GitHub's clock judges it: the wall clock, never the replaceable one.
  auto t = static_cast<int64_t>(std::time(nullptr));
  json claims;
  claims["iat"] = t - 60; // GitHub's clock may run behind.
  claims["exp"] = t + 540;
  claims["iss"] = opts_.app_id;
  auto input = base64url(R"({"alg":"RS256","typ":"JWT"})") + "."
               + base64url(claims.dump());
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(),
                                                         EVP_MD_CTX_free};
  std::size_t size = 0;
  if (!ctx
      || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                            pkey(key_))
           != 1
      || EVP_DigestSign(ctx.get(), nullptr, &size,
                        reinterpret_cast<const unsigned char*>(input.data()),
                        input.size())
           != 1)
    return {};
  std::string signature(size, '\0');
  if (EVP_DigestSign(
        ctx.get(), reinterpret_cast<unsigned char*>(&signature[0]), &size,
        reinterpret_cast<const unsigned char*>(input.data()), input.size())
      != 1)
    return {};
  signature.resize(size);
  return input + "." + base64url(signature);
}

bool github_app::usable(const token_entry& t) const {
  return !t.token.empty() && t.expires - now() >= opts_.margin_s;
}

std::string github_app::look_up(const std::string& repo,
                                int64_t& installation) {
  // As github_request builds it, but signed by the app (a Bearer JWT).
  github_api api{opts_.api_endpoint, {}};
  auto req = github_request(api, "GET", "repos/" + repo + "/installation");
  req.headers.emplace_back("Authorization", "Bearer " + jwt());
  req.timeout_ms = opts_.timeout_ms;
  auto res = perform(req, opts_.ca_file, abort_);
  if (res.status == 404) {
    installation = 0;
    return {};
  }
  if (res.status != 200)
    return "GitHub App " + opts_.app_id + ": could not find its installation "
           + "on " + repo + " (" + github_problem(res) + ")";
  auto doc = json::parse(res.body, nullptr, false);
  auto id = doc.is_object() ? doc.find("id") : doc.end();
  if (id == doc.end() || !id->is_number_integer() || id->get<int64_t>() <= 0)
    return "GitHub App " + opts_.app_id + ": GitHub's answer for the "
           + "installation on " + repo + " has no id";
  installation = id->get<int64_t>();
  return {};
}

std::string github_app::exchange(int64_t installation) {
  github_api api{opts_.api_endpoint, {}};
  auto req = github_request(api, "POST",
                            "app/installations/" + std::to_string(installation)
                              + "/access_tokens");
  req.headers.emplace_back("Authorization", "Bearer " + jwt());
  req.body = "{}";
  req.timeout_ms = opts_.timeout_ms;
  auto res = perform(req, opts_.ca_file, abort_);
  if (res.status != 201 && res.status != 200)
    return "GitHub App " + opts_.app_id
           + ": could not get a token of installation "
           + std::to_string(installation) + " (" + github_problem(res) + ")";
  auto doc = json::parse(res.body, nullptr, false);
  token_entry t;
  if (doc.is_object()) {
    t.token = doc.value("token", "");
    auto expires = parse_time(doc.value("expires_at", ""));
    t.expires = expires ? std::chrono::system_clock::to_time_t(*expires) : 0;
  }
  if (t.token.empty() || t.expires == 0)
    return "GitHub App " + opts_.app_id + ": GitHub's answer for a token of "
           + "installation " + std::to_string(installation)
           + " has no token or expires_at";
  learn_secret(t.token);
  t.issued = now();
  std::lock_guard lock{mutex_};
  tokens_[installation] = std::move(t);
  ++issued_;
  return {};
}

std::optional<repo_token> github_app::known(const std::string& repo) {
  if (auto f = failing_.find(repo); f != failing_.end()) {
    if (std::chrono::steady_clock::now() < f->second.until)
      return repo_token{{}, 0, f->second.why};
    failing_.erase(f);
  }
  auto r = repos_.find(repo);
  if (r == repos_.end())
    return std::nullopt;
  if (r->second.installation == 0) {
    if (r->second.not_installed_until > now())
      return repo_token{opts_.fallback_token, 0, {}};
    return std::nullopt;
  }
  auto t = tokens_.find(r->second.installation);
  if (t != tokens_.end() && usable(t->second))
    return repo_token{t->second.token, r->second.installation, {}};
  return std::nullopt;
}

std::optional<repo_token>
github_app::token_at_hand(const std::string& repo,
                          std::function<void()> ready) {
  if (!opts_.refresher)
    return token_for(repo);
  std::lock_guard lock{mutex_};
  if (auto answer = known(repo))
    return answer;
  if (stopping_)
    return repo_token{{}, 0, "heaven is stopping: no token is fetched"};
  auto& waiting = wanted_repos_[repo];
  if (ready)
    waiting.push_back(std::move(ready));
  wake_.notify_all();
  return std::nullopt;
}

repo_token github_app::token_for(const std::string& repo) {
  {
    std::lock_guard lock{mutex_};
    if (auto answer = known(repo))
      return *answer;
  }
  std::lock_guard fetching{fetch_};
  int64_t installation = 0;
  {
    std::lock_guard lock{mutex_};
    // Fetched by another caller while this one waited?
    if (auto answer = known(repo))
      return *answer;
    if (auto r = repos_.find(repo); r != repos_.end())
      installation = r->second.installation;
  }
  // A failure stands for a moment: callers waiting meanwhile get it too.
  auto failed = [&](std::string why) {
    std::lock_guard lock{mutex_};
    failing_[repo] = failure{
      std::chrono::steady_clock::now()
        + std::chrono::milliseconds(opts_.failure_pause_ms),
      why};
    return repo_token{{}, 0, std::move(why)};
  };
  if (installation == 0) {
    if (auto why = look_up(repo, installation); !why.empty())
      return failed(std::move(why));
    std::lock_guard lock{mutex_};
    auto& r = repos_[repo];
    r.installation = installation;
    if (installation == 0) {
      r.not_installed_until = now() + opts_.not_installed_s;
      spdlog::info("GitHub App {} is not installed on {}: its GitHub calls "
                   "use {}",
                   opts_.app_id, repo,
                   opts_.fallback_token.empty() ? "no token (none is set)"
                                                : "GITHUB_TOKEN");
      return repo_token{opts_.fallback_token, 0, {}};
    }
    if (auto t = tokens_.find(installation);
        t != tokens_.end() && usable(t->second))
      return repo_token{t->second.token, installation, {}};
  }
  if (auto why = exchange(installation); !why.empty()) {
    // The installation may be gone: find it again next time.
    {
      std::lock_guard lock{mutex_};
      repos_.erase(repo);
    }
    return failed(std::move(why));
  }
  std::lock_guard lock{mutex_};
  return repo_token{tokens_[installation].token, installation, {}};
}

void github_app::installation_seen(const std::string& repo,
                                   int64_t installation) {
  if (repo.empty() || installation <= 0)
    return;
  std::lock_guard lock{mutex_};
  auto& r = repos_[repo];
  r.installation = installation;
  r.not_installed_until = 0;
  if (!opts_.refresher || wanted_.count(installation) > 0)
    return;
  if (auto t = tokens_.find(installation);
      t != tokens_.end() && usable(t->second))
    return;
  if (auto f = wanted_failed_.find(installation); f != wanted_failed_.end()) {
    if (std::chrono::steady_clock::now() < f->second)
      return;
    wanted_failed_.erase(f);
  }
  wanted_.insert(installation);
  wake_.notify_all();
}

bool github_app::refused(const std::string& repo, const std::string& token) {
  std::lock_guard lock{mutex_};
  auto r = repos_.find(repo);
  if (r == repos_.end() || r->second.installation == 0)
    return false;
  auto t = tokens_.find(r->second.installation);
  if (t == tokens_.end())
    return true; // Already forgotten: the next one is new.
  if (!token.empty() && t->second.token != token)
    return token != opts_.fallback_token;
  tokens_.erase(t);
  spdlog::warn("GitHub refused installation {}'s token for {} (HTTP 401): "
               "getting a new one",
               r->second.installation, repo);
  return true;
}

int64_t github_app::tokens_issued() const {
  std::lock_guard lock{mutex_};
  return issued_;
}

void github_app::refresh_loop() {
  name_this_thread("heaven.app");
  std::unique_lock lock{mutex_};
  while (!stopping_) {
    // Work asked for while the last round ran is done at once.
    wake_.wait_for(lock, std::chrono::seconds(1), [this] {
      return stopping_ || !wanted_.empty() || !wanted_repos_.empty();
    });
    if (stopping_)
      break;
    // Renew a token once it has used up most of its life beyond the
    // margin (an hour's token: five minutes before the margin), so callers
    // find a fresh one instead of waiting for it.
    std::vector<int64_t> due;
    for (auto& [id, t] : tokens_) {
      auto life = t.expires - t.issued - opts_.margin_s;
      auto ahead = std::min<int64_t>(300, std::max<int64_t>(life / 2, 0));
      if (t.expires - now() < opts_.margin_s + ahead)
        due.push_back(id);
    }
    std::set<int64_t> wanted;
    wanted.swap(wanted_);
    std::map<std::string, std::vector<std::function<void()>>> repos;
    repos.swap(wanted_repos_);
    lock.unlock();
    // Tokens an actor found nothing at hand for: fetched here, where
    // waiting on GitHub holds up no actor. Then the askers look again.
    for (auto& [repo, ready] : repos) {
      token_for(repo);
      if (abort_)
        return; // The app ends.
      for (auto& f : ready)
        f();
    }
    // First tokens an event asked for ahead of use (a caller may have
    // fetched one meanwhile: then there is nothing to do).
    for (auto id : wanted) {
      std::lock_guard fetching{fetch_};
      {
        std::lock_guard relock{mutex_};
        if (auto t = tokens_.find(id); t != tokens_.end() && usable(t->second))
          continue;
      }
      if (auto why = exchange(id); !why.empty()) {
        if (abort_)
          return; // The app ends.
        spdlog::warn("{} (fetching it ahead of use)", why);
        std::lock_guard relock{mutex_};
        wanted_failed_[id] = std::chrono::steady_clock::now()
                             + std::chrono::milliseconds(
                               opts_.failure_pause_ms);
      }
    }
    for (auto id : due) {
      std::lock_guard fetching{fetch_};
      if (auto why = exchange(id); !why.empty()) {
        if (abort_)
          return; // The app ends.
        spdlog::warn("{} (renewing it ahead of time)", why);
        // One that can no longer be used is fetched on use instead.
        std::lock_guard relock{mutex_};
        if (auto t = tokens_.find(id); t != tokens_.end() && !usable(t->second))
          tokens_.erase(t);
      }
    }
    lock.lock();
  }
}

std::string github_token_of(const http_request& req) {
  constexpr std::string_view prefix = "token ";
  for (auto& [k, v] : req.headers)
    if (k == "Authorization" && v.rfind(prefix, 0) == 0)
      return v.substr(prefix.size());
  return {};
}

void set_github_token(http_request& req, const std::string& token) {
  req.headers.erase(
    std::remove_if(req.headers.begin(), req.headers.end(),
                   [](const auto& h) { return h.first == "Authorization"; }),
    req.headers.end());
  if (!token.empty())
    req.headers.emplace_back("Authorization", "token " + token);
}

} // namespace heaven
