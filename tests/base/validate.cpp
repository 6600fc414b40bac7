#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/text.hpp"
#include "base/validate.hpp"

extern char** environ;

using namespace heaven;

namespace {

/// True when `s` is well-formed UTF-8 (no truncated or stray sequences).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t more = 0;
    if (c < 0x80)
      more = 0;
    else if ((c & 0xE0) == 0xC0)
      more = 1;
    else if ((c & 0xF0) == 0xE0)
      more = 2;
    else if ((c & 0xF8) == 0xF0)
      more = 3;
    else
      return false; // A stray continuation byte or an invalid lead byte.
    if (i + more >= s.size())
      return false; // Truncated at the end.
    for (size_t k = 1; k <= more; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return false;
    i += more + 1;
  }
  return true;
}

/// Asks the real git whether `ref` is a valid one-level-or-more ref name.
/// Runs git without a shell so any byte (newline, `$`, ...) reaches it as is.
/// Returns -1 when git could not be run.
int git_accepts(const std::string& ref) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = {"git", "check-ref-format",
                                   "--allow-onelevel", ref};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "git", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return -1;
  auto code = WEXITSTATUS(status);
  if (code == 0)
    return 1;
  return code == 1 ? 0 : -1;
}

bool printable_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f)
      return false;
  return true;
}

const std::string sha40 = "0123456789abcdef0123456789abcdef01234567";

// Refs valid under git's rules and ours.
const std::vector<std::string> good_refs = {
  "main",
  "master",
  "feature/x-1",
  "v1.2.3",
  "release/2026.11",
  sha40,
  "HEAD",
  "a",
  "user/topic/sub-topic_2",
  "fix@home",
  "a.b",
  "a/b.c/d",
  "x+y",
  "100%",
  "a{b}",
};

// Refs every rule set rejects (git's and ours); none starts with '-' so git
// can be asked too.
const std::vector<std::string> bad_refs = {
  "",
  "@",
  "a..b",
  "..",
  "a@{1}",
  "@{-1}",
  "a\\b",
  "a b",
  " main",
  "main ",
  "a~1",
  "a^",
  "a:b",
  "a?",
  "a*",
  "a[b",
  "/main",
  "main/",
  "main.",
  "main.lock",
  "a.lock/b",
  "a/b.lock",
  "a//b",
  "a/.b",
  ".main",
  "a/.",
  "a\tb",
  "a\nb",
  "main\n",
  std::string{"a\x01"
              "b"},
  std::string{"a\x1f"
              "b"},
  std::string{"a\x7f"
              "b"},
  "x; rm -rf /",
  "x && id",
  "main | cat /etc/passwd",
  "$(id) x",
  "a\nrm -rf /",
};

} // namespace

BOOST_AUTO_TEST_SUITE(validate)

BOOST_AUTO_TEST_CASE(utf8_validator_self_check) {
  BOOST_TEST(valid_utf8("plain"));
  BOOST_TEST(valid_utf8("caf\xc3\xa9"));
  BOOST_TEST(valid_utf8("\xf0\x9f\x9a\x80"));
  BOOST_TEST(!valid_utf8("caf\xc3"));
  BOOST_TEST(!valid_utf8("\xf0\x9f\x9a"));
  BOOST_TEST(!valid_utf8("\xa9"));
  BOOST_TEST(!valid_utf8("\xff"));
}

BOOST_AUTO_TEST_CASE(refs_accepted) {
  for (auto& r : good_refs)
    BOOST_TEST(valid_ref(r), "valid_ref('" << r << "') should be true");
}

BOOST_AUTO_TEST_CASE(refs_rejected) {
  for (auto& r : bad_refs)
    BOOST_TEST(!valid_ref(r), "valid_ref('" << r << "') should be false");
}

BOOST_AUTO_TEST_CASE(refs_rejected_beyond_git) {
  // git allows these; heaven also refuses a leading dash (it could pass as an
  // option to git or a deploy tool) and anything but printable ASCII.
  BOOST_TEST(!valid_ref("-x"));
  BOOST_TEST(!valid_ref("--upload-pack=touch /tmp/pwned"));
  BOOST_TEST(!valid_ref("-"));
  BOOST_TEST(!valid_ref("caf\xc3\xa9"));
  BOOST_TEST(!valid_ref("\xf0\x9f\x9a\x80"));
  BOOST_TEST(!valid_ref("a\xff"));
}

