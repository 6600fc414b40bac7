// heaven as a GitHub App, end to end: the real `heaven serve` with a GitHub
// stand-in that verifies every JWT with python3-jwt and issues installation
// tokens that live 65 s (so the 60 s margin renews them every few seconds),
// a private repository cloned by real git over HTTPS from a git server that
// accepts only live installation tokens, and deploy scripts that outlive
// the token they started with.
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "tests/support/github_app_stand_in.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/recorder.hpp"

using namespace heaven;
using namespace heaven::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* app_id = "4242";

/// git's smart HTTP over HTTPS (`git http-backend` as CGI), letting in
/// only `x-access-token:<a live token>` basic auth; each request's verdict
/// goes to a file ("ok <token>" or "refused <path>").
constexpr const char* git_server
  = R"py(import base64, http.server, os, ssl, subprocess, sys, threading, time
root, tokens_file, verdicts, certfile, keyfile, port_file = sys.argv[1:7]
test_pid = int(sys.argv[7])

def watch_test():
    # Ends with the test binary, even one that crashed or was killed.
    while True:
        time.sleep(0.5)
        try:
            os.kill(test_pid, 0)
        except ProcessLookupError:
            os._exit(0)

threading.Thread(target=watch_test, daemon=True).start()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        self.serve()
    def do_POST(self):
        self.serve()
    def serve(self):
        auth = self.headers.get("Authorization", "")
        token = None
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if user == "x-access-token":
                token = password
        live = {}
        for line in open(tokens_file):
            t, expires = line.split()
            live[t] = int(expires)
        path, _, query = self.path.partition("?")
        if token is None or live.get(token, 0) <= time.time():
            with open(verdicts, "a") as f:
                f.write("refused %s\n" % path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(verdicts, "a") as f:
            f.write("ok %s\n" % token)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query,
                   REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(body)),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""),
                   REMOTE_USER="x-access-token")
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, rest = out.partition(sep)
        status, headers = 200, []
        for line in head.replace(b"\r\n", b"\n").split(b"\n"):
            key, _, value = line.decode().partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certfile, keyfile)
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
)py";

/// The private repository `octo/app` behind the git server, and the server.
struct private_git {
  fs::path dir;
  fs::path cert;
  fs::path verdicts;
  int port = 0;
  pid_t pid = -1;
  std::string sha;

  private_git(const fs::path& where, const fs::path& tokens) : dir(where) {
    fs::create_directories(dir / "work" / "script");
    auto work = (dir / "work").string();
    run_checked("git -C '" + work + "' init -q --initial-branch=main");
    std::ofstream{dir / "work" / "script" / "deploy"}
      << "#!/bin/sh\n"
         "printf '%s' \"$GITHUB_TOKEN\" > \"$APP_TOKEN_OUT\"\n"
         "env > \"$APP_ENV_OUT\"\n"
         "echo \"token is $GITHUB_TOKEN\"\n"
         // Outlives a token: 65 s minus the 60 s margin.
         "sleep \"${APP_SLEEP:-0}\"\n"
         "echo done\n";
    fs::permissions(dir / "work" / "script" / "deploy", fs::perms::owner_all);
    run_checked("cd '" + work
                + "' && git add -A && git -c user.name=t -c user.email=t@t "
                  "commit -q -m first");
    sha = run_checked("git -C '" + work + "' rev-parse HEAD");
    fs::create_directories(dir / "root" / "octo");
    run_checked("git clone -q --bare '" + work + "' '"
                + (dir / "root" / "octo" / "app.git").string() + "'");
    cert = dir / "cert.pem";
    auto key = dir / "key.pem";
    run_checked("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
                "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '"
                + key.string() + "' -out '" + cert.string() + "' 2>&1");
    std::ofstream{dir / "server.py"} << git_server;
    verdicts = dir / "verdicts";
    std::ofstream{verdicts};
    auto port_file = dir / "port";
    pid = std::stoi(run_checked(
      "/usr/bin/python3 '" + (dir / "server.py").string() + "' '"
      + (dir / "root").string() + "' '" + tokens.string() + "' '"
      + verdicts.string() + "' '" + cert.string() + "' '" + key.string() + "' '"
      + port_file.string() + "' " + std::to_string(::getpid()) + " > '"
      + (dir / "server.log").string() + "' 2>&1 & echo $!"));
    BOOST_REQUIRE_MESSAGE(eventually([&] { return fs::exists(port_file); },
                                     30s),
                          read_text(dir / "server.log"));
    port = std::stoi(read_text(port_file));
  }

