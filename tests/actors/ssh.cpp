// The SSH actor against a real OpenSSH server on 127.0.0.1.
#include "actors/ssh.hpp"
#include "tests/support/logger.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "tools/support/recorder.hpp"
#include "tools/support/sshd.hpp"

using namespace heaven;
using namespace heaven::test;
namespace fs = std::filesystem;

namespace {

/// A number no other test run uses, to find remote processes by.
std::string unique_tag() {
  static std::mt19937_64 gen{std::random_device{}()};
  return std::to_string(100000 + gen() % 900000);
}

/// True while a live (not zombie) process has `needle` in its command line.
bool process_running(const std::string& needle) {
  for (auto& entry : fs::directory_iterator("/proc")) {
    auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto cmdline = read_file(entry.path() / "cmdline");
    for (auto& c : cmdline)
      if (c == '\0')
        c = ' ';
    if (cmdline.find(needle) == std::string::npos)
      continue;
    auto stat = read_file(entry.path() / "stat");
    auto paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size()
        && stat[paren + 2] != 'Z')
      return true;
  }
  return false;
}

/// `public_key` ("type base64 comment") without its comment.
std::string without_comment(const std::string& public_key) {
  auto second = public_key.find(' ', public_key.find(' ') + 1);
  return public_key.substr(0, second);
}

/// How many times `needle` occurs in `text`.
size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1))
    ++n;
  return n;
}

struct ssh_fixture {
  // Before the actor system: its end (every session closed) comes first.
  sshd_server server;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record> rec = std::make_shared<record>();
  recorder_actor sink = sys.spawn(recorder, rec);

  ~ssh_fixture() {
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  /// Options that sign in to `srv` with its client key.
  ssh_options options_for(const sshd_server& srv) {
    ssh_options opts;
    opts.host = srv.host();
    opts.port = srv.port();
    opts.user = srv.user();
    opts.private_key = srv.client_key().private_key;
    opts.known_hosts = srv.write_known_hosts().string();
    opts.connect_timeout_ms = 20000;
    return opts;
  }

  ssh_options options() {
    return options_for(server);
  }

  /// Runs `command` on `ssh` and waits for the answer.
  ssh_result run(const ssh_actor& ssh, const std::string& command,
                 int64_t timeout_ms = 0) {
    caf::scoped_actor self{sys};
    ssh_result out;
    self
      ->request(ssh, std::chrono::seconds(120),
                ssh_command{command, timeout_ms})
      .receive([&](ssh_result& x) { out = std::move(x); },
               [&](caf::error& e) {
                 out.error = "request failed: " + sys.render(e);
               });
    return out;
  }

  /// Waits until the sink has `n` lines in all.
  bool wait_lines(size_t n) {
    return rec->wait([&] { return rec->lines.size() >= n; },
                     std::chrono::seconds(60));
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(ssh, ssh_fixture)

BOOST_AUTO_TEST_CASE(both_streams_line_by_line_with_the_host_prefix) {
  auto ssh = spawn_ssh(sys, options(), sink);
  auto result = run(ssh, "echo one; echo uno >&2; echo two; echo dos >&2;"
                         " printf three; printf tres >&2");
  BOOST_TEST(result.error == "");
  BOOST_TEST(result.exit_code == 0);
  BOOST_TEST(result.exit_signal == "");
  BOOST_REQUIRE(wait_lines(6));
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{"127.0.0.1 one", "127.0.0.1 two",
                                          "127.0.0.1 three"}));
  BOOST_TEST(rec->texts(stream::err)
             == (std::vector<std::string>{"127.0.0.1 uno", "127.0.0.1 dos",
                                          "127.0.0.1 tres"}));
}

BOOST_AUTO_TEST_CASE(exit_code_and_exit_signal) {
  auto ssh = spawn_ssh(sys, options(), sink);
  auto three = run(ssh, "echo before; exit 3");
  BOOST_TEST(three.error == "");
  BOOST_TEST(three.exit_code == 3);
  BOOST_TEST(three.exit_signal == "");
  auto term = run(ssh, "kill -TERM $$; echo not reached");
  BOOST_TEST(term.error == "");
  BOOST_TEST(term.exit_signal == "TERM");
  BOOST_TEST(term.exit_code == -1);
  BOOST_REQUIRE(wait_lines(1));
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{"127.0.0.1 before"}));
}

