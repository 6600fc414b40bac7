// Fuzz target: a webhook delivery's JSON body, through every parser the
// ingress runs on it (check_json_object, parse_deployment,
// parse_commit_status, parse_deployment_status, repository_full_name).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/json_events.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  heaven::fuzz::parse_events(heaven::fuzz::text(data, size));
  return 0;
}