  ~private_git() {
    if (pid > 0)
      ::kill(pid, SIGTERM);
  }

  std::string web() const {
    return "https://127.0.0.1:" + std::to_string(port) + "/";
  }
  std::string clone_url() const {
    return web() + "octo/app.git";
  }
};

/// A deployment event for the shell provider of `repo` to `environment`,
/// naming the app's installation when `installation` is not 0.
json event(int64_t id, const std::string& sha, const std::string& clone_url,
           int64_t installation, const std::string& repo = "octo/app",
           const std::string& environment = "production") {
  auto e = deployment_event(
    {.id = id,
     .sha = sha,
     .clone_url = clone_url,
     .payload = {{"name", "app"},
                 {"config",
                  {{"provider", "shell"}, {"deploy_script", "script/deploy"}}}},
     .repo = repo,
     .environment = environment});
  if (installation != 0)
    e["installation"] = {{"id", installation}, {"node_id", "MDIz"}};
  return e;
}

/// A public repository at `dir` whose script/deploy prints "ok", with one
/// commit: its file:// URL and that commit's sha.
std::pair<std::string, std::string> public_repo(const fs::path& dir) {
  fs::create_directories(dir / "script");
  std::ofstream{dir / "script" / "deploy"} << "#!/bin/sh\necho ok\n";
  fs::permissions(dir / "script" / "deploy", fs::perms::owner_all);
  run_checked("git -C '" + dir.string()
              + "' init -q --initial-branch=main && cd '" + dir.string()
              + "' && git add -A && git -c user.name=t -c user.email=t@t "
                "commit -q -m first");
  return {"file://" + dir.string(),
          run_checked("git -C '" + dir.string() + "' rev-parse HEAD")};
}

/// The uses of `github` at exactly `method` `target`.
std::vector<app_github::use> uses_at(const app_github& github,
                                     const std::string& method,
                                     const std::string& target) {
  std::vector<app_github::use> out;
  for (auto& u : github.uses())
    if (u.method == method && u.target == target)
      out.push_back(u);
  return out;
}

/// The uses of `github` whose target starts with `prefix`.
std::vector<app_github::use> uses_of(const app_github& github,
                                     const std::string& method,
                                     const std::string& prefix) {
  std::vector<app_github::use> out;
  for (auto& u : github.uses())
    if (u.method == method && u.target.rfind(prefix, 0) == 0)
      out.push_back(u);
  return out;
}

bool issued(const app_github& github, const std::string& token) {
  for (auto& t : github.tokens())
    if (t.token == token)
      return true;
  return false;
}

/// A status event: `sha` went green on main (auto-deploy's trigger).
json green(const std::string& sha) {
  return {{"sha", sha},
          {"state", "success"},
          {"context", "ci/test"},
          {"commit", {{"sha", sha}, {"author", {{"login", "carol"}}}}},
          {"branches",
           json::array({{{"name", "main"}, {"commit", {{"sha", sha}}}}})},
          {"repository",
           {{"id", 1},
            {"name", "app"},
            {"full_name", "octo/app"},
            {"owner", {{"login", "octo"}}},
            {"default_branch", "main"}}},
          {"installation", {{"id", 42}}},
          {"sender", {{"login", "ci-bot"}}}};
}

struct fixture {
  fs::path tmp = make_temp_dir("app");
  const app_key key = make_app_key(tmp);
  app_github github{app_id, key.public_pem};
  fs::path tokens = tmp / "live-tokens";

  fixture() {
    github.install("octo/app", 42);
    github.fallback_token(e2e_github_token);
    github.write_tokens_to(tokens);
  }

