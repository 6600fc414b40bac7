// HEAVEN_DATABASE_URL: parsed, validated, withheld from deployments and
// redacted; refused until the PostgreSQL store exists.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/config.hpp"

using namespace heaven;
namespace fs = std::filesystem;

namespace {

/// A fresh working directory (no conf/heaven.conf leaks in) while it lives.
struct scratch_cwd {
  fs::path path;
  fs::path old;
  scratch_cwd() {
    std::string text = fs::temp_directory_path() / "heaven-dburl-XXXXXX";
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = fs::canonical(text);
    old = fs::current_path();
    fs::current_path(path);
  }
  ~scratch_cwd() {
    std::error_code ec;
    fs::current_path(old, ec);
    fs::remove_all(path, ec);
  }
};

/// The error load_settings gives ("" when it succeeds).
std::string error_of(const std::vector<std::string>& args,
                     const string_pairs& env) {
  auto r = load_settings(args, env);
  if (auto e = std::get_if<std::string>(&r))
    return *e;
  return "";
}

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

BOOST_AUTO_TEST_SUITE(config_database)

BOOST_AUTO_TEST_CASE(unset_means_sqlite_as_before) {
  scratch_cwd dir;
  auto r = load_settings({}, {});
  BOOST_REQUIRE(std::holds_alternative<settings>(r));
  BOOST_TEST(std::get<settings>(r).database_url == "");
  // Set to nothing: the same.
  r = load_settings({}, {{"HEAVEN_DATABASE_URL", ""}});
  BOOST_REQUIRE(std::holds_alternative<settings>(r));
  BOOST_TEST(std::get<settings>(r).database_url == "");
}

/// The URL load_settings takes ("" and a failed check when it refuses).
std::string url_of(const std::vector<std::string>& args,
                   const string_pairs& env) {
  auto r = load_settings(args, env);
  if (auto e = std::get_if<std::string>(&r)) {
    BOOST_ERROR("refused: " << *e);
    return {};
  }
  return std::get<settings>(r).database_url;
}

BOOST_AUTO_TEST_CASE(a_postgresql_url_is_taken_from_everywhere) {
  scratch_cwd dir;
  for (std::string url : {"postgresql://heaven:s3cret@db.example:5432/heaven",
                          "postgres://db.example/heaven", "postgresql://"})
    BOOST_TEST(url_of({}, {{"HEAVEN_DATABASE_URL", url}}) == url);
  // From the config file and from a file named by the flag, too.
  std::ofstream{dir.path / "heaven.conf"}
    << "HEAVEN_DATABASE_URL=postgresql://h@db/heaven\n";
  BOOST_TEST(url_of({"--config", (dir.path / "heaven.conf").string()}, {})
             == "postgresql://h@db/heaven");
  std::ofstream{dir.path / "url"} << "postgres://h:pw@db/heaven\n";
  BOOST_TEST(url_of({"--database-url-file", (dir.path / "url").string()}, {})
             == "postgres://h:pw@db/heaven");
  // The flag never takes the URL itself (it would show in a process list).
  BOOST_TEST(error_of({"--database-url", "postgres://db/heaven"}, {})
             == "unknown option --database-url (see heaven --help)");
}

BOOST_AUTO_TEST_CASE(the_lease_is_at_least_two_seconds) {
  scratch_cwd dir;
  auto r = load_settings({}, {});
  BOOST_REQUIRE(std::holds_alternative<settings>(r));
  BOOST_TEST(std::get<settings>(r).lease_seconds == 30);
  r = load_settings({"--lease-seconds", "3"}, {});
  BOOST_REQUIRE(std::holds_alternative<settings>(r));
  BOOST_TEST(std::get<settings>(r).lease_seconds == 3);
  BOOST_TEST(error_of({}, {{"HEAVEN_LEASE_SECONDS", "1"}})
             == "HEAVEN_LEASE_SECONDS must be at least 2");
}

BOOST_AUTO_TEST_CASE(another_scheme_is_an_error_that_does_not_echo_it) {
  scratch_cwd dir;
  auto expected = std::string{
    "HEAVEN_DATABASE_URL must be a postgresql:// (or postgres://) URL"};
  for (auto url : {"mysql://root:hunter2@db/heaven", "host=db password=hunter2",
                   "POSTGRESQL://x:hunter2@db/heaven",
                   "sqlite:///var/heaven.db", "postgresql:/x:hunter2@db"}) {
    auto e = error_of({}, {{"HEAVEN_DATABASE_URL", url}});
    BOOST_TEST(e == expected, url);
    BOOST_TEST(e.find("hunter2") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(its_passwords_are_found_in_every_form) {
  using v = std::vector<std::string>;
  BOOST_TEST(database_url_passwords("postgresql://heaven:s3cret@db:5432/h")
             == (v{"s3cret"}));
  BOOST_TEST(database_url_passwords("postgres://heaven:p%40ss%2Fw@db/h")
             == (v{"p%40ss%2Fw", "p@ss/w"}));
  // An @ in the password (written as is): the user info ends at the last @.
  BOOST_TEST(database_url_passwords("postgresql://u:a@b@db/h") == (v{"a@b"}));
  BOOST_TEST(
    database_url_passwords("postgresql://u@db/h?sslmode=require&password=q1")
    == (v{"q1"}));
  BOOST_TEST(database_url_passwords("postgresql://u@db/h").empty());
  BOOST_TEST(database_url_passwords("postgresql://db/h?user=u").empty());
  BOOST_TEST(database_url_passwords("postgresql://u:@db/h").empty());
  BOOST_TEST(database_url_passwords("").empty());
}

BOOST_AUTO_TEST_CASE(its_password_is_redacted_and_it_is_withheld) {
  auto url = std::string{"postgresql://heaven:pw%21x@db:5432/heaven"};
  settings cfg;
  cfg.database_url = url;
  auto secrets = secret_values(cfg, {});
  BOOST_TEST(has(secrets, url));
  BOOST_TEST(has(secrets, "pw%21x"));
  BOOST_TEST(has(secrets, "pw!x"));
  // Found in the environment alone (a deployment's log redacts it too).
  auto from_env = secret_values(settings{}, {{"HEAVEN_DATABASE_URL", url}});
  BOOST_TEST(has(from_env, "pw!x"));
  BOOST_TEST(has(from_env, url));
  // Deploy scripts never see it.
  string_pairs env{{"PATH", "/usr/bin"}, {"HEAVEN_DATABASE_URL", url}};
  auto child = child_environment(cfg, env);
  BOOST_TEST(child.size() == 1u);
  BOOST_TEST(child.front().first == "PATH");
  BOOST_TEST(child_environment(settings{}, env).size() == 1u);
}

BOOST_AUTO_TEST_CASE(help_tells_the_setting_and_its_file_flag) {
  auto help = help_text();
  BOOST_TEST(help.find("HEAVEN_DATABASE_URL, --database-url-file")
             != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
