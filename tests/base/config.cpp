#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/config.hpp"

using namespace heaven;
namespace fs = std::filesystem;

namespace {

/// A temporary directory that is also the working directory while it lives,
/// so no conf/heaven.conf of the repository or build tree leaks in.
struct temp_cwd {
  fs::path path;
  fs::path old;
  temp_cwd() {
    std::string text = (fs::temp_directory_path() / "heaven-config-XXXXXX");
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = fs::canonical(text);
    old = fs::current_path();
    fs::current_path(path);
  }
  ~temp_cwd() {
    std::error_code ec;
    fs::current_path(old, ec);
    fs::remove_all(path, ec);
  }
  /// Writes `text` to `name` under the directory; returns its path.
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream{p} << text;
    return p.string();
  }
};

settings ok(const settings_or_error& r) {
  if (auto err = std::get_if<std::string>(&r))
    BOOST_FAIL("load_settings failed: " << *err);
  return std::get<settings>(r);
}

std::string err(const settings_or_error& r) {
  if (std::holds_alternative<settings>(r))
    BOOST_FAIL("load_settings succeeded where it should have failed");
  return std::get<std::string>(r);
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

bool has_key(const string_pairs& xs, const std::string& k) {
  return std::any_of(xs.begin(), xs.end(),
                     [&](auto& kv) { return kv.first == k; });
}

} // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_without_file_env_or_flags) {
  temp_cwd dir;
  auto s = ok(load_settings({}, {{"PATH", "/usr/bin"}, {"HOME", "/root"}}));
  settings d;
  BOOST_TEST(s.listen == "127.0.0.1:8080");
  BOOST_TEST(s.data_dir == d.data_dir);
  BOOST_TEST(s.webhook_secret == "");
  BOOST_TEST(s.github_token == "");
  BOOST_TEST(s.api_endpoint == "https://api.github.com/");
  BOOST_TEST(s.web_endpoint == "https://github.com/");
  BOOST_TEST(s.public_url == "http://127.0.0.1:8080");
  BOOST_TEST(s.deployment_timeout == 300);
  BOOST_TEST(s.terminate_children == true);
  BOOST_TEST(s.kill_grace == 5);
  BOOST_TEST(s.insecure == false);
  BOOST_TEST(s.withhold_env.empty());
  BOOST_TEST(s.log_level == "info");
  BOOST_TEST(s.max_body == 25 * 1024 * 1024);
  BOOST_TEST(s.status_retries == 5);
  BOOST_TEST(s.config_file == "");
}

BOOST_AUTO_TEST_CASE(precedence_flags_env_file_defaults) {
  temp_cwd dir;
  auto file = dir.write("heaven.conf", "HEAVEN_LISTEN=10.0.0.1:1\n"
                                       "DEPLOYMENT_TIMEOUT=10\n"
                                       "HEAVEN_LOG_LEVEL=debug\n"
                                       "HEAVEN_KILL_GRACE=7\n");
  string_pairs env = {{"HEAVEN_CONFIG", file},
                      {"HEAVEN_LISTEN", "10.0.0.2:2"},
                      {"DEPLOYMENT_TIMEOUT", "20"},
                      {"HEAVEN_STATUS_RETRIES", "9"}};
  auto s = ok(
    load_settings({"--listen", "10.0.0.3:3", "--status-retries=2"}, env));
  BOOST_TEST(s.listen == "10.0.0.3:3");       // flag over env and file
  BOOST_TEST(s.status_retries == 2);          // flag over env
  BOOST_TEST(s.deployment_timeout == 20);     // env over file
  BOOST_TEST(s.log_level == "debug");         // file over default
  BOOST_TEST(s.kill_grace == 7);              // file over default
  BOOST_TEST(s.max_body == 25 * 1024 * 1024); // default
  BOOST_TEST(s.config_file == file);
  BOOST_TEST(s.public_url == "http://10.0.0.3:3");

  // Without the flags, the environment wins over the file.
  auto e = ok(load_settings({}, env));
  BOOST_TEST(e.listen == "10.0.0.2:2");
  BOOST_TEST(e.status_retries == 9);

  // Without the environment either, the file wins over the defaults.
  auto f = ok(load_settings({}, {{"HEAVEN_CONFIG", file}}));
  BOOST_TEST(f.listen == "10.0.0.1:1");
  BOOST_TEST(f.deployment_timeout == 10);
  BOOST_TEST(f.status_retries == 5);
}