  heaven_server::env_list settings(heaven_server::env_list more = {}) const {
    heaven_server::env_list env = {
      {"GITHUB_APP_ID", app_id},
      {"GITHUB_APP_PRIVATE_KEY", read_text(key.private_pem)},
      {"HEAVEN_RETRY_BACKOFF_MS", "200"},
      {"HEAVEN_RETRY_MAX_BACKOFF_MS", "1000"},
    };
    env.insert(env.end(), more.begin(), more.end());
    return env;
  }

  ~fixture() {
    fs::remove_all(tmp);
  }
};

/// Lines of the key's body, the way a leak would show them.
std::vector<std::string> key_lines(const fs::path& pem) {
  std::vector<std::string> out;
  std::istringstream in{read_text(pem)};
  std::string line;
  while (std::getline(in, line))
    if (line.find("-----") == std::string::npos && line.size() > 20)
      out.push_back(line);
  return out;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(github_app_end_to_end, fixture)

BOOST_AUTO_TEST_CASE(
  a_private_deployment_runs_on_installation_tokens_throughout) {
  github.token_life(65);
  private_git git{tmp / "git", tokens};
  auto token_out = tmp / "script-token";
  auto env_out = tmp / "script-env";
  heaven_server h{tmp / "data", github.api_url(),
                  settings({{"OCTOKIT_WEB_ENDPOINT", git.web()},
                            {"GIT_SSL_CAINFO", git.cert.string()},
                            {"APP_TOKEN_OUT", token_out.string()},
                            {"APP_ENV_OUT", env_out.string()},
                            {"APP_SLEEP", "12"}})};
  auto res = h.post_event("deployment", "app-1",
                          event(501, git.sha, git.clone_url(), 42).dump());
  BOOST_REQUIRE_EQUAL(res.status, 201);
  auto id = id_of(h, 501);
  auto row = h.wait_finished(id, 120);
  BOOST_TEST(row.at("state") == "success", row.dump());
  h.wait_quiet(60);

  // The clone went through git with a live installation token.
  auto verdicts = read_text(git.verdicts);
  BOOST_TEST(verdicts.find("ok ghs_") != std::string::npos, verdicts);
  std::istringstream lines{verdicts};
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind("ok ", 0) == 0)
      BOOST_TEST(issued(github, line.substr(3)));

  // The script got its repository's token, never the key.
  auto script_token = read_text(token_out);
  BOOST_TEST(script_token.rfind("ghs_", 0) == 0u);
  BOOST_TEST(issued(github, script_token));
  auto script_env = read_text(env_out);
  BOOST_TEST(script_env.find("GITHUB_APP_PRIVATE_KEY") == std::string::npos);
  BOOST_TEST(script_env.find("PRIVATE KEY") == std::string::npos);

  // Every status carried a live token of installation 42, with margin.
  auto posts = uses_of(github, "POST", "/repos/octo/app/deployments/501/");
  BOOST_REQUIRE_GE(posts.size(), 2u);
  for (auto& u : posts) {
    BOOST_TEST(u.problem == "", u.target << ": " << u.problem);
    BOOST_TEST(u.seconds_left >= 30, u.seconds_left);
    BOOST_TEST(u.status == 201);
  }
  // The script outlived the token the deployment started with: its
  // terminal status went out with a later one.
  BOOST_TEST(posts.front().token != posts.back().token);
  BOOST_TEST(github.tokens().size() >= 3u);
  // The event named the installation: no lookup was needed.
  BOOST_TEST(github.lookups() == 0);
  BOOST_TEST(github.jwt_problems().empty());
  BOOST_TEST(github.jwt_calls() >= 3);

  // A green commit ahead: auto-deploy reads the combined status, compares
  // and creates the deployment, each with the current token.
  auto work = (tmp / "git" / "work").string();
  run_checked("cd '" + work
              + "' && echo two > two && git add -A && git -c user.name=t -c "
                "user.email=t@t commit -q -m second");
  auto next = run_checked("git -C '" + work + "' rev-parse HEAD");
  BOOST_REQUIRE_EQUAL(
    h.post_event("status", "green-1", green(next).dump()).status, 201);
  BOOST_REQUIRE(eventually(
    [&] {
      return !uses_at(github, "POST", "/repos/octo/app/deployments").empty();
    },
    60s));
  auto combined = uses_of(github, "GET",
                          "/repos/octo/app/commits/" + next + "/status");
  auto compare = uses_of(github, "GET", "/repos/octo/app/compare/");
  auto created = uses_at(github, "POST", "/repos/octo/app/deployments");
  BOOST_REQUIRE_EQUAL(combined.size(), 1u);
  BOOST_REQUIRE_EQUAL(compare.size(), 1u);
  BOOST_REQUIRE_EQUAL(created.size(), 1u);
  for (auto* u : {&combined[0], &compare[0], &created[0]}) {
    BOOST_TEST(u->problem == "", u->target << ": " << u->problem);
    BOOST_TEST(u->token.rfind("ghs_", 0) == 0u);
  }
  h.wait_quiet(60);
  auto deploy_log = h.log(id);
  BOOST_TEST(deploy_log.find("token is [redacted]") != std::string::npos,
             deploy_log);
  h.stop();

  // No token, JWT or key in heaven's log or the deployment's.
  auto logs = read_text(h.stderr_file) + deploy_log;
  for (auto& t : github.tokens())
    BOOST_TEST(logs.find(t.token) == std::string::npos, t.token);
  BOOST_TEST(logs.find("eyJ") == std::string::npos);
  for (auto& l : key_lines(key.private_pem))
    BOOST_TEST(logs.find(l) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_401_renews_the_token_once_then_fails_clearly) {
  heaven_server h{tmp / "data", github.api_url(), settings()};
  auto [url, sha] = public_repo(tmp / "public");

  // Without the event's installation id: heaven looks it up. The first
  // token is refused once: heaven gets a new one and sends again.
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "d-1", event(601, sha, url, 0).dump()).status,
    201);
  auto id = id_of(h, 601);
  h.wait_finished(id, 60);
  h.wait_quiet(60);
  BOOST_TEST(github.lookups() == 1);
  github.revoke_tokens();
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "d-2", event(602, sha, url, 0).dump()).status,
    201);
  h.wait_finished(id_of(h, 602), 60);
  h.wait_quiet(60);
  auto posts = uses_of(github, "POST", "/repos/octo/app/deployments/602/");
  BOOST_REQUIRE_GE(posts.size(), 3u);
  BOOST_TEST(posts[0].status == 401);
  BOOST_TEST(posts[0].problem == "a revoked token");
  BOOST_TEST(posts[1].status == 201);
  BOOST_TEST(posts[1].token != posts[0].token);
  BOOST_TEST(posts[1].problem == "");
  for (std::size_t i = 1; i < posts.size(); ++i)
    BOOST_TEST(posts[i].status == 201);

  // Auto-deploy's reads renew a refused token once too.
  github.revoke_tokens();
  auto ahead = std::string(40, 'b');
  BOOST_REQUIRE_EQUAL(h.post_event("status", "g-1", green(ahead).dump()).status,
                      201);
  BOOST_REQUIRE(eventually(
    [&] {
      return !uses_at(github, "POST", "/repos/octo/app/deployments").empty();
    },
    60s));
  auto combined = uses_at(github, "GET",
                          "/repos/octo/app/commits/" + ahead + "/status");
  BOOST_REQUIRE_EQUAL(combined.size(), 2u);
  BOOST_TEST(combined[0].status == 401);
  BOOST_TEST(combined[1].status == 200);
  BOOST_TEST(combined[0].token != combined[1].token);
  for (auto& u : uses_at(github, "POST", "/repos/octo/app/deployments"))
    BOOST_TEST(u.problem == "");
  h.wait_quiet(60);

  // The app lost its access: one renewal, then a clear failure.
  github.refuse_all(true);
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "d-3", event(603, sha, url, 0).dump()).status,
    201);
  h.wait_finished(id_of(h, 603), 60);
  BOOST_REQUIRE(eventually(
    [&] {
      return read_text(h.stderr_file)
               .find("HTTP 401 again with renewed credentials")
             != std::string::npos;
    },
    60s));
  h.wait_quiet(60);
  // Each status: its first attempt and one with a renewed token, no more.
  // Each status (queued, in_progress, success): its first attempt and one
  // with a renewed token, no more.
  auto refused = uses_of(github, "POST", "/repos/octo/app/deployments/603/");
  std::map<std::string, std::vector<std::string>> tries;
  for (auto& u : refused) {
    BOOST_TEST(u.status == 401);
    tries[json::parse(u.body).at("state").get<std::string>()].push_back(
      u.token);
  }
  BOOST_TEST(tries.size() == 3u);
  for (auto& [state, tokens] : tries) {
    BOOST_TEST(tokens.size() == 2u, state);
    if (tokens.size() == 2u)
      BOOST_TEST(tokens[0] != tokens[1], state);
  }

  // A repository the app is not installed on: GITHUB_TOKEN.
  BOOST_REQUIRE_EQUAL(h.post_event("deployment", "d-4",
                                   event(604, sha, url, 0, "octo/solo").dump())
                        .status,
                      201);
  h.wait_finished(id_of(h, 604), 60);
  h.wait_quiet(60);
  auto solo = uses_of(github, "POST", "/repos/octo/solo/deployments/604/");
  BOOST_REQUIRE_GE(solo.size(), 2u);
  for (auto& u : solo) {
    BOOST_TEST(u.token == e2e_github_token);
    BOOST_TEST(u.problem == "");
  }
  BOOST_TEST(github.jwt_problems().empty());
}

