#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "base/log_book.hpp"
#include "base/log_tail.hpp"

using namespace heaven;
namespace fs = std::filesystem;

namespace {

/// A temporary directory, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string text = (fs::temp_directory_path() / "heaven-logs-XXXXXX");
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = fs::canonical(text);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

/// HMAC-SHA256 through OpenSSL 3's EVP_MAC, as hex: a second route to the
/// value log_token must produce.
std::string hmac_sha256_hex(const std::string& key, const std::string& msg) {
  auto mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  auto ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                          digest, 0),
                         OSSL_PARAM_construct_end()};
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()),
               key.size(), params);
  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(msg.data()),
                 msg.size());
  EVP_MAC_final(ctx, out, &len, sizeof out);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  static constexpr char hex[] = "0123456789abcdef";
  std::string result;
  for (size_t i = 0; i < len; ++i) {
    result += hex[out[i] >> 4];
    result += hex[out[i] & 0xF];
  }
  return result;
}

} // namespace

BOOST_AUTO_TEST_SUITE(log_book_tests)

BOOST_AUTO_TEST_CASE(creates_directory_and_names_files_by_id) {
  temp_dir tmp;
  auto dir = (tmp.path / "nested" / "logs").string();
  log_book book{dir, {}};
  BOOST_TEST(fs::is_directory(dir));
  BOOST_TEST(book.path(42) == dir + "/42.log");
  BOOST_TEST(book.path(7) != book.path(42));
  BOOST_TEST(!fs::exists(book.path(42))); // Not before open.
}

BOOST_AUTO_TEST_CASE(open_append_close_live) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {}};
  BOOST_TEST(!book.live(1));
  book.open(1);
  BOOST_TEST(book.live(1));
  BOOST_TEST(!book.live(2));
  BOOST_TEST(fs::exists(book.path(1)));
  book.append(1, stream::heaven, "Running deploy/run.sh");
  book.append(1, stream::out, "hello from stdout");
  book.append(1, stream::err, "warning: from stderr");
  book.append(1, stream::out, "");
  // Visible to a reader at once, while still live.
  BOOST_TEST(slurp(book.path(1))
             == "heaven: Running deploy/run.sh\n"
                "hello from stdout\n"
                "warning: from stderr\n"
                "\n");
  book.close(1);
  BOOST_TEST(!book.live(1));
  // Opening twice is harmless and does not truncate.
  book.open(1);
  book.open(1);
  BOOST_TEST(book.live(1));
  BOOST_TEST(lines_of(book.path(1)).size() == 4u);
  book.close(1);
  book.close(1); // Closing a closed log is harmless.
  BOOST_TEST(!book.live(1));
}

/// How many descriptors this process has open.
std::size_t open_descriptors() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

BOOST_AUTO_TEST_CASE(many_live_logs_share_a_few_descriptors) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {}, 64};
  auto before = open_descriptors();
  for (int64_t id = 1; id <= 300; ++id)
    book.open(id);
  // Written round-robin, so every write finds its file closed again.
  for (int round = 0; round < 3; ++round)
    for (int64_t id = 1; id <= 300; ++id)
      book.append(id, stream::out, "line " + std::to_string(round));
  BOOST_TEST(open_descriptors() <= before + 64);
  for (int64_t id = 1; id <= 300; ++id) {
    BOOST_TEST(book.live(id));
    BOOST_TEST(slurp(book.path(id)) == "line 0\nline 1\nline 2\n");
    book.close(id);
  }
  BOOST_TEST(open_descriptors() == before);
}

BOOST_AUTO_TEST_CASE(lines_to_closed_or_unopened_logs_are_dropped) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {}};
  book.append(5, stream::out, "nobody opened me");
  BOOST_TEST(!fs::exists(book.path(5)));
  BOOST_TEST(!book.live(5));
  book.open(6);
  book.append(6, stream::out, "kept");
  book.close(6);
  book.append(6, stream::heaven, "after close");
  BOOST_TEST(slurp(book.path(6)) == "kept\n");
  // Each log only gets its own lines.
  book.open(7);
  book.open(8);
  book.append(7, stream::out, "seven");
  book.append(8, stream::out, "eight");
  BOOST_TEST(slurp(book.path(7)) == "seven\n");
  BOOST_TEST(slurp(book.path(8)) == "eight\n");
}