BOOST_AUTO_TEST_CASE(one_session_for_many_commands_in_the_remote_env) {
  ::setenv("HEAVEN_SSH_PROBE", "leaked", 1);
  auto opts = options();
  opts.label = "web-1";
  auto ssh = spawn_ssh(sys, opts, sink);
  auto first = run(ssh, "echo \"${HEAVEN_SSH_PROBE-unset} $HOME $USER\"");
  ::unsetenv("HEAVEN_SSH_PROBE");
  auto second = run(ssh, "pwd");
  auto third = run(ssh, "true");
  BOOST_TEST(first.exit_code == 0);
  BOOST_TEST(second.exit_code == 0);
  BOOST_TEST(third.exit_code == 0);
  BOOST_REQUIRE(wait_lines(2));
  auto home = std::string{current_user() == "root" ? "/root"
                                                   : std::getenv("HOME")};
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{
               "web-1 unset " + home + " " + current_user(), "web-1 " + home}));
  // Three commands, one sign-in.
  BOOST_TEST(eventually(
    [&] { return count_of(server.log(), "Accepted publickey for") == 1; }));
}

BOOST_AUTO_TEST_CASE(ecdsa_keys_sign_in_in_both_formats) {
  for (bool pem : {false, true}) {
    auto key = make_key("ecdsa", pem);
    BOOST_TEST(key.private_key.find(pem ? "BEGIN EC PRIVATE KEY"
                                        : "BEGIN OPENSSH PRIVATE KEY")
               != std::string::npos);
    server.authorize(key.public_key);
    auto opts = options();
    opts.private_key = key.private_key;
    auto ssh = spawn_ssh(sys, opts, sink);
    auto result = run(ssh, "echo ecdsa");
    BOOST_TEST(result.error == "");
    BOOST_TEST(result.exit_code == 0);
  }
  BOOST_REQUIRE(wait_lines(2));
  BOOST_TEST(
    rec->texts(stream::out)
    == (std::vector<std::string>{"127.0.0.1 ecdsa", "127.0.0.1 ecdsa"}));
  BOOST_TEST(count_of(server.log(), "ssh2: ECDSA SHA256:") == 2u);
}

BOOST_AUTO_TEST_CASE(rsa_keys_get_the_clear_error_without_connecting) {
  for (bool pem : {false, true}) {
    auto key = make_key("rsa", pem);
    BOOST_TEST(private_key_problem(key.private_key) == rsa_key_error);
    auto opts = options();
    opts.private_key = key.private_key;
    opts.port = 1; // Nothing listens there: a connection attempt would say so.
    auto ssh = spawn_ssh(sys, opts, sink);
    auto result = run(ssh, "echo never");
    BOOST_TEST(result.error == std::string{rsa_key_error});
    BOOST_TEST(result.exit_code == -1);
  }
  BOOST_TEST(rsa_key_error
             == "RSA keys cannot sign in to OpenSSH 9 through libssh2 1.10 "
                "(it only signs ssh-rsa with SHA-1): use an ed25519 or ECDSA "
                "deploy key");
  BOOST_TEST(rec->lines.empty());
}