BOOST_AUTO_TEST_CASE(
  a_github_holding_a_token_exchange_holds_up_only_its_users) {
  github.install("octo/other", 43);
  heaven_server h{tmp / "data", github.api_url(), settings()};
  auto [url, sha] = public_repo(tmp / "public");
  auto deploy = [&](int64_t id, const std::string& repo_name,
                    const std::string& environment, int64_t installation) {
    auto e = event(id, sha, url, installation, repo_name, environment);
    return h.post_event("deployment", "hold-" + std::to_string(id), e.dump())
      .status;
  };
  // octo/other's token is fetched first and is at hand from then on.
  BOOST_REQUIRE_EQUAL(deploy(901, "octo/other", "production", 43), 201);
  BOOST_REQUIRE_EQUAL(h.wait_finished(id_of(h, 901), 60).at("state"),
                      "success");

  // GitHub now holds every exchange of installation 42 unanswered. Four
  // deployments of octo/app (each to its own environment, so all run at
  // once) and their statuses need its token.
  github.hold_exchanges(42);
  for (int i = 0; i < 4; ++i)
    BOOST_REQUIRE_EQUAL(
      deploy(910 + i, "octo/app", "env" + std::to_string(i), 42), 201);
  BOOST_REQUIRE(eventually([&] { return github.held_exchanges() > 0; }, 30s));

  // Meanwhile heaven answers webhooks and its API (wait_finished reads
  // GET /deployments) and deploys what has its token at hand: were the actors
  // waiting for GitHub, they would hold every thread heaven runs them on, and
  // this deployment would not even be answered.
  BOOST_REQUIRE_EQUAL(deploy(902, "octo/other", "production", 43), 201);
  BOOST_TEST(h.wait_finished(id_of(h, 902), 60).at("state") == "success");
  BOOST_REQUIRE(eventually(
    [&] {
      return uses_of(github, "POST", "/repos/octo/other/deployments/902/")
               .size()
             >= 3;
    },
    60s));
  BOOST_TEST(github.held_exchanges() > 0); // GitHub held it all along.
  for (int i = 0; i < 4; ++i)
    BOOST_TEST(
      uses_of(github, "POST",
              "/repos/octo/app/deployments/" + std::to_string(910 + i) + "/")
        .empty());

  // Once GitHub answers, the deployments waiting for the token go on, and
  // every status carries a live token of installation 42.
  github.release_exchanges();
  for (int i = 0; i < 4; ++i) {
    auto d = h.wait_finished(id_of(h, 910 + i), 60);
    BOOST_TEST(d.at("state") == "success", 910 + i);
  }
  h.wait_quiet(60);
  for (int i = 0; i < 4; ++i) {
    auto posts = uses_of(github, "POST",
                         "/repos/octo/app/deployments/"
                           + std::to_string(910 + i) + "/");
    BOOST_TEST(posts.size() >= 3u, 910 + i);
    for (auto& u : posts) {
      BOOST_TEST(u.problem == "");
      BOOST_TEST(u.status == 201);
    }
  }
  BOOST_TEST(github.jwt_problems().empty());
}