BOOST_AUTO_TEST_CASE(reopen_appends) {
  temp_dir tmp;
  {
    log_book book{tmp.path.string(), {}};
    book.open(3);
    book.append(3, stream::out, "first run");
    book.close(3);
    book.open(3);
    book.append(3, stream::heaven, "second run");
    book.close(3);
  }
  // A new book over the same directory (a restart) appends as well.
  log_book again{tmp.path.string(), {}};
  again.open(3);
  again.append(3, stream::err, "after restart");
  again.close(3);
  BOOST_TEST(slurp(again.path(3))
             == "first run\nheaven: second run\nafter restart\n");
}

BOOST_AUTO_TEST_CASE(destructor_flushes_open_logs) {
  temp_dir tmp;
  std::string path;
  {
    log_book book{tmp.path.string(), {}};
    book.open(9);
    book.append(9, stream::out, "still open at the end");
    path = book.path(9);
  }
  BOOST_TEST(slurp(path) == "still open at the end\n");
}

BOOST_AUTO_TEST_CASE(secrets_are_redacted_in_files) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {"ghp_supersecret123", "hunter2hunter2"}};
  book.open(1);
  book.append(1, stream::heaven,
              "cloning https://x-access-token:ghp_supersecret123@github.com/");
  book.append(1, stream::err, "password hunter2hunter2 rejected");
  book.close(1);
  auto text = slurp(book.path(1));
  BOOST_TEST(text.find("ghp_supersecret123") == std::string::npos);
  BOOST_TEST(text.find("hunter2hunter2") == std::string::npos);
  BOOST_TEST(text
             == "heaven: cloning https://x-access-token:[redacted]"
                "@github.com/\n"
                "password [redacted] rejected\n");
}

BOOST_AUTO_TEST_CASE(redact_cases) {
  temp_dir tmp;
  log_book book{tmp.path.string(),
                {"abcdef123", "123456xyz", "supersecretvalue", "secret", "abc",
                 "12345", "", "aaaaaa"}};
  BOOST_TEST(book.redact("nothing here") == "nothing here");
  BOOST_TEST(book.redact("") == "");
  // Twice on one line.
  BOOST_TEST(book.redact("abcdef123 and abcdef123")
             == "[redacted] and "
                "[redacted]");
  // Two secrets overlapping in the text: no fragment of either survives.
  BOOST_TEST(book.redact("x abcdef123456xyz y") == "x [redacted] y");
  BOOST_TEST(book.redact("123456xyzabcdef123") == "[redacted]");
  // One secret inside another.
  BOOST_TEST(book.redact("supersecretvalue, secret")
             == "[redacted], [redacted]");
  // A secret overlapping itself.
  BOOST_TEST(book.redact("aaaaaaaa!") == "[redacted]!");
  // Shorter than 6 characters: ignored, ordinary text stays readable.
  BOOST_TEST(book.redact("abc 12345 abcdef") == "abc 12345 abcdef");
  // At both ends of the line.
  BOOST_TEST(book.redact("secret") == "[redacted]");
  BOOST_TEST(book.redact("secret in the middle secret")
             == "[redacted] in the middle [redacted]");
}

BOOST_AUTO_TEST_CASE(redact_secret_resembling_the_marker) {
  temp_dir tmp;
  // Replacing in place used to find "redacted" again inside "[redacted]"
  // and loop forever.
  log_book book{tmp.path.string(), {"redacted", "[redacted]", "edacte"}};
  BOOST_TEST(book.redact("the word redacted") == "the word [redacted]");
  BOOST_TEST(book.redact("[redacted]") == "[redacted]");
  BOOST_TEST(book.redact("x edacte y") == "x [redacted] y");
}