BOOST_AUTO_TEST_CASE(config_file_named_by_flag) {
  temp_cwd dir;
  auto a = dir.write("a.conf", "HEAVEN_LOG_LEVEL=warn\n");
  auto b = dir.write("b.conf", "HEAVEN_LOG_LEVEL=error\n");
  auto s = ok(load_settings({"--config", a}, {}));
  BOOST_TEST(s.log_level == "warn");
  BOOST_TEST(s.config_file == a);
  auto t = ok(load_settings({"--config=" + b}, {}));
  BOOST_TEST(t.log_level == "error");
  // --config wins over HEAVEN_CONFIG.
  auto u = ok(load_settings({"--config", b}, {{"HEAVEN_CONFIG", a}}));
  BOOST_TEST(u.log_level == "error");
  BOOST_TEST(u.config_file == b);
}

BOOST_AUTO_TEST_CASE(default_config_file_in_cwd) {
  temp_cwd dir;
  dir.write("conf/heaven.conf", "HEAVEN_DATA_DIR=/srv/heaven\n");
  auto s = ok(load_settings({}, {}));
  BOOST_TEST(s.data_dir == "/srv/heaven");
  BOOST_TEST(s.config_file == "conf/heaven.conf");
  // A named file replaces the default one, which is then not read at all.
  auto other = dir.write("other.conf", "HEAVEN_LOG_LEVEL=trace\n");
  auto t = ok(load_settings({}, {{"HEAVEN_CONFIG", other}}));
  BOOST_TEST(t.data_dir == "./var");
  BOOST_TEST(t.log_level == "trace");
}

BOOST_AUTO_TEST_CASE(missing_named_config_file_is_an_error) {
  temp_cwd dir;
  auto missing = (dir.path / "nope.conf").string();
  BOOST_TEST(
    contains(err(load_settings({}, {{"HEAVEN_CONFIG", missing}})), missing));
  BOOST_TEST(contains(err(load_settings({"--config", missing}, {})), missing));
}

BOOST_AUTO_TEST_CASE(flag_forms) {
  temp_cwd dir;
  auto s = ok(
    load_settings({"--data-dir", "/d1", "--log-level=warn", "--public-url",
                   "https://h/a=b", "--withhold-env=A,B"},
                  {}));
  BOOST_TEST(s.data_dir == "/d1");
  BOOST_TEST(s.log_level == "warn");
  // Only the first '=' splits a --flag=value; in the two-word form the
  // value is taken whole.
  BOOST_TEST(s.public_url == "https://h/a=b");
  auto t = ok(load_settings({"--public-url=https://x/a=b"}, {}));
  BOOST_TEST(t.public_url == "https://x/a=b");
  BOOST_TEST(s.withhold_env == (std::vector<std::string>{"A", "B"}));
  // An empty value in the = form is a value.
  auto u = ok(load_settings({"--public-url="}, {}));
  BOOST_TEST(u.public_url == "http://127.0.0.1:8080");
}

