/// Reading the XML answers of S3 and the Elastic Beanstalk query API (pugixml
/// stays inside aws_xml.cpp). Every function takes whatever came back, well
/// formed or not: a body it cannot read gives empty fields, never an error.
#pragma once

#include <string>
#include <vector>

#include "messages/types.hpp"

namespace heaven {

/// An AWS error: `<ErrorResponse><Error><Code/><Message/>` (query APIs),
/// `<Response><Errors><Error>...` or `<Error><Code/><Message/>` (S3).
struct aws_error {
  std::string code;
  std::string message;
};

/// An Elastic Beanstalk event (DescribeEvents).
struct eb_event {
  std::string date;
  std::string severity;
  std::string message;
};

/// The environment as DescribeEnvironments or UpdateEnvironment report it.
struct eb_environment {
  bool found = false;
  std::string id;
  std::string status;
  std::string health;
  std::string version_label;
  std::string cname;
};

/// The code and message of an AWS error body; both empty when `body` is no
/// AWS error.
aws_error parse_aws_error(const std::string& body);

/// Why `res` is not what was wanted, in a few words (at most 500 bytes),
/// never echoing a body that is not an AWS error: "no answer" or the
/// transport's error, "Code: Message", else "HTTP <status>".
std::string aws_failure_reason(const http_response& res);

/// The environment with id `id` in a DescribeEnvironments answer; without
/// an id, the first one not terminated (AWS also lists recently deleted
/// environments of the same name); else the first one listed; else one with
/// `found` false.
eb_environment parse_environments(const std::string& body,
                                  const std::string& id);

/// The environment an UpdateEnvironment answer describes (`found` false
/// when it describes none).
eb_environment parse_updated_environment(const std::string& body);

/// The events of a DescribeEvents answer, oldest first.
std::vector<eb_event> parse_events(const std::string& body);

} // namespace heaven
