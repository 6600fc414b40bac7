// Fuzz target: an XML answer from S3 or Elastic Beanstalk, through every
// reader the elastic_beanstalk provider runs on one (parse_aws_error,
// aws_failure_reason, parse_environments, parse_updated_environment,
// parse_events).
#include <cstddef>
#include <cstdint>
#include <string>

#include "providers/aws_xml.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body{text(data, size)};
  auto err = parse_aws_error(body);
  http_response res;
  res.status = 400;
  res.body = body;
  auto reason = aws_failure_reason(res);
  require(!reason.empty() && reason.size() <= 500,
          "aws_failure_reason is empty or too long");
  if (err.code.empty())
    require(reason == "HTTP 400", "aws_failure_reason echoed a non-error");
  auto any = parse_environments(body, "");
  if (any.found) {
    auto same = parse_environments(body, any.id);
    require(same.found, "an environment listed is not found by its id");
  }
  parse_environments(body, "e-fuzz");
  parse_updated_environment(body);
  auto events = parse_events(body);
  for (size_t i = 1; i < events.size(); ++i)
    require(events[i - 1].date <= events[i].date,
            "parse_events did not sort the events oldest first");
  return 0;
}