BOOST_AUTO_TEST_CASE(secret_flags_name_files_never_values) {
  temp_cwd dir;
  auto token = (dir.path / "token").string();
  std::ofstream{token} << "ghp_from_a_file\n";
  auto secret = (dir.path / "secret").string();
  std::ofstream{secret} << "hook secret\n";
  auto s = ok(load_settings(
    {"--github-token-file", token, "--webhook-secret-file=" + secret}, {}));
  BOOST_TEST(s.github_token == "ghp_from_a_file");
  BOOST_TEST(s.webhook_secret == "hook secret");
  auto client = (dir.path / "client").string();
  std::ofstream{client} << "oauth client secret\n";
  auto c = ok(
    load_settings({"--github-client-secret-file", client, "--github-client-id",
                   "Iv1.x", "--github-team-id", "42", "--github-org", "octo"},
                  {}));
  BOOST_TEST(c.github_client_secret == "oauth client secret");
  BOOST_TEST(c.github_client_id == "Iv1.x");
  BOOST_TEST(c.github_team_id == "42");
  BOOST_TEST(c.github_org == "octo");
  BOOST_TEST(contains(err(load_settings({"--github-client-secret", "x"}, {})),
                      "unknown option"));
  auto e = ok(load_settings({}, {{"GITHUB_CLIENT_SECRET", "from env"},
                                 {"GITHUB_CLIENT_ID", "Iv1.y"},
                                 {"HEAVEN_GITHUB_ORG", "octo"}}));
  BOOST_TEST(e.github_client_secret == "from env");
  BOOST_TEST(e.github_client_id == "Iv1.y");
  BOOST_TEST(e.github_org == "octo");
  auto redacted = secret_values(e, {});
  BOOST_TEST((std::find(redacted.begin(), redacted.end(), "from env")
              != redacted.end()));
  BOOST_TEST(
    contains(err(load_settings(
               {"--github-token-file", (dir.path / "none").string()}, {})),
             "cannot read"));
  // There is no flag that takes a secret itself.
  BOOST_TEST(contains(err(load_settings({"--github-token", "x"}, {})),
                      "unknown option"));
}

BOOST_AUTO_TEST_CASE(boolean_flags) {
  temp_cwd dir;
  // Without a value a boolean flag means true, and does not eat the next
  // argument.
  auto s = ok(load_settings({"--insecure", "--listen", "0.0.0.0:1"}, {}));
  BOOST_TEST(s.insecure == true);
  BOOST_TEST(s.listen == "0.0.0.0:1");
  auto t = ok(load_settings({"--insecure=0"}, {{"HEAVEN_INSECURE", "1"}}));
  BOOST_TEST(t.insecure == false);
  auto u = ok(load_settings({"--terminate-child-process=false"}, {}));
  BOOST_TEST(u.terminate_children == false);
  auto v = ok(load_settings({}, {{"TERMINATE_CHILD_PROCESS_ON_TIMEOUT", "0"}}));
  BOOST_TEST(v.terminate_children == false);
  for (auto yes : {"1", "true", "TRUE", "yes", "on", "True"}) {
    auto w = ok(load_settings({}, {{"HEAVEN_INSECURE", yes}}));
    BOOST_TEST(w.insecure == true, "HEAVEN_INSECURE=" << yes);
  }
  for (auto no : {"0", "false", "no", "off", "OFF"}) {
    auto x = ok(load_settings({}, {{"HEAVEN_INSECURE", no}}));
    BOOST_TEST(x.insecure == false, "HEAVEN_INSECURE=" << no);
  }
}

BOOST_AUTO_TEST_CASE(bad_integers_name_the_variable) {
  temp_cwd dir;
  for (auto bad :
       {"abc", "", "12x", "-1", "1.5", " 5", "99999999999999999999"}) {
    auto e = err(load_settings({}, {{"DEPLOYMENT_TIMEOUT", bad}}));
    BOOST_TEST(contains(e, "DEPLOYMENT_TIMEOUT"), e);
  }
  auto e = err(load_settings({"--kill-grace=-1"}, {}));
  BOOST_TEST(contains(e, "HEAVEN_KILL_GRACE"), e);
  auto f = err(load_settings({"--max-body", "lots"}, {}));
  BOOST_TEST(contains(f, "HEAVEN_MAX_BODY"), f);
  BOOST_TEST(contains(f, "lots"), f);
  auto g = err(load_settings({}, {{"HEAVEN_STATUS_RETRIES", "x"}}));
  BOOST_TEST(contains(g, "HEAVEN_STATUS_RETRIES"), g);
  auto path = dir.write("h.conf", "# c\nHEAVEN_MAX_BODY=12x\n");
  auto h = err(load_settings({"--config", path}, {}));
  BOOST_TEST(contains(h, path + ":2"), h);
  BOOST_TEST(contains(h, "HEAVEN_MAX_BODY"), h);
}