BOOST_AUTO_TEST_CASE(refs_with_shell_metacharacters_follow_git) {
  // `$(id)` and backticks are valid git ref names (git accepts them), so
  // valid_ref does too: safety comes from never handing a ref to a shell
  // (it reaches scripts as the BRANCH variable), not from this check.
  BOOST_TEST(valid_ref("$(id)"));
  BOOST_TEST(valid_ref("`id`"));
  BOOST_TEST(valid_ref("a;b"));
  // With a space, newline or colon they are no longer refs at all.
  BOOST_TEST(!valid_ref("$(rm -rf /)"));
  BOOST_TEST(!valid_ref("`rm -rf /`"));
  BOOST_TEST(!valid_ref("main\n$(id)"));
}

BOOST_AUTO_TEST_CASE(refs_agree_with_git_check_ref_format) {
  if (git_accepts("main") != 1) {
    BOOST_TEST_MESSAGE("git is not available; skipping the cross-check");
    return;
  }
  std::vector<std::string> all = bad_refs;
  all.insert(all.end(), good_refs.begin(), good_refs.end());
  for (auto extra :
       {"$(id)", "`id`", "a;b", "caf\xc3\xa9", "a/b/c.d", "refs/heads/main",
        "a.lock.b", "lock", ".lock", "a@b", "@@", "a@", "{}", "a/b/"})
    all.emplace_back(extra);
  for (auto& r : all) {
    if (r.empty())
      continue; // git's own argv parser would take "" as missing.
    auto git = git_accepts(r);
    BOOST_REQUIRE_MESSAGE(git >= 0, "git failed on '" << r << "'");
    bool expected = git == 1 && printable_ascii(r);
    BOOST_TEST(valid_ref(r) == expected, "valid_ref('"
                                           << r << "') = " << valid_ref(r)
                                           << ", git says " << git);
  }
}

BOOST_AUTO_TEST_CASE(tasks) {
  for (auto t : {"deploy", "deploy:migrations", "deploy:a:b",
                 "deploy:with-dash", "deploy:with_underscore", "deploy:X1",
                 "deploy:rollback", "deploy:lock"})
    BOOST_TEST(valid_task(t), "valid_task('" << t << "') should be true");
  for (auto t :
       {"deploy:",   "deployx",     "deploy::x",  "deploy ",    " deploy",
        "deploy;ls", "deploy:a;ls", "",           "Deploy",     "DEPLOY",
        "deploy:a:", ":deploy",     "deploy:a b", "deploy:a.b", "deploy:$(id)",
        "deploy\n",  "deploy:a/b",  "deplo",      "d",          "deploy-x",
        "deploy:é"})
    BOOST_TEST(!valid_task(t), "valid_task('" << t << "') should be false");
}

BOOST_AUTO_TEST_CASE(script_paths) {
  for (auto p : {"script/deploy", "bin/deploy.sh", "deploy", "a/b/c",
                 "deploy/run.sh", "my-app/deploy_1.rb", "x.py", "a-b/c-d"})
    BOOST_TEST(valid_script_path(p),
               "valid_script_path('" << p << "') should be true");
  for (auto p : {"../x",
                 "/abs",
                 "/abs/x.sh",
                 "script/../x",
                 "a//b",
                 ".hidden",
                 "a/.hidden",
                 "script/",
                 "script/deploy/",
                 "script/deploy.",
                 "a b",
                 "script/de ploy",
                 " deploy",
                 "x.sh.bak",
                 "a.b/c",
                 ".",
                 "..",
                 "",
                 "./deploy",
                 "deploy;rm",
                 "$(id)",
                 "deploy\n",
                 "a\\b",
                 "x.s-h",
                 "caf\xc3\xa9"})
    BOOST_TEST(!valid_script_path(p),
               "valid_script_path('" << p << "') should be false");
}

BOOST_AUTO_TEST_CASE(shas) {
  BOOST_TEST(valid_sha(sha40));
  BOOST_TEST(valid_sha("ABCDEF0123456789ABCDEF0123456789ABCDEF01"));
  BOOST_TEST(valid_sha(std::string(40, 'f')));
  BOOST_TEST(!valid_sha(""));
  BOOST_TEST(!valid_sha(sha40.substr(0, 39)));
  BOOST_TEST(!valid_sha(sha40 + "0"));
  BOOST_TEST(!valid_sha(sha40.substr(0, 7)));
  auto g = sha40;
  g[10] = 'g';
  BOOST_TEST(!valid_sha(g));
  auto sp = sha40;
  sp[39] = ' ';
  BOOST_TEST(!valid_sha(sp));
  BOOST_TEST(!valid_sha("main"));
}