BOOST_AUTO_TEST_CASE(other_key_problems_are_named_before_connecting) {
  BOOST_TEST(private_key_problem("")
             == "no deploy key is configured (DEPLOYMENT_PRIVATE_KEY)");
  BOOST_TEST(private_key_problem("ssh-ed25519 AAAA")
             == "the deploy key is not a private key (expected -----BEGIN "
                "OPENSSH PRIVATE KEY-----)");
  BOOST_TEST(private_key_problem(server.client_key().private_key) == "");
  temp_dir dir;
  auto rc = std::system(
    ("ssh-keygen -q -t ed25519 -N secret -f " + (dir.path / "k").string())
      .c_str());
  BOOST_REQUIRE(rc == 0);
  BOOST_TEST(private_key_problem(read_file(dir.path / "k"))
             == "the deploy key is protected by a passphrase: heaven needs a "
                "key without one");
}

BOOST_AUTO_TEST_CASE(an_unauthorized_key_is_refused_naming_user_and_host) {
  auto opts = options();
  opts.private_key = make_key("ed25519").private_key;
  auto ssh = spawn_ssh(sys, opts, sink);
  auto result = run(ssh, "echo never");
  auto prefix = "cannot sign in as " + server.user() + " to 127.0.0.1:"
                + std::to_string(server.port()) + " with the deploy key: ";
  BOOST_TEST(result.error.substr(0, prefix.size()) == prefix);
  BOOST_TEST(result.exit_code == -1);
}

BOOST_AUTO_TEST_CASE(an_unknown_host_key_is_refused_with_its_fingerprint) {
  auto opts = options();
  auto file = server.dir() / "empty_known_hosts";
  write_known_hosts(file, {});
  opts.known_hosts = file.string();
  auto ssh = spawn_ssh(sys, opts, sink);
  auto result = run(ssh, "echo never");
  BOOST_TEST(result.error
             == "host key of 127.0.0.1:" + std::to_string(server.port())
                  + " is not in " + file.string() + " (ED25519 "
                  + server.host_fingerprint() + ")");
  BOOST_TEST(count_of(server.log(), "Accepted publickey") == 0u);
  BOOST_TEST(rec->lines.empty());
}

BOOST_AUTO_TEST_CASE(a_changed_host_key_is_refused_with_its_fingerprint) {
  auto opts = options();
  auto file = server.dir() / "other_known_hosts";
  auto other = without_comment(make_key("ed25519").public_key);
  write_known_hosts(
    file, {"[127.0.0.1]:" + std::to_string(server.port()) + " " + other});
  opts.known_hosts = file.string();
  auto ssh = spawn_ssh(sys, opts, sink);
  auto result = run(ssh, "echo never");
  BOOST_TEST(result.error
             == "host key of 127.0.0.1:" + std::to_string(server.port())
                  + " does not match " + file.string() + " (ED25519 "
                  + server.host_fingerprint()
                  + "): the host's key changed or someone is in between");
  BOOST_TEST(count_of(server.log(), "Accepted publickey") == 0u);
}

BOOST_AUTO_TEST_CASE(an_ecdsa_host_is_verified_by_its_own_type) {
  sshd_server ecdsa_server{"ecdsa"};
  // Known: the host's ECDSA key (and an unrelated ed25519 key first).
  auto good = ecdsa_server.dir() / "known_hosts_good";
  write_known_hosts(good, {"[127.0.0.1]:9 " + server.host_public_key(),
                           ecdsa_server.host_key_line()});
  auto opts = options_for(ecdsa_server);
  opts.known_hosts = good.string();
  auto ssh = spawn_ssh(sys, opts, sink);
  auto ok = run(ssh, "echo ecdsa host");
  BOOST_TEST(ok.error == "");
  BOOST_TEST(ok.exit_code == 0);
  // Known only with an ed25519 key: the ECDSA key is not in the file.
  auto wrong = ecdsa_server.dir() / "known_hosts_wrong";
  write_known_hosts(wrong,
                    {"[127.0.0.1]:" + std::to_string(ecdsa_server.port()) + " "
                     + without_comment(make_key("ed25519").public_key)});
  opts.known_hosts = wrong.string();
  auto refused = run(spawn_ssh(sys, opts, sink), "echo never");
  BOOST_TEST(refused.error
             == "host key of 127.0.0.1:" + std::to_string(ecdsa_server.port())
                  + " is not in " + wrong.string() + " (ECDSA "
                  + ecdsa_server.host_fingerprint() + ")");
}