BOOST_AUTO_TEST_CASE(http_bounds_have_defaults_and_a_floor) {
  temp_cwd dir;
  auto d = ok(load_settings({}, {}));
  BOOST_TEST(d.http_max_host_connections == 32);
  BOOST_TEST(d.http_max_connections == 256);
  BOOST_TEST(d.http_max_streams == 1024);
  auto s = ok(load_settings({"--http-max-host-connections=4"},
                            {{"HEAVEN_HTTP_MAX_CONNECTIONS", "8"},
                             {"HEAVEN_HTTP_MAX_STREAMS", "16"}}));
  BOOST_TEST(s.http_max_host_connections == 4);
  BOOST_TEST(s.http_max_connections == 8);
  BOOST_TEST(s.http_max_streams == 16);
  BOOST_TEST(err(load_settings({}, {{"HEAVEN_HTTP_MAX_HOST_CONNECTIONS", "0"}}))
             == "HEAVEN_HTTP_MAX_HOST_CONNECTIONS must be at least 1");
  BOOST_TEST(err(load_settings({"--http-max-host-connections=300"}, {}))
             == "HEAVEN_HTTP_MAX_CONNECTIONS must be at least "
                "HEAVEN_HTTP_MAX_HOST_CONNECTIONS");
  BOOST_TEST(err(load_settings({"--http-max-streams=0"}, {}))
             == "HEAVEN_HTTP_MAX_STREAMS must be at least 1");
}

BOOST_AUTO_TEST_CASE(a_ca_file_must_be_readable) {
  temp_cwd dir;
  BOOST_TEST(ok(load_settings({}, {})).ca_file == "");
  auto pem = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  BOOST_TEST(ok(load_settings({"--ca-file", pem}, {})).ca_file == pem);
  BOOST_TEST(ok(load_settings({}, {{"HEAVEN_CA_FILE", pem}})).ca_file == pem);
  BOOST_TEST(err(load_settings({}, {{"HEAVEN_CA_FILE", pem + ".missing"}}))
             == "HEAVEN_CA_FILE: cannot read " + pem + ".missing");
  // A directory is no bundle either.
  auto folder = pem.substr(0, pem.rfind('/'));
  BOOST_TEST(err(load_settings({"--ca-file=" + folder}, {}))
             == "HEAVEN_CA_FILE: cannot read " + folder);
}

BOOST_AUTO_TEST_CASE(bad_booleans_name_the_variable) {
  temp_cwd dir;
  auto e = err(load_settings({}, {{"HEAVEN_INSECURE", "maybe"}}));
  BOOST_TEST(contains(e, "HEAVEN_INSECURE"), e);
  BOOST_TEST(contains(e, "maybe"), e);
  auto f = err(load_settings({"--terminate-child-process=2"}, {}));
  BOOST_TEST(contains(f, "TERMINATE_CHILD_PROCESS_ON_TIMEOUT"), f);
  auto g = err(load_settings({}, {{"HEAVEN_INSECURE", ""}}));
  BOOST_TEST(contains(g, "HEAVEN_INSECURE"), g);
}

BOOST_AUTO_TEST_CASE(cgroups_are_auto_or_off) {
  temp_cwd dir;
  BOOST_TEST(ok(load_settings({}, {})).cgroups == "auto");
  BOOST_TEST(ok(load_settings({}, {{"HEAVEN_CGROUPS", "off"}})).cgroups
             == "off");
  BOOST_TEST(
    ok(load_settings({"--cgroups=off"}, {{"HEAVEN_CGROUPS", "auto"}})).cgroups
    == "off");
  auto e = err(load_settings({}, {{"HEAVEN_CGROUPS", "on"}}));
  BOOST_TEST(contains(e, "HEAVEN_CGROUPS"), e);
  BOOST_TEST(contains(e, "'on'"), e);
}

BOOST_AUTO_TEST_CASE(log_format_is_text_or_json) {
  temp_cwd dir;
  BOOST_TEST(ok(load_settings({}, {})).log_format == "text");
  BOOST_TEST(ok(load_settings({}, {{"HEAVEN_LOG_FORMAT", "json"}})).log_format
             == "json");
  BOOST_TEST(
    ok(load_settings({"--log-format=text"}, {{"HEAVEN_LOG_FORMAT", "json"}}))
      .log_format
    == "text");
  auto e = err(load_settings({}, {{"HEAVEN_LOG_FORMAT", "xml"}}));
  BOOST_TEST(e == "HEAVEN_LOG_FORMAT must be text or json, got 'xml'");
}

