// Fuzz target: a deploy key's text (DEPLOYMENT_PRIVATE_KEY, one line with
// `\n` escapes or several lines), through unescape_private_key and
// private_key_problem.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/ssh_key.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string raw{text(data, size)};
  auto key = unescape_private_key(raw);
  if (!key.empty()) {
    require(key.back() == '\n', "an unescaped key does not end in a newline");
    require(key.front() != ' ' && key.front() != '\n',
            "an unescaped key starts with a blank");
  }
  for (auto* text : {&raw, &key}) {
    auto problem = private_key_problem(*text);
    if (problem.empty())
      require(text->find("PRIVATE KEY-----") != std::string::npos,
              "a text without a private key passed the key check");
  }
  return 0;
}