BOOST_AUTO_TEST_CASE(missing_known_hosts_and_closed_ports_are_named) {
  auto opts = options();
  opts.known_hosts = (server.dir() / "absent").string();
  auto absent = run(spawn_ssh(sys, opts, sink), "true");
  BOOST_TEST(absent.error
             == "cannot read the known_hosts file " + opts.known_hosts
                  + " (for 127.0.0.1:" + std::to_string(server.port()) + ")");
  opts.known_hosts = "";
  auto unset = run(spawn_ssh(sys, opts, sink), "true");
  BOOST_TEST(unset.error
             == "no known_hosts file is configured for 127.0.0.1:"
                  + std::to_string(server.port())
                  + ": heaven verifies every host key");
  opts = options();
  opts.port = 1;
  auto refused = run(spawn_ssh(sys, opts, sink), "true");
  BOOST_TEST(refused.error
             == "cannot connect to 127.0.0.1:1: Connection refused");
}

BOOST_AUTO_TEST_CASE(a_host_that_never_answers_times_out_connecting) {
  // A listening socket nobody accepts on: TCP connects, SSH never starts.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
                == 0);
  BOOST_REQUIRE(::listen(fd, 4) == 0);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                == 0);
  auto opts = options();
  opts.port = ntohs(addr.sin_port);
  opts.connect_timeout_ms = 500;
  auto result = run(spawn_ssh(sys, opts, sink), "true");
  ::close(fd);
  BOOST_TEST(result.error
             == "connecting to 127.0.0.1:" + std::to_string(opts.port)
                  + " timed out after 500 ms");
}

BOOST_AUTO_TEST_CASE(cancel_between_commands_closes_the_session) {
  auto ssh = spawn_ssh(sys, options(), sink);
  BOOST_TEST(run(ssh, "true").exit_code == 0);
  caf::anon_send(ssh, cancel_atom::value);
  BOOST_TEST(eventually(
    [&] {
      return server.log().find("Received disconnect from 127.0.0.1")
             != std::string::npos;
    },
    std::chrono::seconds(20)));
  BOOST_TEST(server.log().find("heaven closed the session")
             != std::string::npos);
  BOOST_TEST(run(ssh, "true").error == "cancelled");
}

BOOST_AUTO_TEST_CASE(megabytes_on_stderr_while_stdout_is_read) {
  auto ssh = spawn_ssh(sys, options(), sink);
  // 80000 lines of 100 bytes on stderr (8 MB) while stdout counts to 5000.
  auto result = run(ssh, "yes $(printf 'e%.0s' $(seq 100)) | head -n 80000 >&2"
                         " & seq 1 5000; wait; echo done");
  BOOST_TEST(result.error == "");
  BOOST_TEST(result.exit_code == 0);
  BOOST_REQUIRE(wait_lines(85001));
  auto out = rec->texts(stream::out);
  auto err = rec->texts(stream::err);
  BOOST_REQUIRE_EQUAL(out.size(), 5001u);
  for (size_t i = 0; i < 5000; ++i)
    BOOST_REQUIRE(out[i] == "127.0.0.1 " + std::to_string(i + 1));
  BOOST_TEST(out.back() == "127.0.0.1 done");
  BOOST_REQUIRE_EQUAL(err.size(), 80000u);
  auto expected = "127.0.0.1 " + std::string(100, 'e');
  size_t wrong = 0;
  for (auto& x : err)
    wrong += x != expected ? 1 : 0;
  BOOST_TEST(wrong == 0u);
}