BOOST_AUTO_TEST_CASE(an_enterprise_endpoint_keeps_its_api_prefix) {
  app_github ghe{app_id, key.public_pem, "/api/v3/"};
  ghe.install("octo/app", 42);
  ghe.fallback_token(e2e_github_token);
  // GitHub fails the first exchanges: the statuses wait for a token
  // instead of going out without one.
  ghe.fail_exchanges(3);
  heaven_server h{tmp / "data", ghe.api_url(), settings()};
  auto [url, sha] = public_repo(tmp / "public");
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "e-1", event(701, sha, url, 42).dump()).status,
    201);
  h.wait_finished(id_of(h, 701), 60);
  h.wait_quiet(60);
  auto posts = uses_of(ghe, "POST", "/api/v3/repos/octo/app/deployments/701/");
  BOOST_REQUIRE_GE(posts.size(), 3u);
  for (auto& u : posts) {
    BOOST_TEST(u.problem == "");
    BOOST_TEST(u.status == 201);
  }
  BOOST_TEST(read_text(h.stderr_file)
               .find("could not get a token of installation 42 (HTTP 500")
             != std::string::npos);
  bool exchanged = false;
  for (auto& r : ghe.stub.requests())
    exchanged = exchanged
                || r.target == "/api/v3/app/installations/42/access_tokens";
  BOOST_TEST(exchanged);
}