BOOST_AUTO_TEST_CASE(zero_timeout_and_retries) {
  temp_cwd dir;
  auto e = err(load_settings({"--deployment-timeout", "0"}, {}));
  BOOST_TEST(contains(e, "DEPLOYMENT_TIMEOUT"), e);
  auto s = ok(load_settings({"--status-retries=0"}, {}));
  BOOST_TEST(s.status_retries == 1);
  auto t = ok(load_settings({"--kill-grace=0"}, {}));
  BOOST_TEST(t.kill_grace == 0);
}

BOOST_AUTO_TEST_CASE(unknown_flag_and_missing_value) {
  temp_cwd dir;
  auto e = err(load_settings({"--nope"}, {}));
  BOOST_TEST(contains(e, "--nope"), e);
  auto f = err(load_settings({"--listen=1:1", "--bogus=3"}, {}));
  BOOST_TEST(contains(f, "--bogus"), f);
  // A positional word is not silently ignored.
  auto g = err(load_settings({"extra"}, {}));
  BOOST_TEST(contains(g, "extra"), g);
  auto h = err(load_settings({"--listen"}, {}));
  BOOST_TEST(contains(h, "--listen"), h);
}

BOOST_AUTO_TEST_CASE(unknown_setting_in_file_names_file_and_line) {
  temp_cwd dir;
  auto path = dir.write("x.conf", "HEAVEN_LISTEN=1:1\n\n"
                                  "# comment\n"
                                  "NOT_A_SETTING=1\n");
  auto e = err(load_settings({}, {{"HEAVEN_CONFIG", path}}));
  BOOST_TEST(contains(e, path + ":4"), e);
  BOOST_TEST(contains(e, "NOT_A_SETTING"), e);
  auto bad = dir.write("y.conf", "HEAVEN_LISTEN=1:1\njust words\n");
  auto f = err(load_settings({"--config", bad}, {}));
  BOOST_TEST(contains(f, bad + ":2"), f);
  // Unknown variables in the environment, by contrast, are not heaven's
  // business and are ignored.
  ok(load_settings({}, {{"NOT_A_SETTING", "1"}, {"HEAVEN_X", "y"}}));
}

BOOST_AUTO_TEST_CASE(file_comments_blanks_and_quotes) {
  temp_cwd dir;
  auto path = dir.write("q.conf", "# heaven settings\n"
                                  "\n"
                                  "   \n"
                                  "  # indented comment\n"
                                  "  HEAVEN_LISTEN = \"0.0.0.0:9000\"  \n"
                                  "HEAVEN_LOG_LEVEL='warn'\n"
                                  "GITHUB_TOKEN=ghp_abc=def\n"
                                  "HEAVEN_DATA_DIR=\"/path with spaces\"\r\n"
                                  "GITHUB_WEBHOOK_SECRET=\"\"\n"
                                  "HEAVEN_WITHHOLD_ENV=AWS_SECRET_ACCESS_KEY,,"
                                  "NPM_TOKEN\n");
  auto s = ok(load_settings({}, {{"HEAVEN_CONFIG", path}}));
  BOOST_TEST(s.listen == "0.0.0.0:9000");
  BOOST_TEST(s.log_level == "warn");
  BOOST_TEST(s.github_token == "ghp_abc=def");
  BOOST_TEST(s.data_dir == "/path with spaces");
  BOOST_TEST(s.webhook_secret == "");
  BOOST_TEST(
    s.withhold_env
    == (std::vector<std::string>{"AWS_SECRET_ACCESS_KEY", "NPM_TOKEN"}));
  BOOST_TEST(s.public_url == "http://0.0.0.0:9000");
}

