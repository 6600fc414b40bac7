// heaven's own log: the JSON line, the log context, and the redacting sink
// that both formats (text, json) write through.

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"
#include "base/log_sink.hpp"

using namespace heaven;
using json = nlohmann::json;

namespace {

/// 2026-12-05T16:00:00.123Z
std::chrono::system_clock::time_point at_noon() {
  using namespace std::chrono;
  return system_clock::time_point{seconds{1796486400} + milliseconds{123}};
}

/// A logger writing through redacting_sink into a string.
struct captured {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> logger;

  captured(std::vector<std::string> secrets, bool as_json) {
    auto out = std::make_shared<spdlog::sinks::ostream_sink_mt>(text, true);
    if (!as_json)
      out->set_pattern("%l %v");
    logger = std::make_shared<spdlog::logger>(
      "test", redacting_sink(out, std::move(secrets), as_json));
    logger->set_level(spdlog::level::trace);
  }

  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in{text.str()};
    for (std::string line; std::getline(in, line);)
      out.push_back(line);
    return out;
  }
};

const std::vector<std::string> secrets = {"ghp_SECRETtoken123",
                                          "hook-secret-xyz", "abc"};

} // namespace

BOOST_AUTO_TEST_SUITE(log_format)

BOOST_AUTO_TEST_CASE(a_json_line_has_time_level_and_message_in_order) {
  BOOST_TEST(json_log_line(at_noon(), "info", "heaven listens", nullptr)
             == R"({"time":"2026-12-05T16:00:00.123Z","level":"info",)"
                R"("message":"heaven listens"})");
}

BOOST_AUTO_TEST_CASE(a_json_line_carries_what_its_context_knows) {
  log_context all{42, "octo/app", "production"};
  BOOST_TEST(json_log_line(at_noon(), "warning", "x", &all)
             == R"({"time":"2026-12-05T16:00:00.123Z","level":"warning",)"
                R"("message":"x","deployment":42,"repository":"octo/app",)"
                R"("environment":"production"})");
  log_context id_only{7, {}, {}};
  BOOST_TEST(json_log_line(at_noon(), "info", "x", &id_only)
             == R"({"time":"2026-12-05T16:00:00.123Z","level":"info",)"
                R"("message":"x","deployment":7})");
  log_context none;
  BOOST_TEST(json_log_line(at_noon(), "info", "x", &none)
             == R"({"time":"2026-12-05T16:00:00.123Z","level":"info",)"
                R"("message":"x"})");
}

BOOST_AUTO_TEST_CASE(control_characters_and_quotes_are_escaped) {
  auto line = json_log_line(at_noon(), "info",
                            std::string{"a\"b\\c\nd\re\tf\x01g\x1fh\0i", 17},
                            nullptr);
  BOOST_TEST(line
             == R"({"time":"2026-12-05T16:00:00.123Z","level":"info",)"
                R"("message":"a\"b\\c\nd\re\tf\u0001g\u001fh\u0000i"})");
  BOOST_TEST(line.find('\n') == std::string::npos);
  BOOST_TEST(json::parse(line).at("message")
             == std::string("a\"b\\c\nd\re\tf\x01g\x1fh\0i", 17));
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_replaced_and_valid_utf8_kept) {
  // A lone continuation byte, a byte never valid, and a sequence cut short
  // at the end; "é" and "→" stay as they are.
  auto line = json_log_line(
    at_noon(), "info", "caf\xc3\xa9 \x80x\xff \xe2\x86\x92 \xe2\x86", nullptr);
  BOOST_TEST(line
             == "{\"time\":\"2026-12-05T16:00:00.123Z\",\"level\":\"info\","
                "\"message\":\"caf\xc3\xa9 \xef\xbf\xbdx\xef\xbf\xbd "
                "\xe2\x86\x92 \xef\xbf\xbd\"}");
  BOOST_TEST(json::parse(line).at("message")
             == "caf\xc3\xa9 \xef\xbf\xbdx\xef\xbf\xbd \xe2\x86\x92 "
                "\xef\xbf\xbd");
}

