// Fuzz target: a form-encoded webhook delivery (`payload=<url-encoded
// JSON>&...`) through form_payload, then the JSON inside it through every
// event parser.
#include <cstddef>
#include <cstdint>

#include "base/webhook.hpp"
#include "tests/fuzz/json_events.hpp"

using namespace heaven;
using namespace heaven::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto body = text(data, size);
  auto json = form_payload(body);
  if (!json)
    return 0;
  require(body.find("payload=") != std::string_view::npos,
          "form_payload found a payload where there is none");
  require(json->size() <= body.size(), "form_payload grew the payload");
  parse_events(*json);
  return 0;
}
