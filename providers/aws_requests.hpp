/// What the ELASTIC_BEANSTALK provider sends to S3 and to the Elastic
/// Beanstalk query API, as plain code: where a deployment goes (read from
/// its payload and heaven's settings), the requests before signing, and
/// which AWS answers are worth another attempt. The conversation itself is
/// the actor in providers/elastic_beanstalk.cpp; the answers are read in
/// providers/aws_xml.hpp.
#pragma once

#include <chrono>
#include <string>

#include "base/sigv4.hpp"
#include "providers/elastic_beanstalk.hpp"

namespace heaven {

/// Where one deployment to Elastic Beanstalk goes.
struct eb_target {
  sigv4::credentials creds;
  std::string region;
  std::string bucket;
  std::string app;
  std::string environment;
  /// S3 URL of the bucket, ending in '/'.
  std::string s3_base;
  std::string eb_url;
  /// S3 key of the source bundle and the application version's label.
  std::string key;
  std::string label;
};

/// Reads `job`'s payload (config.app_name, aws.region) and `cfg` into `t`;
/// returns why the deployment can't go on (a status description), if it
/// can't.
std::optional<std::string> prepare_target(eb_target& t,
                                          const beanstalk_config& cfg,
                                          const provider_job& job);

/// Answers that may go away by themselves: no answer, 429, 5xx (transient),
/// and AWS's throttling (a 400 with a throttling code).
bool worth_retrying(const http_response& res);

/// A form POST of `params` to the Elastic Beanstalk query API at `eb_url`.
http_request eb_request(const std::string& eb_url, const string_pairs& params);

/// The application version's description: "octo/app main (abc1234)
/// deployed by alice with heaven".
std::string version_description(const deployment_request& r);

/// `HEAD` of the bucket.
http_request head_bucket_request(const eb_target& t);

/// `PUT` of the bucket: no body in us-east-1, a LocationConstraint
/// elsewhere.
http_request create_bucket_request(const eb_target& t);

/// `PUT` of the zip `zip` as the source bundle's key.
http_request put_object_request(const eb_target& t, std::string zip);

/// `t` formatted with strftime's `fmt`, in UTC.
std::string utc(std::chrono::system_clock::time_point t, const char* fmt);

} // namespace heaven
