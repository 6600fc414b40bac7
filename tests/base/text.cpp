#include "base/text.hpp"

#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

using namespace heaven;

BOOST_AUTO_TEST_SUITE(text)

BOOST_AUTO_TEST_CASE(base64_decodes_what_it_encodes_and_refuses_foreign_bytes) {
  std::string all;
  for (int c = 0; c < 256; ++c)
    all += static_cast<char>(c);
  BOOST_TEST(base64_encode("heaven") == "aGVhdmVu");
  BOOST_TEST(base64_decode("aGVhdmVu") == "heaven");
  BOOST_TEST(base64_decode(base64_encode(all)) == all);
  // Whitespace and padding are skipped; '+' and '/' are the last digits.
  BOOST_TEST(base64_decode("aGVh\ndmVu\r\n") == "heaven");
  BOOST_TEST(base64_decode("+/+/") == "\xfb\xff\xbf");
  BOOST_TEST(base64_decode("aGVh-mVu").empty());
  BOOST_TEST(base64_decode(std::string{"aGVh\0mVu", 8}).empty());
}

BOOST_AUTO_TEST_CASE(replace_chars_replaces_only_what_the_table_names) {
  BOOST_TEST(replace_chars("<a & b>", {{'&', "&amp;"}, {'<', "&lt;"}})
             == "&lt;a &amp; b>");
  BOOST_TEST(replace_chars("a|b c", {{'|', "%7C"}, {' ', ""}}) == "a%7Cbc");
  BOOST_TEST(replace_chars("", {{'x', "y"}}).empty());
  BOOST_TEST(replace_chars("plain", {}) == "plain");
}

// RFC 4231's test cases 1, 2 and 6, and GitHub's documented webhook example.
BOOST_AUTO_TEST_CASE(hmac_sha256_is_right_whatever_key_came_before) {
  struct vector {
    std::string key, data, mac;
  };
  const std::vector<vector> vectors{
    {std::string(20, '\x0b'), "Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"Jefe", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {std::string(131, '\xaa'),
     "Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    {"It's a Secret to Everybody", "Hello, World!",
     "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
    // An empty key takes the one-shot way.
    {"", "",
     "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
  };
  // The same key twice in a row (kept keyed), then every change of key.
  for (std::size_t i = 0; i < vectors.size(); ++i)
    for (std::size_t j = 0; j < vectors.size(); ++j) {
      const auto& a = vectors[i];
      const auto& b = vectors[j];
      BOOST_TEST(hmac_sha256_hex(a.key, a.data) == a.mac);
      BOOST_TEST(hmac_sha256_hex(a.key, a.data) == a.mac);
      BOOST_TEST(hmac_sha256_hex(b.key, b.data) == b.mac);
      BOOST_TEST(hmac_sha256_hex(a.key, a.data) == a.mac);
    }
  // A key that starts like the one before is another key.
  BOOST_TEST(hmac_sha256_hex("Jefe", "what do ya want for nothing?")
             == vectors[1].mac);
  BOOST_TEST(hmac_sha256_hex("Jef", "what do ya want for nothing?")
             != vectors[1].mac);
  // Each thread keeps its own context.
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int n = 0; n < 500; ++n) {
        const auto& v = vectors[(t + n / 3) % vectors.size()];
        if (hmac_sha256_hex(v.key, v.data) != v.mac)
          ++wrong[t];
      }
    });
  for (auto& t : threads)
    t.join();
  for (int t = 0; t < 4; ++t)
    BOOST_TEST(wrong[t] == 0);
}

BOOST_AUTO_TEST_SUITE_END()