BOOST_AUTO_TEST_CASE(a_timeout_closes_the_channel_and_kills_the_command) {
  auto ssh = spawn_ssh(sys, options(), sink);
  auto tag = unique_tag();
  // Starting a session's shell takes up to about 2 s on the test machine.
  auto result = run(
    ssh, "echo started; sleep 300." + tag + "; echo marker-" + tag, 8000);
  BOOST_TEST(result.error == "timed out after 8000 ms");
  BOOST_TEST(result.exit_code == -1);
  BOOST_TEST(eventually([&] { return !process_running("300." + tag); },
                        std::chrono::seconds(20)));
  BOOST_TEST(eventually([&] { return !process_running("marker-" + tag); },
                        std::chrono::seconds(20)));
  // The session stays usable.
  auto after = run(ssh, "echo after");
  BOOST_TEST(after.error == "");
  BOOST_TEST(after.exit_code == 0);
  BOOST_REQUIRE(wait_lines(2));
  BOOST_TEST(
    rec->texts(stream::out)
    == (std::vector<std::string>{"127.0.0.1 started", "127.0.0.1 after"}));
}

BOOST_AUTO_TEST_CASE(cancel_mid_command_answers_cancelled_and_kills_it) {
  auto opts = options();
  opts.kill_grace_ms = 500;
  auto ssh = spawn_ssh(sys, opts, sink);
  auto tag = unique_tag();
  // The command ignores SIGTERM: only the SIGKILL after the grace ends it.
  auto pending = std::async(std::launch::async, [&] {
    return run(ssh, "trap '' TERM; echo started; sleep 300." + tag
                      + "; echo marker-" + tag);
  });
  BOOST_REQUIRE(wait_lines(1));
  BOOST_REQUIRE(eventually([&] { return process_running("300." + tag); }));
  caf::anon_send(ssh, cancel_atom::value);
  auto result = pending.get();
  BOOST_TEST(result.error == "cancelled");
  BOOST_TEST(result.exit_code == -1);
  BOOST_TEST(eventually([&] { return !process_running("300." + tag); },
                        std::chrono::seconds(20)));
  BOOST_TEST(eventually([&] { return !process_running("marker-" + tag); },
                        std::chrono::seconds(20)));
  // Cancelled for good: later commands do not run.
  auto later = run(ssh, "echo later");
  BOOST_TEST(later.error == "cancelled");
  BOOST_TEST(rec->texts(stream::out)
             == (std::vector<std::string>{"127.0.0.1 started"}));
}

BOOST_AUTO_TEST_CASE(two_hosts_run_their_commands_at_the_same_time) {
  sshd_server second;
  temp_dir tmp;
  auto dir = tmp.path;
  auto opts_a = options();
  opts_a.label = "a";
  auto opts_b = options_for(second);
  opts_b.label = "b";
  auto a = spawn_ssh(sys, opts_a, sink);
  auto b = spawn_ssh(sys, opts_b, sink);
  // Each waits (up to 30 s) for the other's file: both meet only when the
  // two commands run at the same time.
  auto meet = [&](const std::string& mine, const std::string& theirs) {
    auto d = dir.string();
    return "touch " + d + "/" + mine + "; i=0; while [ ! -e " + d + "/" + theirs
           + " ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done;" + " [ -e "
           + d + "/" + theirs + " ] && echo met";
  };
  auto ra = std::async(std::launch::async,
                       [&] { return run(a, meet("a", "b")); });
  auto rb = std::async(std::launch::async,
                       [&] { return run(b, meet("b", "a")); });
  auto xa = ra.get();
  auto xb = rb.get();
  BOOST_TEST(xa.exit_code == 0);
  BOOST_TEST(xb.exit_code == 0);
  BOOST_REQUIRE(wait_lines(2));
  auto out = rec->texts(stream::out);
  std::sort(out.begin(), out.end());
  BOOST_TEST(out == (std::vector<std::string>{"a met", "b met"}));
}

