// Fuzz target: the checks on user input that decide whether anything runs
// (valid_ref, valid_task, valid_script_path, valid_sha, valid_clone_url),
// the URL helpers, truncate_description and shell_quote. The input's first
// byte is truncate_description's limit, the rest is the text every
// function gets.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/text.hpp"
#include "base/validate.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

namespace {

bool printable_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) <= ' '
        || static_cast<unsigned char>(c) >= 0x7f)
      return false;
  return true;
}

/// What a POSIX shell makes of `word` (quotes and backslashes only: that is
/// all shell_quote writes); `ok` false for anything else or an unterminated
/// quote.
std::string sh_unquote(std::string_view word, bool& ok) {
  std::string out;
  ok = true;
  for (size_t i = 0; i < word.size(); ++i) {
    if (word[i] == '\'') {
      auto end = word.find('\'', i + 1);
      if (end == std::string_view::npos) {
        ok = false;
        return out;
      }
      out += word.substr(i + 1, end - i - 1);
      i = end;
    } else if (word[i] == '\\' && i + 1 < word.size()) {
      out += word[++i];
    } else {
      // Anything else unquoted would be the shell's to interpret.
      ok = false;
      return out;
    }
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  size_t max = data[0];
  auto s = text(data + 1, size - 1);

  if (valid_ref(s)) {
    require(printable_ascii(s), "valid_ref took a space, control or non-ASCII");
    require(s.front() != '-', "valid_ref took an option-like ref");
    require(s.find("..") == std::string_view::npos, "valid_ref took '..'");
  }
  if (valid_task(s)) {
    require(s.substr(0, 6) == "deploy", "valid_task took a non-deploy task");
    for (char c : s)
      require((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':',
              "valid_task took a character outside [A-Za-z0-9_:-]");
  }
  if (valid_script_path(s)) {
    require(s.front() != '/' && s.front() != '.',
            "valid_script_path took an absolute or dot path");
    require(s.find("..") == std::string_view::npos,
            "valid_script_path took '..'");
    require(printable_ascii(s), "valid_script_path took an odd character");
  }
  if (valid_sha(s))
    require(s.size() == 40, "valid_sha took a short or long sha");
  if (valid_clone_url(s)) {
    for (char c : s)
      require(static_cast<unsigned char>(c) > ' ' && c != 0x7f,
              "valid_clone_url took a space or control character");
    require(s.front() != '-', "valid_clone_url took an option-like URL");
  }

  auto host = url_host(s);
  require(host.find_first_of("@/") == std::string::npos,
          "url_host kept userinfo or a path");
  auto bare = url_without_credentials(s);
  require(bare.size() <= s.size(), "url_without_credentials grew the URL");
  if (auto scheme = bare.find("://"); scheme != std::string::npos) {
    auto authority = bare.substr(scheme + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    require(authority.find('@') == std::string::npos,
            "url_without_credentials kept the credentials");
  }

  auto cut = truncate_description(s, max);
  require(cut.size() <= max, "truncate_description went over its limit");
  if (s.size() <= max)
    require(cut == s, "truncate_description changed a short text");
  else if (max > 3)
    require(std::string_view{cut}.substr(0, cut.size() - 3)
              == s.substr(0, cut.size() - 3),
            "truncate_description is not a prefix of the text");
  if (valid_utf8(s))
    require(valid_utf8(cut), "truncate_description split a character");

  auto quoted = shell_quote(s);
  bool ok = false;
  require(sh_unquote(quoted, ok) == s && ok,
          "shell_quote does not give the text back to a shell");
  return 0;
}