BOOST_AUTO_TEST_CASE(public_url_default_and_trailing_slash) {
  temp_cwd dir;
  auto s = ok(load_settings({"--listen", "192.168.1.5:80"}, {}));
  BOOST_TEST(s.public_url == "http://192.168.1.5:80");
  auto t = ok(
    load_settings({}, {{"HEAVEN_PUBLIC_URL", "https://heaven.example.com/"}}));
  BOOST_TEST(t.public_url == "https://heaven.example.com");
  auto u = ok(load_settings({"--public-url", "https://h.example/base///"}, {}));
  BOOST_TEST(u.public_url == "https://h.example/base");
}

BOOST_AUTO_TEST_CASE(withhold_env_list) {
  temp_cwd dir;
  auto s = ok(load_settings({}, {{"HEAVEN_WITHHOLD_ENV", "A,B,,C,"}}));
  BOOST_TEST(s.withhold_env == (std::vector<std::string>{"A", "B", "C"}));
  // A flag replaces the environment's list rather than adding to it.
  auto t = ok(
    load_settings({"--withhold-env", "D"}, {{"HEAVEN_WITHHOLD_ENV", "A,B"}}));
  BOOST_TEST(t.withhold_env == (std::vector<std::string>{"D"}));
  auto u = ok(load_settings({}, {{"HEAVEN_WITHHOLD_ENV", ""}}));
  BOOST_TEST(u.withhold_env.empty());
}

BOOST_AUTO_TEST_CASE(child_environment_drops_secret_and_withheld) {
  settings cfg;
  cfg.withhold_env = {"AWS_SECRET_ACCESS_KEY", "NPM_TOKEN"};
  string_pairs env = {
    {"PATH", "/usr/bin:/bin"},     {"GITHUB_WEBHOOK_SECRET", "hooksecret"},
    {"GITHUB_TOKEN", "ghp_token"}, {"AWS_SECRET_ACCESS_KEY", "aws"},
    {"NPM_TOKEN", "npm"},          {"HEROKU_API_KEY", "heroku"},
    {"HOME", "/home/heaven"},      {"EMPTY", ""},
    {"HEAVEN_API_TOKEN", "api"},   {"GITHUB_CLIENT_SECRET", "oauth"}};
  auto out = child_environment(cfg, env);
  BOOST_TEST(!has_key(out, "HEAVEN_API_TOKEN"));
  BOOST_TEST(!has_key(out, "GITHUB_CLIENT_SECRET"));
  BOOST_TEST(!has_key(out, "GITHUB_WEBHOOK_SECRET"));
  BOOST_TEST(!has_key(out, "AWS_SECRET_ACCESS_KEY"));
  BOOST_TEST(!has_key(out, "NPM_TOKEN"));
  // As the Rails Heaven did, deploy scripts still get GITHUB_TOKEN and the
  // providers' credentials.
  BOOST_TEST(has_key(out, "GITHUB_TOKEN"));
  BOOST_TEST(has_key(out, "HEROKU_API_KEY"));
  BOOST_TEST(has_key(out, "PATH"));
  BOOST_TEST(has_key(out, "HOME"));
  BOOST_TEST(has_key(out, "EMPTY"));
  BOOST_TEST(out.size() == 5u);
  // Order and values are kept.
  BOOST_TEST(out[0].first == "PATH");
  BOOST_TEST(out[0].second == "/usr/bin:/bin");
  BOOST_TEST(out[1].first == "GITHUB_TOKEN");
  BOOST_TEST(out[1].second == "ghp_token");
  // Withholding is by exact name, not prefix.
  settings none;
  none.withhold_env = {"PAT"};
  BOOST_TEST(has_key(child_environment(none, env), "PATH"));
}

