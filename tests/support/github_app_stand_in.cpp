#include "tests/support/github_app_stand_in.hpp"

#include <chrono>
#include <ctime>
#include <fstream>
#include <random>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "tools/support/heaven_process.hpp"

namespace heaven::test {

namespace fs = std::filesystem;

namespace {

/// The checks of verify_app_jwt, in Python with python3-jwt (Debian's
/// python3-jwt, hence /usr/bin/python3 rather than whatever is on PATH).
constexpr const char* verifier = R"py(import sys, time, jwt
public_key = open(sys.argv[1]).read()
app_id = sys.argv[2]
token = open(sys.argv[3]).read().strip()
try:
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "RS256":
        raise ValueError("header alg is %r, not RS256" % header.get("alg"))
    if header.get("typ") != "JWT":
        raise ValueError("header typ is %r, not JWT" % header.get("typ"))
    claims = jwt.decode(token, public_key, algorithms=["RS256"],
                        issuer=app_id,
                        options={"require": ["iat", "exp", "iss"]})
    now = time.time()
    if claims["iat"] > now - 30:
        raise ValueError("iat is not back-dated (%d s before now)"
                         % (now - claims["iat"]))
    if claims["exp"] - claims["iat"] > 600:
        raise ValueError("exp - iat is %d s, more than 600"
                         % (claims["exp"] - claims["iat"]))
    if not isinstance(claims["iss"], str) or claims["iss"] != app_id:
        raise ValueError("iss is %r" % claims["iss"])
    print("ok")
except Exception as e:
    print("%s: %s" % (type(e).__name__, e))
    sys.exit(1)
)py";

std::string utc(int64_t t) {
  auto secs = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t now_s() {
  return static_cast<int64_t>(std::time(nullptr));
}

std::string random_token() {
  static std::mutex mx;
  static std::mt19937_64 rng{std::random_device{}()};
  static constexpr char chars[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::lock_guard lock{mx};
  std::string t = "ghs_";
  for (int i = 0; i < 36; ++i)
    t += chars[rng() % (sizeof(chars) - 1)];
  return t;
}

stub_response json_answer(int status, const nlohmann::json& body) {
  return stub_response{
    status, {{"Content-Type", "application/json"}}, body.dump()};
}

} // namespace

app_key make_app_key(const fs::path& dir) {
  app_key k{dir / "app.pem", dir / "app.pkcs8.pem", dir / "app.pub.pem"};
  // -traditional: PKCS#1, as GitHub's downloads are (OpenSSL 3 writes
  // PKCS#8 by default).
  run_checked("openssl genrsa -traditional -out '" + k.private_pem.string()
              + "' 2048");
  run_checked("openssl pkcs8 -topk8 -nocrypt -in '" + k.private_pem.string()
              + "' -out '" + k.pkcs8_pem.string() + "'");
  run_checked("openssl rsa -in '" + k.private_pem.string() + "' -pubout -out '"
              + k.public_pem.string() + "'");
  return k;
}

std::string verify_app_jwt(const std::string& jwt, const fs::path& public_pem,
                           const std::string& app_id) {
  static std::mutex mx;
  static fs::path dir;
  static int counter = 0;
  fs::path script, token_file;
  {
    std::lock_guard lock{mx};
    if (dir.empty()) {
      dir = make_temp_dir("jwt-verifier");
      std::ofstream{dir / "verify.py"} << verifier;
    }
    script = dir / "verify.py";
    token_file = dir / ("jwt-" + std::to_string(++counter));
  }
  // The JWT goes in a file, not on the command line.
  std::ofstream{token_file} << jwt;
  auto r = run_command("/usr/bin/python3 '" + script.string() + "' '"
                       + public_pem.string() + "' '" + app_id + "' '"
                       + token_file.string() + "'");
  fs::remove(token_file);
  while (!r.out.empty() && r.out.back() == '\n')
    r.out.pop_back();
  if (r.status == 0 && r.out == "ok")
    return {};
  return r.out.empty() ? "the verifier failed" : r.out;
}

app_github::app_github(std::string app_id, fs::path public_pem,
                       std::string prefix)
  : app_id_(std::move(app_id)), public_pem_(std::move(public_pem)),
    prefix_(std::move(prefix)) {
  stub.respond_with([this](const recorded_request& r) { return handle(r); });
}

app_github::~app_github() {
  std::unique_lock lock{mutex_};
  closing_ = true;
  held_.clear();
  released_.notify_all();
  released_.wait(lock, [this] { return holding_ == 0; });
}

void app_github::hold_exchanges(int64_t installation) {
  std::lock_guard lock{mutex_};
  held_.insert(installation);
}

void app_github::release_exchanges() {
  std::lock_guard lock{mutex_};
  held_.clear();
  released_.notify_all();
}

int app_github::held_exchanges() const {
  std::lock_guard lock{mutex_};
  return holding_;
}

std::string app_github::api_url() const {
  auto base = stub.base_url();
  base.pop_back(); // its '/'
  return base + prefix_;
}

void app_github::install(const std::string& repo, int64_t installation) {
  std::lock_guard lock{mutex_};
  installs_[repo] = installation;
}

void app_github::token_life(int64_t seconds) {
  std::lock_guard lock{mutex_};
  life_ = seconds;
}

void app_github::fallback_token(std::string token) {
  std::lock_guard lock{mutex_};
  fallback_ = std::move(token);
}

void app_github::revoke_tokens() {
  std::lock_guard lock{mutex_};
  for (auto& t : tokens_)
    revoked_.insert(t.token);
  write_tokens();
}

void app_github::revoke_at(std::string target) {
  std::lock_guard lock{mutex_};
  revoke_at_ = std::move(target);
}

void app_github::refuse_all(bool on) {
  std::lock_guard lock{mutex_};
  refuse_all_ = on;
}

void app_github::write_tokens_to(fs::path path) {
  std::lock_guard lock{mutex_};
  tokens_file_ = std::move(path);
  write_tokens();
}

void app_github::write_tokens() {
  if (tokens_file_.empty())
    return;
  auto tmp = tokens_file_.string() + ".tmp";
  {
    std::ofstream out{tmp};
    for (auto& t : tokens_)
      if (revoked_.count(t.token) == 0)
        out << t.token << ' ' << t.expires_at << '\n';
  }
  fs::rename(tmp, tokens_file_);
}

void app_github::fail_exchanges(int n) {
  std::lock_guard lock{mutex_};
  fail_exchanges_ = n;
}

std::vector<app_github::issued_token> app_github::tokens() const {
  std::lock_guard lock{mutex_};
  return tokens_;
}

std::vector<app_github::use> app_github::uses() const {
  std::lock_guard lock{mutex_};
  return uses_;
}

std::vector<std::string> app_github::jwt_problems() const {
  std::lock_guard lock{mutex_};
  return jwt_problems_;
}

int app_github::jwt_calls() const {
  std::lock_guard lock{mutex_};
  return jwt_calls_;
}

int app_github::lookups() const {
  std::lock_guard lock{mutex_};
  return lookups_;
}

stub_response app_github::handle(const recorded_request& r) {
  if (r.target.rfind(prefix_, 0) != 0)
    return json_answer(404, {{"message", "Not Found (outside the API)"}});
  auto parts = path_segments(r.target.substr(prefix_.size() - 1));
  bool lookup = r.method == "GET" && parts.size() == 4 && parts[0] == "repos"
                && parts[3] == "installation";
  bool exchange = r.method == "POST" && parts.size() == 4 && parts[0] == "app"
                  && parts[1] == "installations" && parts[3] == "access_tokens";
  if (lookup || exchange) {
    auto auth = r.header("authorization");
    std::string problem;
    if (auth.rfind("Bearer ", 0) != 0)
      problem = "no Bearer JWT: '" + auth.substr(0, 6) + "...'";
    else
      problem = verify_app_jwt(auth.substr(7), public_pem_, app_id_);
    std::unique_lock lock{mutex_};
    if (exchange && held_.count(std::stoll(parts[2])) > 0) {
      ++holding_;
      released_.wait_for(lock, std::chrono::minutes(2), [&] {
        return held_.count(std::stoll(parts[2])) == 0;
      });
      --holding_;
      released_.notify_all();
      if (closing_)
        return json_answer(503, {{"message", "the stand-in stops"}});
    }
    ++jwt_calls_;
    if (!problem.empty()) {
      jwt_problems_.push_back(problem);
      return json_answer(401, {{"message", "A JSON web token could not be "
                                           "decoded"}});
    }
    if (lookup) {
      ++lookups_;
      auto i = installs_.find(parts[1] + "/" + parts[2]);
      if (i == installs_.end())
        return json_answer(404, {{"message", "Not Found"}});
      return json_answer(200, {{"id", i->second},
                               {"app_id", std::stoll(app_id_)},
                               {"target_type", "Organization"}});
    }
    int64_t id = std::stoll(parts[2]);
    bool known = false;
    for (auto& [repo, inst] : installs_)
      known = known || inst == id;
    if (!known)
      return json_answer(404, {{"message", "Not Found"}});
    if (fail_exchanges_ > 0) {
      --fail_exchanges_;
      return json_answer(500, {{"message", "Server Error"}});
    }
    issued_token t{id, random_token(), now_s(), now_s() + life_};
    tokens_.push_back(t);
    write_tokens();
    return json_answer(
      201,
      {{"token", t.token},
       {"expires_at", utc(t.expires_at)},
       {"permissions",
        {{"deployments", "write"}, {"contents", "read"}, {"statuses", "read"}}},
       {"repository_selection", "all"}});
  }
  std::string repo;
  if (parts.size() >= 3 && parts[0] == "repos")
    repo = parts[1] + "/" + parts[2];
  return api_call(r, repo);
}

stub_response app_github::api_call(const recorded_request& r,
                                   const std::string& repo) {
  auto auth = r.header("authorization");
  use u{r.method, r.target, repo, {}, 0, {}, 0, r.body};
  if (auth.rfind("token ", 0) == 0)
    u.token = auth.substr(6);
  std::lock_guard lock{mutex_};
  if (!revoke_at_.empty() && r.target == revoke_at_) {
    revoke_at_.clear();
    for (auto& t : tokens_)
      revoked_.insert(t.token);
    write_tokens();
  }
  auto inst = installs_.find(repo);
  bool installation_token = false;
  if (inst != installs_.end()) {
    const issued_token* found = nullptr;
    for (auto& t : tokens_)
      if (t.token == u.token)
        found = &t;
    if (!found)
      u.problem = u.token.empty() ? "no token" : "not an issued token";
    else if (found->installation != inst->second)
      u.problem = "a token of installation "
                  + std::to_string(found->installation);
    else if (found->expires_at <= now_s())
      u.problem = "an expired token";
    else if (revoked_.count(u.token) > 0)
      u.problem = "a revoked token";
    installation_token = found != nullptr;
    if (found)
      u.seconds_left = found->expires_at - now_s();
  } else if (u.token != fallback_ || fallback_.empty()) {
    u.problem = "not the fallback token (the app is not installed on " + repo
                + ")";
  }
  if (u.problem.empty() && installation_token && refuse_all_)
    u.problem = "refused on purpose";
  stub_response res;
  if (!u.problem.empty()) {
    res = json_answer(401, {{"message", "Bad credentials"}});
  } else {
    auto parts = path_segments(r.target);
    auto last = parts.empty() ? std::string{} : parts.back();
    bool post = r.method == "POST";
    if (post && last == "statuses")
      res = json_answer(201, {{"id", 1}});
    else if (last == "statuses")
      res = json_answer(200, nlohmann::json::array());
    else if (last == "status")
      res = json_answer(200, {{"state", "success"}});
    else if (parts.size() >= 4 && parts[3] == "compare")
      res = json_answer(
        200,
        {{"status", "ahead"},
         {"total_commits", 1},
         {"commits",
          nlohmann::json::array(
            {{{"sha", std::string(40, 'f')},
              {"commit",
               {{"message", "second"}, {"author", {{"name", "Carol"}}}}}}})},
         {"files", nlohmann::json::array()}});
    else if (post && last == "deployments")
      res = json_answer(201, {{"id", 777}});
    else if (last == "deployments")
      res = json_answer(200, nlohmann::json::array());
    else if (parts.size() >= 4
             && (parts[3] == "tarball" || parts[3] == "zipball"))
      res = stub_response{302,
                          {{"Location", "https://codeload.example.test/" + repo
                                          + "/legacy.tar.gz"}},
                          ""};
    else
      res = json_answer(404, {{"message", "Not Found"}});
  }
  u.status = res.status;
  uses_.push_back(std::move(u));
  return res;
}

} // namespace heaven::test
