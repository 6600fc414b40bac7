/// The ELASTIC_BEANSTALK provider: GitHub's zipball of the exact sha, uploaded
/// to S3, made an application version, deployed with UpdateEnvironment and
/// followed until the environment is Ready on it. All HTTP, signed with SigV4.
#pragma once

#include <string>

#include "messages/registry.hpp"
#include "providers/api_common.hpp"

namespace heaven {

/// What the elastic_beanstalk provider needs besides the job.
struct beanstalk_config : api_config {
  /// S3 base URL template; "{bucket}" and "{region}" are filled in
  /// ("https://{bucket}.s3.{region}.amazonaws.com/").
  std::string s3_endpoint;
  /// Elastic Beanstalk query API URL template; "{region}" is filled in.
  std::string beanstalk_endpoint;
  /// BEANSTALK_S3_BUCKET ("" → heaven-elasticbeanstalk-builds-<region>).
  std::string bucket;
  std::string access_key_id;
  std::string secret_access_key;
};

/// The factory that spawns one ELASTIC_BEANSTALK provider actor per
/// deployment (how it works: providers/elastic_beanstalk.cpp). Register it as
/// not needing a checkout.
provider_factory elastic_beanstalk_provider(beanstalk_config cfg);

} // namespace heaven