BOOST_AUTO_TEST_CASE(unescape_private_key_makes_heavens_one_line_key_whole) {
  BOOST_TEST(unescape_private_key("-----BEGIN X-----\\nabc\\ndef\\n-----END "
                                  "X-----\\n")
             == "-----BEGIN X-----\nabc\ndef\n-----END X-----\n");
  BOOST_TEST(unescape_private_key("a\\r\\nb") == "a\nb\n");
  BOOST_TEST(unescape_private_key("a\nb\n") == "a\nb\n");
  BOOST_TEST(unescape_private_key("") == "");
  // The client key as one line signs in once unescaped.
  auto key = server.client_key().private_key;
  auto one_line = one_line_key(key);
  BOOST_TEST(one_line.find('\n') == std::string::npos);
  BOOST_TEST(unescape_private_key(one_line) == key);
  auto opts = options();
  opts.private_key = unescape_private_key(one_line);
  auto result = run(spawn_ssh(sys, opts, sink), "echo in");
  BOOST_TEST(result.exit_code == 0);
}

BOOST_AUTO_TEST_CASE(the_private_key_never_reaches_the_log) {
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto logger = std::make_shared<spdlog::logger>("ssh-test", ring);
  logger->set_level(spdlog::level::trace);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  auto ssh = spawn_ssh(sys, options(), sink);
  auto ok = run(ssh, "echo fine");
  auto timed_out = run(ssh, "sleep 30", 300);
  auto opts = options();
  auto stranger = make_key("ed25519");
  opts.private_key = stranger.private_key;
  auto refused = run(spawn_ssh(sys, opts, sink), "true");
  heaven::test::restore_logger(previous);
  BOOST_TEST(ok.exit_code == 0);
  BOOST_TEST(timed_out.error == "timed out after 300 ms");
  BOOST_TEST(refused.error != "");
  auto lines = ring->last_formatted();
  std::string all;
  for (auto& x : lines)
    all += x;
  BOOST_TEST(all.find("signed in as " + server.user()) != std::string::npos);
  BOOST_TEST(all.find("PRIVATE KEY") == std::string::npos);
  for (const auto& key : std::vector<std::string>{
         server.client_key().private_key, stranger.private_key}) {
    // Every base64 line of the key body.
    size_t from = key.find('\n') + 1;
    while (from < key.size()) {
      auto to = key.find('\n', from);
      auto piece = key.substr(from, to - from);
      if (piece.find("-----") == std::string::npos && piece.size() > 8)
        BOOST_TEST(all.find(piece) == std::string::npos);
      from = to + 1;
    }
  }
}

BOOST_AUTO_TEST_CASE(its_lines_carry_the_deployment_of_its_options) {
  // With the log context: the JSON log's deployment fields.
  std::vector<std::string> lines;
  {
    captured_log log{1000, true};
    auto opts = options();
    opts.about = {42, "octo/app", "production"};
    auto ssh = spawn_ssh(sys, opts, sink);
    BOOST_TEST(run(ssh, "true").exit_code == 0);
    BOOST_TEST(run(ssh, "exit 3").exit_code == 3);
    lines = log.lines();
  }
  std::string where = "ssh " + server.host() + ":"
                      + std::to_string(server.port()) + ": ";
  std::string about = " [deployment=42 repository=octo/app "
                      "environment=production]";
  auto count = [&](const std::string& line) {
    return std::count(lines.begin(), lines.end(), line);
  };
  BOOST_TEST(count("info " + where + "signed in as " + server.user() + about)
               == 1,
             where);
  BOOST_TEST(count("debug " + where + "command ended: exit 3 signal ''" + about)
             == 1);
  // Every line of the actor is about it.
  for (auto& line : lines)
    BOOST_TEST(line.ends_with(about), line);
}

BOOST_AUTO_TEST_SUITE_END()