BOOST_AUTO_TEST_CASE(concurrent_appends_keep_lines_intact) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {"topsecret99"}};
  book.open(1);
  constexpr int threads = 8;
  constexpr int per_thread = 1000;
  // Long lines, so a torn write would show.
  std::string pad(200, '.');
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int n = 0; n < per_thread; ++n)
        book.append(1, t % 2 ? stream::out : stream::heaven,
                    "t" + std::to_string(t) + " n" + std::to_string(n) + " "
                      + pad + " topsecret99 end");
    });
  for (auto& th : pool)
    th.join();
  book.close(1);
  auto lines = lines_of(book.path(1));
  BOOST_REQUIRE(lines.size() == size_t{threads * per_thread});
  std::set<std::pair<int, int>> seen;
  for (auto& line : lines) {
    std::string rest = line;
    bool heaven = rest.rfind("heaven: ", 0) == 0;
    if (heaven)
      rest = rest.substr(8);
    int t = -1;
    int n = -1;
    BOOST_REQUIRE_MESSAGE(std::sscanf(rest.c_str(), "t%d n%d", &t, &n) == 2,
                          "torn line: " << line);
    auto expected = "t" + std::to_string(t) + " n" + std::to_string(n) + " "
                    + pad + " [redacted] end";
    BOOST_REQUIRE_MESSAGE(rest == expected, "torn line: " << line);
    BOOST_TEST(heaven == (t % 2 == 0));
    seen.emplace(t, n);
  }
  BOOST_TEST(seen.size() == size_t{threads * per_thread});
}