BOOST_AUTO_TEST_CASE(archive_links_are_asked_for_with_the_installation_token) {
  // Heroku refuses the build: what matters here is the tarball link.
  http_stub heroku;
  heroku.respond_with([](const recorded_request&) {
    return stub_response{404,
                         {{"Content-Type", "application/json"}},
                         R"({"id":"not_found","message":"no such app"})"};
  });
  heaven_server h{tmp / "data", github.api_url(),
                  settings({{"HEROKU_API_KEY", "heroku-key-0123456789"},
                            {"HEAVEN_HEROKU_ENDPOINT", heroku.base_url()}})};
  auto sha = std::string(40, 'c');
  auto heroku_event = [&](int64_t id) {
    auto e = deployment_event(
      {.id = id,
       .sha = sha,
       .clone_url = "https://github.com/octo/app.git",
       .payload = {
         {"name", "app"},
         {"config",
          {{"provider", "heroku"}, {"heroku_production_name", "app-prod"}}}}});
    e["installation"] = {{"id", 42}};
    return e.dump();
  };
  auto tarball = "/repos/octo/app/tarball/" + sha;
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "h-1", heroku_event(801)).status, 201);
  h.wait_finished(id_of(h, 801), 60);
  auto first = uses_at(github, "GET", tarball);
  BOOST_REQUIRE_EQUAL(first.size(), 1u);
  BOOST_TEST(first[0].problem == "");
  BOOST_TEST(first[0].status == 302);
  // Heroku was handed the link (and would fetch it with its own token).
  BOOST_REQUIRE(!heroku.requests().empty());
  BOOST_TEST(heroku.requests()[0].body.find("codeload.example.test")
             != std::string::npos);
  // A revoked token: heaven gets a new one and asks once more.
  github.revoke_at(tarball);
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment", "h-2", heroku_event(802)).status, 201);
  h.wait_finished(id_of(h, 802), 60);
  auto links = uses_at(github, "GET", tarball);
  std::string seen;
  for (auto& u : links)
    seen += std::to_string(u.status) + " " + u.problem + "; ";
  BOOST_REQUIRE_MESSAGE(links.size() == 3u, seen + read_text(h.stderr_file));
  BOOST_TEST(links[1].status == 401);
  BOOST_TEST(links[2].status == 302);
  BOOST_TEST(links[2].problem == "");
  BOOST_TEST(links[1].token != links[2].token);
}

