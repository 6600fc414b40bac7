/// Pieces of the local AWS stand-ins (S3, Elastic Beanstalk) the tests
/// share: reading what heaven sent (form bodies, SigV4 signatures checked as
/// AWS checks them) and answering the way AWS answers (its XML documents,
/// its dates).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tools/support/http_stub.hpp"

namespace heaven::test {

/// The XML namespace of Elastic Beanstalk's answers.
inline constexpr auto eb_namespace
  = "https://elasticbeanstalk.amazonaws.com/docs/2010-12-01/";

/// The account and region a stand-in expects requests to be signed for.
struct aws_account {
  std::string key_id;
  std::string secret;
  std::string region;
};

/// A form body (`a=1&b=x%20y`) as a map of decoded names and values.
std::map<std::string, std::string> parse_form(const std::string& body);

/// Why the SigV4 signature of `r` does not hold for `service` and `account`,
/// recomputed from the request as received, as AWS does; "" when it holds.
/// S3 requests must also sign a correct x-amz-content-sha256.
std::string signature_problem(const recorded_request& r,
                              const std::string& service,
                              const aws_account& account);

/// AWS's 403 answer to `r` when its signature does not hold (the reason is
/// added to `rejected`), or nothing when it holds. The caller guards
/// `rejected`.
std::optional<stub_response>
refuse_bad_signature(const recorded_request& r, const std::string& service,
                     const aws_account& account,
                     std::vector<std::string>& rejected);

/// An answer of `status` with an XML `body`.
stub_response xml(int status, std::string body);

/// An Elastic Beanstalk (query API) answer to `action`:
/// `<ActionResponse><ActionResult>inner</ActionResult>...`.
stub_response eb_answer(const std::string& action, const std::string& inner);

/// An Elastic Beanstalk (query API) error answer.
stub_response eb_error(int status, const std::string& code,
                       const std::string& message);

/// An S3 error answer.
stub_response s3_error(int status, const std::string& code,
                       const std::string& message);

/// An Elastic Beanstalk environment, as its answers describe one.
struct eb_environment {
  std::string name;
  std::string id;
  std::string application;
  std::string version;
  std::string status;
  std::string health;
  std::string cname;
};

/// The fields of `env` (`<EnvironmentName>...<CNAME>...</CNAME>`), as
/// UpdateEnvironment answers them.
std::string environment_fields(const eb_environment& env);

/// `env` as one `<member>` of DescribeEnvironments' list.
std::string environment_member(const eb_environment& env);

/// An Elastic Beanstalk event a stand-in reveals from poll `from_poll` on.
struct eb_event {
  int from_poll;
  /// As AWS dates events (see `aws_date`).
  std::string date;
  std::string severity;
  std::string message;
};

/// DescribeEvents' `<Events>` list: those of `events` revealed by poll
/// `polls`, dated from `since` on (inclusive, to the second), newest first,
/// as events of `application`'s environment `environment`.
std::string events_xml(const std::vector<eb_event>& events, int polls,
                       const std::string& since, const std::string& application,
                       const std::string& environment);

/// "YYYY-MM-DDTHH:MM:SS.000Z" of `t` (UTC), as AWS dates its events.
std::string aws_date(std::chrono::system_clock::time_point t);

} // namespace heaven::test