BOOST_AUTO_TEST_CASE(truncate_short_and_exact) {
  BOOST_TEST(truncate_description("") == "");
  BOOST_TEST(truncate_description("Deploying main") == "Deploying main");
  std::string exact(140, 'a');
  BOOST_TEST(truncate_description(exact) == exact);
  std::string exact_mb;
  while (exact_mb.size() < 140)
    exact_mb += "\xc3\xa9"; // 70 x é = 140 bytes
  BOOST_TEST(truncate_description(exact_mb) == exact_mb);
}

BOOST_AUTO_TEST_CASE(truncate_long_ascii) {
  std::string s(141, 'a');
  auto r = truncate_description(s);
  BOOST_TEST(r.size() == 140u);
  BOOST_TEST(r == std::string(137, 'a') + "...");
  std::string huge(10000, 'z');
  BOOST_TEST(truncate_description(huge).size() == 140u);
  BOOST_TEST(truncate_description(huge, 20) == std::string(17, 'z') + "...");
}

BOOST_AUTO_TEST_CASE(truncate_never_splits_utf8) {
  // Every alignment of 2-, 3- and 4-byte characters against the cut point.
  std::vector<std::string> chars = {"\xc3\xa9", "\xe2\x82\xac",
                                    "\xf0\x9f\x9a\x80"};
  for (auto& ch : chars) {
    for (size_t prefix = 0; prefix < 5; ++prefix) {
      std::string s(prefix, 'x');
      while (s.size() < 300)
        s += ch;
      BOOST_REQUIRE(valid_utf8(s));
      for (size_t max : {140u, 141u, 142u, 143u, 10u, 7u, 6u, 5u, 4u}) {
        auto r = truncate_description(s, max);
        BOOST_TEST(r.size() <= max);
        BOOST_TEST(valid_utf8(r), "split UTF-8 at max " << max);
        BOOST_TEST(r.size() >= 3u);
        BOOST_TEST(r.substr(r.size() - 3) == "...");
        // Only whole characters were dropped: at most one of them short.
        BOOST_TEST(r.size() + ch.size() > max);
        // What is kept is a prefix of the original.
        BOOST_TEST(s.compare(0, r.size() - 3, r, 0, r.size() - 3) == 0);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(truncate_emoji_at_boundary) {
  // 136 ASCII bytes then a 4-byte emoji: the emoji straddles the cut at 137.
  std::string s(136, 'a');
  s += "\xf0\x9f\x9a\x80 and more text after the rocket";
  auto r = truncate_description(s);
  BOOST_TEST(r == std::string(136, 'a') + "...");
  BOOST_TEST(valid_utf8(r));
}

BOOST_AUTO_TEST_CASE(truncate_small_max) {
  BOOST_TEST(truncate_description("abcdef", 3) == "...");
  BOOST_TEST(truncate_description("abcdef", 2) == "..");
  BOOST_TEST(truncate_description("abcdef", 0) == "");
  BOOST_TEST(truncate_description("abcdef", 4) == "a...");
  BOOST_TEST(truncate_description("abcdef", 6) == "abcdef");
  BOOST_TEST(truncate_description("abc", 3) == "abc");
  // A multi-byte character that does not fit leaves just the ellipsis.
  BOOST_TEST(truncate_description("\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80", 5)
             == "...");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(urls)

BOOST_AUTO_TEST_CASE(clone_urls_git_may_be_given) {
  for (auto ok : {"https://github.com/octo/app.git", "http://git.local/a",
                  "ssh://git@github.com/octo/app.git", "git://host/app",
                  "file:///srv/git/app.git", "git@github.com:octo/app.git"})
    BOOST_TEST(heaven::valid_clone_url(ok), ok);
  for (auto bad : {"", "-uhttps://x", "--upload-pack=touch /tmp/x",
                   "/srv/git/app", "app.git", "https://", "ext::sh -c id",
                   "https://github.com/a b", "https://github.com/a\nb",
                   "git@github.com:", "@host:path", "file:///srv/x\ty"})
    BOOST_TEST(!heaven::valid_clone_url(bad), bad);
}

BOOST_AUTO_TEST_CASE(url_host_takes_the_host_alone) {
  BOOST_TEST(heaven::url_host("https://github.com/") == "github.com");
  BOOST_TEST(heaven::url_host("https://github.com") == "github.com");
  BOOST_TEST(heaven::url_host("https://x:y@ghe.example.com:8443/api/v3")
             == "ghe.example.com");
  BOOST_TEST(heaven::url_host("file:///srv/git/app.git") == "");
  BOOST_TEST(heaven::url_host("github.com") == "");
}

BOOST_AUTO_TEST_CASE(url_without_credentials_drops_userinfo_only) {
  BOOST_TEST(heaven::url_without_credentials(
               "https://user:s3cret@github.com/octo/app.git")
             == "https://github.com/octo/app.git");
  BOOST_TEST(heaven::url_without_credentials("https://github.com/a@b.git")
             == "https://github.com/a@b.git");
  BOOST_TEST(heaven::url_without_credentials("file:///srv/app")
             == "file:///srv/app");
  BOOST_TEST(heaven::url_without_credentials("not a url") == "not a url");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(shell_quote_makes_any_text_one_word_for_sh) {
  BOOST_TEST(heaven::shell_quote("main") == "'main'");
  BOOST_TEST(heaven::shell_quote("") == "''");
  BOOST_TEST(heaven::shell_quote("it's") == "'it'\\''s'");
  // The real sh reads each back as exactly the text, running nothing.
  for (std::string text : {"x; rm -rf /", "$(touch /tmp/heaven-pwned)",
                           "a'b\"c`d`", "line\nbreak", "*"}) {
    auto cmd = "printf %s " + heaven::shell_quote(text);
    auto pipe = popen(cmd.c_str(), "r");
    BOOST_REQUIRE(pipe != nullptr);
    std::string out;
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0)
      out.append(buf, n);
    BOOST_TEST(pclose(pipe) == 0);
    BOOST_TEST(out == text);
  }
  BOOST_TEST(!std::filesystem::exists("/tmp/heaven-pwned"));
}

BOOST_AUTO_TEST_SUITE(input_limits)

BOOST_AUTO_TEST_CASE(check_text_counts_characters_not_bytes) {
  using heaven::check_text;
  BOOST_TEST(check_text("f", std::string(255, 'e'), 255) == "");
  BOOST_TEST(check_text("f", std::string(256, 'e'), 255)
             == "f is longer than 255 characters");
  // 255 two-byte and 255 four-byte characters are 255 characters.
  std::string accents, emoji;
  for (int i = 0; i < 255; ++i) {
    accents += "é";
    emoji += "\xf0\x9f\x9a\x80";
  }
  BOOST_TEST(check_text("f", accents, 255) == "");
  BOOST_TEST(check_text("f", emoji, 255) == "");
  BOOST_TEST(check_text("f", accents + "é", 255)
             == "f is longer than 255 characters");
  BOOST_TEST(check_text("f", "", 255) == "");
}

BOOST_AUTO_TEST_CASE(check_text_refuses_every_control_character) {
  using heaven::check_text;
  // C0, DEL and C1 (U+0080-U+009F) anywhere, a NUL included: never cut at
  // it, never accepted.
  for (int c = 0; c < 0x20; ++c) {
    std::string text = "prod";
    text += static_cast<char>(c);
    text += "x";
    BOOST_TEST(check_text("deployment.environment", text, 255)
                 == "deployment.environment contains a control character",
               "byte " << c);
  }
  BOOST_TEST(check_text("f", "a\x7f", 255) == "f contains a control character");
  BOOST_TEST(check_text("f", "a\xc2\x80", 255)
             == "f contains a control character");
  BOOST_TEST(check_text("f", "a\xc2\x9f", 255)
             == "f contains a control character");
  // U+00A0 (no-break space) and beyond are text.
  BOOST_TEST(check_text("f",
                        "a\xc2\xa0"
                        "b",
                        255)
             == "");
  BOOST_TEST(check_text("f", "日本\xe2\x80\x8b", 255) == "");
  // A control character wins over the length: a 1 MB value with a NUL says
  // what would still be wrong after shortening it.
  std::string huge(1 << 20, 'x');
  huge[500] = '\0';
  BOOST_TEST(check_text("f", huge, 255) == "f contains a control character");
}

BOOST_AUTO_TEST_CASE(check_text_refuses_what_is_not_utf8) {
  using heaven::check_text;
  for (std::string bad :
       {"\xff", "\x80", "a\xc3", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80",
        "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xe2\x82", "\xe2\x28\xa1"})
    BOOST_TEST(check_text("f", bad, 255) == "f is not valid UTF-8",
               "bytes of length " << bad.size());
  // The highest code point and the last before the surrogates are fine.
  BOOST_TEST(check_text("f", "\xf4\x8f\xbf\xbf", 255) == "");
  BOOST_TEST(check_text("f", "\xed\x9f\xbf", 255) == "");
}

BOOST_AUTO_TEST_CASE(check_bytes_counts_bytes) {
  using heaven::check_bytes;
  BOOST_TEST(check_bytes("deployment.ref", std::string(255, 'r'), 255) == "");
  BOOST_TEST(check_bytes("deployment.ref", std::string(256, 'r'), 255)
             == "deployment.ref is longer than 255 bytes");
  std::string accents;
  for (int i = 0; i < 128; ++i)
    accents += "é"; // 256 bytes, 128 characters
  BOOST_TEST(check_bytes("deployment.ref", accents, 255)
             == "deployment.ref is longer than 255 bytes");
  BOOST_TEST(check_bytes("deployment.ref", std::string{"main\0", 5}, 255)
             == "deployment.ref contains a control character");
}

BOOST_AUTO_TEST_CASE(logins_follow_githubs_rules) {
  using heaven::check_login;
  for (const auto& ok : std::vector<std::string>{
         "octocat", "Codertocat", "a", "mona-lisa", "octocat_acme",
         std::string(39, 'a'), "dependabot[bot]", "github-actions[bot]",
         std::string(39, 'b') + "[bot]"})
    BOOST_TEST(check_login("sender.login", ok) == "", ok);
  BOOST_TEST(check_login("sender.login", std::string(40, 'a'))
             == "sender.login is longer than 39 characters");
  BOOST_TEST(check_login("sender.login", std::string(1 << 20, 'a'))
             == "sender.login is longer than 39 characters");
  for (std::string bad : {"", "a b", "a/b", "a.b", "[bot]", "é", "a[bot]x"})
    BOOST_TEST(check_login("sender.login", bad)
                 == "sender.login is not a GitHub login (letters, digits, '-' "
                    "and '_')",
               bad);
  BOOST_TEST(check_login("sender.login", std::string{"eve\0", 4})
             == "sender.login contains a control character");
}

BOOST_AUTO_TEST_CASE(repository_names_follow_githubs_rules) {
  using heaven::check_full_name;
  const std::string path = "repository.full_name";
  for (const auto& ok : std::vector<std::string>{
         "octo/app", "Codertocat/Hello-World", "o/.github", "o/a_b.c-d",
         "octo_acme/app", std::string(39, 'o') + "/" + std::string(100, 'n')})
    BOOST_TEST(check_full_name(path, ok) == "", ok);
  BOOST_TEST(check_full_name(path, std::string(40, 'o') + "/app")
             == path + " has an owner longer than 39 characters");
  BOOST_TEST(check_full_name(path, "octo/" + std::string(101, 'n'))
             == path + " has a name longer than 100 characters");
  BOOST_TEST(check_full_name(path, "octo/" + std::string(1 << 20, 'n'))
             == path + " is longer than 140 characters");
  BOOST_TEST(check_full_name(path, "octo") == path + " is not owner/name");
  BOOST_TEST(check_full_name(path, "o.o/app")
             == path
                  + " has an owner that is not a GitHub login (letters, "
                    "digits, '-' and '_')");
  for (std::string bad :
       {"octo/", "octo/..", "octo/.", "octo/a b", "octo/a/b", "octo/é"})
    BOOST_TEST(check_full_name(path, bad)
                 == path
                      + " is not a GitHub repository name (letters, "
                        "digits, '.', '-' and '_')",
               bad);
  BOOST_TEST(check_full_name(path, std::string{"octo/app\0x", 10})
             == path + " contains a control character");
  BOOST_TEST(
    heaven::check_repository_name("repository.name", std::string(101, 'n'))
    == "repository.name is longer than 100 characters");
}

BOOST_AUTO_TEST_SUITE_END()