BOOST_AUTO_TEST_CASE(a_chat_notice_compares_with_the_installation_token) {
  http_stub hook;
  heaven_server h{
    tmp / "data", github.api_url(),
    settings({{"HEAVEN_NOTIFY_WEBHOOK_URL", hook.base_url() + "hook"},
              {"HEAVEN_NOTIFIER_DISPLAY_COMMITS", "1"}})};
  auto status_event = [](int64_t id, const std::string& sha) {
    return json{{"action", "created"},
                {"deployment_status",
                 {{"id", id * 10},
                  {"state", "success"},
                  {"description", "Deployed"},
                  {"environment", "production"},
                  {"creator", {{"login", "heaven-bot"}}}}},
                {"deployment",
                 {{"id", id},
                  {"sha", sha},
                  {"ref", "main"},
                  {"task", "deploy"},
                  {"environment", "production"},
                  {"payload",
                   {{"name", "app"},
                    {"notify", {{"room", "ops"}, {"user", "alice"}}},
                    {"config", {{"provider", "shell"}}}}},
                  {"creator", {{"login", "alice"}}}}},
                {"repository",
                 {{"name", "app"},
                  {"full_name", "octo/app"},
                  {"html_url", "https://github.com/octo/app"},
                  {"default_branch", "main"}}},
                {"installation", {{"id", 42}}},
                {"sender", {{"login", "heaven-bot"}}}}
      .dump();
  };
  auto base = std::string(40, 'd');
  auto head = std::string(40, 'e');
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment_status", "n-1", status_event(901, base)).status,
    201);
  BOOST_REQUIRE(hook.wait_for(1, 30000));
  // The comparison of the next one: its token revoked as it arrives.
  auto compare = "/repos/octo/app/compare/" + base + "..." + head;
  github.revoke_at(compare);
  BOOST_REQUIRE_EQUAL(
    h.post_event("deployment_status", "n-2", status_event(902, head)).status,
    201);
  BOOST_REQUIRE(hook.wait_for(2, 30000));
  auto asked = uses_at(github, "GET", compare);
  BOOST_REQUIRE_EQUAL(asked.size(), 2u);
  BOOST_TEST(asked[0].status == 401);
  BOOST_TEST(asked[0].token.rfind("ghs_", 0) == 0u);
  BOOST_TEST(asked[1].status == 200);
  BOOST_TEST(asked[1].problem == "");
  BOOST_TEST(asked[1].token != asked[0].token);
  BOOST_TEST(!json::parse(hook.requests()[1].body)["changes"].is_null());
}

BOOST_AUTO_TEST_CASE(a_bad_key_stops_heaven_at_start_naming_the_setting) {
  auto dir = tmp / "bad";
  fs::create_directories(dir);
  std::ofstream{dir / "key"} << "-----BEGIN RSA PRIVATE KEY-----\n"
                                "c2VjcmV0IGJ1dCBub3QgYSBrZXkgYXQgYWxs\n"
                                "-----END RSA PRIVATE KEY-----\n";
  auto r = run_command("cd '" + dir.string()
                       + "' && env -i PATH=\"$PATH\" "
                         "HEAVEN_DATA_DIR='"
                       + dir.string()
                       + "/data' HEAVEN_LISTEN=127.0.0.1:0 "
                         "GITHUB_WEBHOOK_SECRET=s GITHUB_APP_ID=4242 "
                         "GITHUB_APP_PRIVATE_KEY=\"$(cat key)\" "
                       + HEAVEN_BINARY + " serve");
  BOOST_TEST(r.status == 1, r.out);
  BOOST_TEST(r.out.find("GITHUB_APP_PRIVATE_KEY") != std::string::npos, r.out);
  BOOST_TEST(r.out.find("c2VjcmV0IGJ1dCBub3QgYSBrZXkgYXQgYWxs")
               == std::string::npos,
             r.out);
}

BOOST_AUTO_TEST_SUITE_END()