BOOST_AUTO_TEST_CASE(log_token_shape_and_determinism) {
  auto a = log_token("key-one", 42);
  BOOST_TEST(a.size() == 32u);
  BOOST_TEST(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  BOOST_TEST(log_token("key-one", 42) == a);
  BOOST_TEST(log_token("key-one", 43) != a);
  BOOST_TEST(log_token("key-two", 42) != a);
  BOOST_TEST(log_token("", 42).size() == 32u);
  std::set<std::string> many;
  for (int64_t id = 1; id <= 200; ++id)
    many.insert(log_token("k", id));
  BOOST_TEST(many.size() == 200u);
}

BOOST_AUTO_TEST_CASE(log_token_is_truncated_hmac_sha256) {
  // Computed outside heaven: python3 hmac.new(b"heaven-test-key", b"log:42",
  // hashlib.sha256).hexdigest()[:32].
  BOOST_TEST(log_token("heaven-test-key", 42)
             == "cac64ce755d0f3f10ef8a3e5ace0588f");
  BOOST_TEST(log_token("k", -7) == "2f6d284a05d5c5729044d11c58d4f0e0");
  for (auto [key, id] : std::vector<std::pair<std::string, int64_t>>{
         {"secret", 1},
         {"another key", 123456789},
         {std::string(100, 'k'), 0},
         {"k", 9223372036854775807LL}}) {
    auto full = hmac_sha256_hex(key, "log:" + std::to_string(id));
    BOOST_REQUIRE(full.size() == 64u);
    BOOST_TEST(log_token(key, id) == full.substr(0, 32));
  }
}

BOOST_AUTO_TEST_CASE(constant_time_equality) {
  BOOST_TEST(equal_constant_time("", ""));
  BOOST_TEST(equal_constant_time("abc", "abc"));
  BOOST_TEST(!equal_constant_time("abc", "abd"));
  BOOST_TEST(!equal_constant_time("abc", "ab"));
  BOOST_TEST(!equal_constant_time("ab", "abc"));
  BOOST_TEST(!equal_constant_time("", "a"));
  BOOST_TEST(!equal_constant_time("xbc", "abc"));
  auto t = log_token("k", 1);
  BOOST_TEST(equal_constant_time(t, log_token("k", 1)));
  BOOST_TEST(!equal_constant_time(t, log_token("k", 2)));
  // Embedded NULs are compared, not treated as the end.
  BOOST_TEST(
    !equal_constant_time(std::string("a\0b", 3), std::string("a\0c", 3)));
  BOOST_TEST(
    equal_constant_time(std::string("a\0b", 3), std::string("a\0b", 3)));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(log_times_tests)

namespace {

/// A clock the test sets: Unix ms.
struct fake_clock {
  std::shared_ptr<int64_t> ms = std::make_shared<int64_t>(0);
  log_book::clock fn() const {
    return [ms = ms] { return *ms; };
  }
  void set(int64_t value) {
    *ms = value;
  }
};

/// Writes `text` at the end of the file at `path`.
void add_to(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::app};
  out << text;
}

} // namespace

BOOST_AUTO_TEST_CASE(a_time_is_recorded_only_when_the_second_changes) {
  temp_dir tmp;
  fake_clock now;
  log_book book{tmp.path.string(), {}, 0, now.fn()};
  BOOST_TEST(book.times_path(4) == tmp.path.string() + "/4.times");
  book.open(4);
  BOOST_TEST(!fs::exists(book.times_path(4))); // Not before a line.
  now.set(1700000000500);
  book.append(4, stream::out, "a"); // Offset 0.
  now.set(1700000000999);
  book.append(4, stream::out, "bb"); // Same second: no record.
  now.set(1700000001000);
  book.append(4, stream::err, "ccc"); // Offset 5.
  now.set(1700000001001);
  book.append(4, stream::heaven, "x"); // Offset 9, same second.
  now.set(1700000005250);
  book.append(4, stream::heaven, "y"); // Offset 19.
  book.append(4, stream::out, "z");    // Offset 29, same second.
  // The log is byte for byte what it was without times.
  BOOST_TEST(slurp(book.path(4)) == "a\nbb\nccc\nheaven: x\nheaven: y\nz\n");
  BOOST_TEST(slurp(book.times_path(4))
             == "0 1700000000500\n5 1700000001000\n19 1700000005250\n");
  // Lines to a closed log write no time either.
  book.close(4);
  now.set(1700000009000);
  book.append(4, stream::out, "dropped");
  BOOST_TEST(slurp(book.times_path(4))
             == "0 1700000000500\n5 1700000001000\n19 1700000005250\n");
}

BOOST_AUTO_TEST_CASE(reopened_logs_continue_the_offsets) {
  temp_dir tmp;
  fake_clock now;
  now.set(2000000000000);
  {
    log_book book{tmp.path.string(), {}, 0, now.fn()};
    book.open(3);
    book.append(3, stream::out, "first run"); // Offset 0.
    book.close(3);
    // Reopened in the same second: the first line gets a record again.
    book.open(3);
    book.append(3, stream::heaven, "second run"); // Offset 10.
    book.close(3);
  }
  // A new book over the same directory (a restart) starts at the file's
  // size.
  now.set(2000000003000);
  log_book again{tmp.path.string(), {}, 0, now.fn()};
  again.open(3);
  again.append(3, stream::err, "after restart"); // Offset 29.
  again.close(3);
  BOOST_TEST(slurp(again.path(3))
             == "first run\nheaven: second run\nafter restart\n");
  BOOST_TEST(slurp(again.times_path(3))
             == "0 2000000000000\n10 2000000000000\n29 2000000003000\n");
}

BOOST_AUTO_TEST_CASE(offsets_survive_the_descriptor_limit) {
  temp_dir tmp;
  fake_clock now;
  log_book book{tmp.path.string(), {}, 1, now.fn()};
  book.open(1);
  book.open(2); // Closes 1's file.
  for (int i = 0; i < 3; ++i) {
    now.set(1000 * (i + 1));
    book.append(1, stream::out, "one " + std::to_string(i));
    book.append(2, stream::out, "log two " + std::to_string(i));
  }
  BOOST_TEST(slurp(book.times_path(1)) == "0 1000\n6 2000\n12 3000\n");
  BOOST_TEST(slurp(book.times_path(2)) == "0 1000\n10 2000\n20 3000\n");
  book.close(1);
  book.close(2);
}

BOOST_AUTO_TEST_CASE(the_tail_has_numbers_times_and_stops_at_the_last_line) {
  temp_dir tmp;
  fake_clock now;
  log_book book{tmp.path.string(), {}, 0, now.fn()};
  book.open(8);
  now.set(5000);
  book.append(8, stream::heaven, "start"); // Offset 0, line 1.
  book.append(8, stream::out, "one");      // Offset 14, line 2.
  now.set(7100);
  book.append(8, stream::out, "\x1b[31mtwo\x1b[0m"); // Offset 18, line 3.
  book.append(8, stream::out, "");                   // Offset 31, line 4.
  now.set(9000);
  book.append(8, stream::err, "three"); // Offset 32, line 5.
  // A line being written is left for the follower.
  add_to(book.path(8), "partial");
  auto view = read_log_tail(book.path(8), book.times_path(8), 1000);
  BOOST_TEST(!view.truncated);
  BOOST_TEST(view.end_offset == 38u);
  BOOST_TEST(view.follow_url == "");
  BOOST_TEST(view.raw_url == "");
  BOOST_REQUIRE(view.lines.size() == 5u);
  std::vector<std::string> texts{"heaven: start", "one", "\x1b[31mtwo\x1b[0m",
                                 "", "three"};
  std::vector<int64_t> times{5000, 5000, 7100, 7100, 9000};
  for (std::size_t i = 0; i < 5; ++i) {
    BOOST_TEST(view.lines[i].number == i + 1);
    BOOST_TEST(view.lines[i].text == texts[i]);
    BOOST_TEST(view.lines[i].time_ms == times[i]);
  }

  // At most 19 bytes: they begin inside line 3 (offsets 18 to 30), so line
  // 4 is the first shown.
  view = read_log_tail(book.path(8), book.times_path(8), 19);
  BOOST_TEST(view.truncated);
  BOOST_TEST(view.end_offset == 38u);
  BOOST_REQUIRE(view.lines.size() == 2u);
  BOOST_TEST(view.lines[0].number == 4u);
  BOOST_TEST(view.lines[0].text == "");
  BOOST_TEST(view.lines[0].time_ms == 7100);
  BOOST_TEST(view.lines[1].number == 5u);
  BOOST_TEST(view.lines[1].text == "three");

  // Exactly the bytes of lines 3 to 5 (from offset 18): line 3 is shown.
  view = read_log_tail(book.path(8), book.times_path(8), 38 - 18);
  BOOST_TEST(view.truncated);
  BOOST_REQUIRE(view.lines.size() == 3u);
  BOOST_TEST(view.lines[0].number == 3u);
  BOOST_TEST(view.lines[0].text == "\x1b[31mtwo\x1b[0m");
  BOOST_TEST(view.lines[0].time_ms == 7100);

  // The partial line completes: it is the sixth.
  add_to(book.path(8), " done\n");
  view = read_log_tail(book.path(8), book.times_path(8), 1000);
  BOOST_REQUIRE(view.lines.size() == 6u);
  BOOST_TEST(view.lines[5].number == 6u);
  BOOST_TEST(view.lines[5].text == "partial done");
  BOOST_TEST(view.lines[5].time_ms == 9000);
  BOOST_TEST(view.end_offset == 51u);
  book.close(8);
}

BOOST_AUTO_TEST_CASE(the_tail_of_a_long_log_numbers_its_lines_right) {
  temp_dir tmp;
  auto log = (tmp.path / "1.log").string();
  auto times = (tmp.path / "1.times").string();
  // About 3.4 MB, so the count crosses several blocks.
  std::string text;
  for (int i = 1; i <= 300000; ++i)
    text += "line " + std::to_string(i) + "\n";
  add_to(log, text);
  // Times start at line 3 (offset 14): the lines before have none.
  add_to(times, "14 111\n" + std::to_string(text.size() - 12) + " 222\n");
  auto view = read_log_tail(log, times, 30);
  BOOST_TEST(view.truncated);
  BOOST_TEST(view.end_offset == text.size());
  // "line 299998\n" is 12 bytes: the last 30 hold the last two whole lines.
  BOOST_REQUIRE(view.lines.size() == 2u);
  BOOST_TEST(view.lines[0].number == 299999u);
  BOOST_TEST(view.lines[0].text == "line 299999");
  BOOST_TEST(view.lines[0].time_ms == 111);
  BOOST_TEST(view.lines[1].number == 300000u);
  BOOST_TEST(view.lines[1].text == "line 300000");
  BOOST_TEST(view.lines[1].time_ms == 222);
  view = read_log_tail(log, times, text.size());
  BOOST_TEST(!view.truncated);
  BOOST_REQUIRE(view.lines.size() == 300000u);
  BOOST_TEST(view.lines[1].time_ms == 0);
  BOOST_TEST(view.lines[2].time_ms == 111);
  BOOST_TEST(view.lines[299998].time_ms == 111);
}

BOOST_AUTO_TEST_CASE(missing_files_give_an_empty_view_or_no_times) {
  temp_dir tmp;
  auto log = (tmp.path / "2.log").string();
  auto times = (tmp.path / "2.times").string();
  auto view = read_log_tail(log, times, 1000);
  BOOST_TEST(view.lines.empty());
  BOOST_TEST(!view.truncated);
  BOOST_TEST(view.end_offset == 0u);
  // Only a partial line: nothing yet.
  add_to(log, "no newline yet");
  view = read_log_tail(log, times, 1000);
  BOOST_TEST(view.lines.empty());
  BOOST_TEST(view.end_offset == 0u);
  add_to(log, "\nsecond\n");
  view = read_log_tail(log, times, 1000);
  BOOST_REQUIRE(view.lines.size() == 2u);
  BOOST_TEST(view.lines[0].text == "no newline yet");
  BOOST_TEST(view.lines[0].time_ms == 0);
  BOOST_TEST(view.lines[1].number == 2u);
  BOOST_TEST(view.lines[1].time_ms == 0);
  BOOST_TEST(view.end_offset == 22u);
}

// A log held in memory (read from the store when logs are shared) gives the
// page the same tail as its file: every limit, a partial last line left out.
BOOST_AUTO_TEST_CASE(the_tail_of_a_log_in_memory_is_that_of_its_file) {
  temp_dir tmp;
  fake_clock now;
  log_book book{tmp.path.string(), {}, 0, now.fn()};
  book.open(3);
  for (int i = 0; i < 40; ++i) {
    now.set(1000 + 700 * i);
    book.append(3, i % 3 ? stream::out : stream::heaven,
                std::string(static_cast<std::size_t>(i % 7), 'x') + "line "
                  + std::to_string(i));
  }
  add_to(book.path(3), "partial");
  auto bytes = slurp(book.path(3));
  auto times = slurp(book.times_path(3));
  for (uint64_t max : {1u, 5u, 19u, 20u, 64u, 300u, 10000u}) {
    auto file = read_log_tail(book.path(3), book.times_path(3), max);
    auto memory = log_tail_of(bytes, times, max);
    BOOST_TEST(memory.truncated == file.truncated);
    BOOST_TEST(memory.end_offset == file.end_offset);
    BOOST_REQUIRE_EQUAL(memory.lines.size(), file.lines.size());
    for (std::size_t i = 0; i < file.lines.size(); ++i) {
      BOOST_TEST(memory.lines[i].number == file.lines[i].number);
      BOOST_TEST(memory.lines[i].text == file.lines[i].text);
      BOOST_TEST(memory.lines[i].time_ms == file.lines[i].time_ms);
    }
  }
  BOOST_TEST(log_tail_of(bytes, times, 10000).lines.size() == 40u);
  BOOST_TEST(log_tail_of("no line yet", "", 100).lines.empty());
  book.close(3);
}

/// A deployment the rules ended at intake, as the store reads it.
deployment_detail ended_at_intake(deploy_state state, std::string description,
                                  std::string at) {
  deployment_detail d;
  d.found = true;
  d.row.id = 9;
  d.row.state = state;
  d.row.description = std::move(description);
  d.row.created_at = d.row.updated_at = d.row.finished_at = std::move(at);
  return d;
}

BOOST_AUTO_TEST_CASE(an_unstarted_deployment_has_the_line_its_file_had) {
  temp_dir tmp;
  // 2026-12-06T03:29:52.123Z is 1796527792123 ms.
  int64_t ms = 1796527792123;
  log_book book{tmp.path.string(), {"s3cret-token"}, 0, [ms] { return ms; }};
  for (auto [state, why] :
       {std::pair{deploy_state::error, std::string{"Already deploying."}},
        std::pair{deploy_state::error,
                  std::string{"octo/app is locked on production by bob"}},
        std::pair{deploy_state::error,
                  std::string{"unknown provider 's3cret-token'"}},
        std::pair{deploy_state::success,
                  std::string{"octo/app locked on production by bob"}}}) {
    // What heaven wrote for it before: open, one line, close.
    book.open(9);
    book.append(9, stream::heaven, to_string(state) + ": " + why);
    book.close(9);
    auto d = ended_at_intake(state, why, "2026-12-06T03:29:52.123Z");
    auto line = unstarted_log(d, book);
    BOOST_REQUIRE(line.has_value());
    BOOST_TEST(line->bytes == slurp(book.path(9)));
    BOOST_TEST(line->times == slurp(book.times_path(9)));
    BOOST_TEST(line->times == "0 1796527792123\n");
    BOOST_TEST(line->found);
    BOOST_TEST(line->ended);
    BOOST_TEST(line->size == static_cast<int64_t>(line->bytes.size()));
    BOOST_TEST(line->bytes.find("s3cret-token") == std::string::npos);
    // The page shows it with its time.
    auto view = log_tail_of(line->bytes, line->times, 1000);
    BOOST_REQUIRE_EQUAL(view.lines.size(), 1u);
    BOOST_TEST(view.lines[0].time_ms == ms);
    BOOST_TEST(view.lines[0].text + "\n" == line->bytes);
    fs::remove(book.path(9));
    fs::remove(book.times_path(9));
  }
  auto d = ended_at_intake(deploy_state::error,
                           "unknown provider 's3cret-token'",
                           "2026-12-06T03:29:52.123Z");
  BOOST_TEST(unstarted_log(d, book)->bytes
             == "heaven: error: unknown provider '[redacted]'\n");
  // Whole seconds and fractions of any length.
  d.row.finished_at = "2026-12-06T03:29:52Z";
  BOOST_TEST(unstarted_log(d, book)->times == "0 1796527792000\n");
  d.row.finished_at = "2026-12-06T03:29:52.5Z";
  BOOST_TEST(unstarted_log(d, book)->times == "0 1796527792500\n");
  d.row.finished_at = "2026-12-06T03:29:52.123456Z";
  BOOST_TEST(unstarted_log(d, book)->times == "0 1796527792123\n");
}

BOOST_AUTO_TEST_CASE(no_line_is_made_up_for_any_other_deployment) {
  temp_dir tmp;
  log_book book{tmp.path.string(), {}};
  auto ok = ended_at_intake(deploy_state::error, "Already deploying.",
                            "2026-12-06T03:29:52.123Z");
  BOOST_TEST(unstarted_log(ok, book).has_value());
  // Unknown.
  BOOST_TEST(!unstarted_log(deployment_detail{}, book).has_value());
  // Started: it ran, so its log was a file (gone now, or never shipped).
  auto ran = ok;
  ran.started_at = "2026-12-06T03:29:52.200Z";
  BOOST_TEST(!unstarted_log(ran, book).has_value());
  // Not ended (queued, or running before its row says so).
  for (auto state : {deploy_state::queued, deploy_state::running}) {
    auto waiting = ok;
    waiting.row.state = state;
    waiting.row.finished_at.clear();
    BOOST_TEST(!unstarted_log(waiting, book).has_value());
  }
  auto no_end = ok;
  no_end.row.finished_at.clear();
  BOOST_TEST(!unstarted_log(no_end, book).has_value());
}

BOOST_AUTO_TEST_SUITE_END()