BOOST_AUTO_TEST_CASE(secret_values_collects_tokens_and_keys) {
  settings cfg;
  cfg.github_token = "flag_token_value";
  cfg.webhook_secret = "flag_hook_secret";
  string_pairs env = {{"GITHUB_TOKEN", "env_token_value"},
                      {"HEROKU_API_KEY", "heroku_key_value"},
                      {"DEPLOYMENT_PRIVATE_KEY", "-----BEGIN KEY-----"},
                      {"BEANSTALK_ACCESS_KEY_ID", "AKIAEXAMPLE"},
                      {"BEANSTALK_SECRET_ACCESS_KEY", "aws_secret_value"},
                      {"BUNDLER_PRIVATE_CREDENTIALS", "user:pass"},
                      {"MY_API_TOKEN", "custom_token"},
                      {"DB_PASSWORD", "hunter2hunter2"},
                      {"SOME_SECRET_THING", "shh_value"},
                      {"PATH", "/usr/bin"},
                      {"HOME", "/home/x"},
                      {"HEAVEN_LISTEN", "127.0.0.1:1"},
                      {"EMPTY_TOKEN", ""}};
  auto s = secret_values(cfg, env);
  for (auto v : {"flag_token_value", "flag_hook_secret", "env_token_value",
                 "heroku_key_value", "-----BEGIN KEY-----", "AKIAEXAMPLE",
                 "aws_secret_value", "user:pass", "custom_token",
                 "hunter2hunter2", "shh_value"})
    BOOST_TEST(has(s, v), "secret_values lacks " << v);
  BOOST_TEST(!has(s, "/usr/bin"));
  BOOST_TEST(!has(s, "/home/x"));
  BOOST_TEST(!has(s, "127.0.0.1:1"));
  BOOST_TEST(!has(s, ""));
  // The same value from two places appears once.
  settings same;
  same.github_token = "dup_token";
  auto d = secret_values(same, {{"GITHUB_TOKEN", "dup_token"}});
  BOOST_TEST(d.size() == 1u);
  BOOST_TEST(secret_values(settings{}, {}).empty());
}