BOOST_AUTO_TEST_CASE(the_context_is_per_thread_and_nests) {
  BOOST_TEST(current_log_context() == nullptr);
  log_context outer{1, "o/a", "staging"};
  log_context inner{2, "o/b", "production"};
  {
    log_scope a{outer};
    BOOST_TEST(current_log_context() == &outer);
    {
      log_scope b{inner};
      BOOST_TEST(current_log_context() == &inner);
      const log_context* elsewhere = &inner;
      std::thread{[&] { elsewhere = current_log_context(); }}.join();
      BOOST_TEST(elsewhere == nullptr);
    }
    BOOST_TEST(current_log_context() == &outer);
  }
  BOOST_TEST(current_log_context() == nullptr);
}

BOOST_AUTO_TEST_CASE(the_redactor_is_the_log_books) {
  redactor redact{secrets};
  BOOST_TEST(redact("token ghp_SECRETtoken123 and hook-secret-xyz, abc")
             == "token [redacted] and [redacted], abc");
  BOOST_TEST(redact("") == "");
}

BOOST_AUTO_TEST_CASE(json_lines_are_redacted_and_carry_the_context) {
  captured log{secrets, true};
  log.logger->info("posting with token ghp_SECRETtoken123");
  {
    // A repository or environment that happens to hold a secret is
    // redacted too.
    log_context about{42, "octo/app", "hook-secret-xyz"};
    log_scope in{about};
    log.logger->warn("deployment 42: {}", "\"hook-secret-xyz\"\n!");
  }
  log.logger->error("after");
  auto lines = log.lines();
  BOOST_REQUIRE(lines.size() == 3u);
  auto first = json::parse(lines[0]);
  BOOST_TEST(first.size() == 3u);
  BOOST_TEST(first.at("level") == "info");
  BOOST_TEST(first.at("message") == "posting with token [redacted]");
  BOOST_TEST(std::regex_match(first.at("time").get<std::string>(),
                              std::regex{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:)"
                                         R"(\d\d\.\d{3}Z)"}),
             lines[0]);
  BOOST_TEST(lines[1]
             == R"({"time":)" + json(json::parse(lines[1]).at("time")).dump()
                  + R"(,"level":"warning","message":"deployment 42: )"
                    R"(\"[redacted]\"\n!","deployment":42,)"
                    R"("repository":"octo/app","environment":"[redacted]"})");
  auto third = json::parse(lines[2]);
  BOOST_TEST(third.at("level") == "error");
  BOOST_TEST(!third.contains("deployment"));
  BOOST_TEST(log.text.str().find("SECRET") == std::string::npos);
  BOOST_TEST(log.text.str().find("hook-secret") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_json_sink_keeps_its_form_whatever_the_pattern) {
  captured log{secrets, true};
  log.logger->set_pattern("%v");
  log.logger->info("plain?");
  auto lines = log.lines();
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(json::parse(lines[0]).at("message") == "plain?");
}

BOOST_AUTO_TEST_CASE(text_lines_are_redacted_the_same_way) {
  captured log{secrets, false};
  log.logger->info("token ghp_SECRETtoken123 secret hook-secret-xyz");
  {
    log_context about{42, "octo/app", "production"};
    log_scope in{about};
    log.logger->warn("deployment 42 abc");
  }
  BOOST_TEST(log.text.str()
             == "info token [redacted] secret [redacted]\n"
                "warning deployment 42 abc\n");
}

BOOST_AUTO_TEST_CASE(lines_from_many_threads_stay_whole) {
  captured log{secrets, true};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      log_context about{t + 1, "octo/app", "production"};
      log_scope in{about};
      for (int i = 0; i < 250; ++i)
        log.logger->info("thread {} line {} {}", t, i, std::string(300, 'x'));
    });
  for (auto& t : threads)
    t.join();
  auto lines = log.lines();
  BOOST_REQUIRE(lines.size() == 1000u);
  std::vector<int> per_thread(4, 0);
  for (auto& l : lines) {
    auto j = json::parse(l);
    auto t = j.at("deployment").get<int>() - 1;
    BOOST_REQUIRE(t >= 0 && t < 4);
    BOOST_TEST(j.at("message").get<std::string>().rfind(
                 "thread " + std::to_string(t) + " line ", 0)
               == 0u);
    ++per_thread[t];
  }
  BOOST_TEST(per_thread == (std::vector<int>{250, 250, 250, 250}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
