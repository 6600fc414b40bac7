// Fuzz target: the X-Hub-Signature-256 check. The input is the header's
// value, a newline, the secret, a newline, and the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/webhook.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = text(data, size);
  auto header = take_until(in, '\n');
  auto secret = take_until(in, '\n');
  auto body = in;
  bool valid = signature_valid(secret, body, header);
  require(!secret.empty() || !valid, "an empty secret accepted a signature");
  if (secret.empty())
    return 0;
  auto right = "sha256=" + hmac_sha256_hex(secret, body);
  require(signature_valid(secret, body, right),
          "the right signature was refused");
  if (valid) {
    std::string given{header};
    for (auto& c : given)
      if (c >= 'A' && c <= 'F')
        c = static_cast<char>(c - 'A' + 'a');
    require(given == right, "a wrong signature was accepted");
  }
  return 0;
}