BOOST_AUTO_TEST_CASE(chat_secrets_are_secret_in_every_part_that_could_print) {
  settings cfg;
  cfg.slack_webhook_url
    = "https://hooks.slack.com/services/T0001/B0002/slackTOKENpart3";
  cfg.flowdock_flow_tokens
    = R"({"ops": "flowTOKENops1", "dev":"flow\"TOKEN\"dev2"})";
  cfg.hipchat_token = "hipchatTOKEN";
  cfg.campfire_token = "campfireTOKEN";
  cfg.notify_webhook_secret = "hookSECRET";
  auto s = secret_values(
    cfg,
    {{"FLOWDOCK_FLOW_TOKENS", R"({"x":"envFLOW"})"},
     {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/A/B/envSLACK"}});
  for (auto v :
       {"T0001/B0002/slackTOKENpart3", "slackTOKENpart3", "flowTOKENops1",
        "flow\"TOKEN\"dev2", "hipchatTOKEN", "campfireTOKEN", "hookSECRET",
        "envFLOW", "envSLACK", "A/B/envSLACK", cfg.slack_webhook_url.c_str(),
        cfg.flowdock_flow_tokens.c_str()})
    BOOST_TEST(has(s, v), "secret_values lacks " << v);
  // The room names are not secrets: redacting them would garble logs.
  BOOST_TEST(!has(s, "ops"));
  BOOST_TEST(!has(s, "dev"));
  BOOST_TEST(!has(s, "x"));
}

// Found by fuzz_config: a Slack URL ending in "/services/" gave an empty
// "secret" (the part after it).
BOOST_AUTO_TEST_CASE(no_empty_part_of_a_chat_secret) {
  settings cfg;
  cfg.slack_webhook_url = "https://hooks.slack.com/services/";
  auto s = secret_values(cfg, {{"SLACK_WEBHOOK_URL", "/services/"}});
  BOOST_TEST(!has(s, ""));
  BOOST_TEST(has(s, cfg.slack_webhook_url));
  BOOST_TEST(has(s, "/services/"));
}

BOOST_AUTO_TEST_CASE(provider_secrets_from_a_config_file_are_redacted_too) {
  temp_cwd tmp;
  auto file = tmp.write("heaven.conf",
                        "HEROKU_API_KEY=file_heroku_key\n"
                        "BEANSTALK_SECRET_ACCESS_KEY=file_aws_secret\n"
                        "HEAVEN_POLL_INTERVAL_MS=250\n");
  auto s = ok(load_settings({}, {{"HEAVEN_CONFIG", file}}));
  BOOST_TEST(s.heroku_api_key == "file_heroku_key");
  BOOST_TEST(s.poll_interval_ms == 250);
  auto secrets = secret_values(s, {});
  BOOST_TEST(has(secrets, "file_heroku_key"));
  BOOST_TEST(has(secrets, "file_aws_secret"));
  BOOST_TEST(contains(err(load_settings({"--poll-interval-ms", "0"}, {})),
                      "HEAVEN_POLL_INTERVAL_MS must be at least 1"));
}

BOOST_AUTO_TEST_CASE(queue_deployments_is_off_unless_set) {
  temp_cwd tmp;
  BOOST_TEST(!ok(load_settings({}, {})).queue_deployments);
  BOOST_TEST(ok(load_settings({}, {{"HEAVEN_QUEUE_DEPLOYMENTS", "1"}}))
               .queue_deployments);
  BOOST_TEST(ok(load_settings({"--queue-deployments"}, {})).queue_deployments);
  BOOST_TEST(!ok(load_settings({"--queue-deployments=0"},
                               {{"HEAVEN_QUEUE_DEPLOYMENTS", "1"}}))
                .queue_deployments);
  BOOST_TEST(err(load_settings({}, {{"HEAVEN_QUEUE_DEPLOYMENTS", "maybe"}}))
             == "HEAVEN_QUEUE_DEPLOYMENTS must be true or false (1/0), got "
                "'maybe'");
}

BOOST_AUTO_TEST_CASE(max_running_is_at_least_one) {
  temp_cwd tmp;
  BOOST_TEST(ok(load_settings({}, {})).max_running == 64);
  BOOST_TEST(ok(load_settings({"--max-running", "3"}, {})).max_running == 3);
  BOOST_TEST(ok(load_settings({}, {{"HEAVEN_MAX_RUNNING", "1"}})).max_running
             == 1);
  BOOST_TEST(contains(err(load_settings({}, {{"HEAVEN_MAX_RUNNING", "0"}})),
                      "HEAVEN_MAX_RUNNING must be at least 1"));
  BOOST_TEST(contains(err(load_settings({"--max-running", "x"}, {})),
                      "HEAVEN_MAX_RUNNING must be a non-negative whole "
                      "number, got 'x'"));
}

BOOST_AUTO_TEST_CASE(help_mentions_every_setting) {
  // The variables are the ///< comments of the settings struct.
  std::ifstream in{std::string{HEAVEN_SOURCE_DIR} + "/base/config.hpp"};
  BOOST_REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  auto src = text.str();
  auto begin = src.find("struct settings {");
  auto end = src.find("};", begin);
  BOOST_REQUIRE(begin != std::string::npos);
  auto body = src.substr(begin, end - begin);
  std::regex var{R"(///<\s*([A-Z][A-Z0-9_]+))"};
  std::set<std::string> names;
  for (std::sregex_iterator i{body.begin(), body.end(), var}, e; i != e; ++i)
    names.insert((*i)[1]);
  BOOST_TEST(names.size() >= 16u);
  auto help = help_text();
  for (auto& n : names)
    BOOST_TEST(contains(help, n), "help_text does not mention " << n);
  for (auto flag : {"--listen", "--data-dir", "--insecure", "--config",
                    "--withhold-env", "--deployment-timeout"})
    BOOST_TEST(contains(help, flag), "help_text does not mention " << flag);
  // Defaults are shown, secrets have none.
  BOOST_TEST(contains(help, "127.0.0.1:8080"));
  BOOST_TEST(contains(help, "300"));
}

BOOST_AUTO_TEST_CASE(current_environment_reads_the_process) {
  ::setenv("HEAVEN_TEST_MARKER", "a=b c", 1);
  auto env = current_environment();
  ::unsetenv("HEAVEN_TEST_MARKER");
  auto i = std::find_if(env.begin(), env.end(), [](auto& kv) {
    return kv.first == "HEAVEN_TEST_MARKER";
  });
  BOOST_REQUIRE(i != env.end());
  BOOST_TEST(i->second == "a=b c");
}

BOOST_AUTO_TEST_SUITE_END()
