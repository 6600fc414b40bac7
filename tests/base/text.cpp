#include "base/text.hpp"

#include <string>

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

BOOST_AUTO_TEST_SUITE_END()
