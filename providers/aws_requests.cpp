#include "providers/aws_requests.hpp"

#include <algorithm>
#include <ctime>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/retry.hpp"
#include "base/text.hpp"
#include "base/validate.hpp"
#include "providers/aws_xml.hpp"

namespace heaven {

namespace {

/// `tmpl` with every `{name}` replaced by `value`.
std::string fill(std::string tmpl, const std::string& name,
                 const std::string& value) {
  auto placeholder = "{" + name + "}";
  for (auto pos = tmpl.find(placeholder); pos != std::string::npos;
       pos = tmpl.find(placeholder, pos + value.size()))
    tmpl.replace(pos, placeholder.size(), value);
  return tmpl;
}

/// An application/x-www-form-urlencoded body (RFC 3986 escaping, which AWS
/// reads the same way).
std::string form(const string_pairs& params) {
  std::string out;
  for (auto& [key, value] : params) {
    if (!out.empty())
      out += '&';
    out += percent_encode(key);
    out += '=';
    out += percent_encode(value);
  }
  return out;
}

/// True for region names such as "us-east-1" (they go into host names).
bool valid_region(const std::string& region) {
  return !region.empty() && region.size() <= 32
         && std::all_of(region.begin(), region.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '-';
            });
}

/// True for S3 bucket names (3 to 63 of a-z, 0-9, '.', '-').
bool valid_bucket(const std::string& bucket) {
  return bucket.size() >= 3 && bucket.size() <= 63
         && std::all_of(bucket.begin(), bucket.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '.';
            });
}

// ---- AWS answers -----------------------------------------------------------

/// Codes AWS uses to say "slow down, then try again".
bool throttled(const std::string& code) {
  static const std::set<std::string> codes{
    "Throttling",    "ThrottlingException", "RequestLimitExceeded",
    "SlowDown",      "RequestThrottled",    "TooManyRequestsException",
    "RequestTimeout"};
  return codes.count(code) > 0;
}

/// The CreateBucket body: none in us-east-1, a LocationConstraint elsewhere.
std::string create_bucket_body(const std::string& region) {
  if (region == "us-east-1")
    return {};
  return "<CreateBucketConfiguration "
         "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
         "<LocationConstraint>"
         + region + "</LocationConstraint></CreateBucketConfiguration>";
}

} // namespace

std::string utc(std::chrono::system_clock::time_point t, const char* fmt) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  auto n = std::strftime(buf, sizeof(buf), fmt, &tm);
  return std::string(buf, n);
}

std::optional<std::string> prepare_target(eb_target& t,
                                          const beanstalk_config& cfg,
                                          const provider_job& job) {
  t.app = job.config.app_name;
  if (t.app.empty())
    return "payload.config.app_name is missing: heaven doesn't know which "
           "Elastic Beanstalk application to deploy";
  t.region = job.config.aws_region;
  if (t.region.empty())
    t.region = "us-east-1";
  if (!valid_region(t.region))
    return "payload.aws.region \"" + truncate_description(t.region, 40)
           + "\" is not an AWS region";
  std::vector<std::string> missing;
  if (cfg.access_key_id.empty())
    missing.emplace_back("BEANSTALK_ACCESS_KEY_ID");
  if (cfg.secret_access_key.empty())
    missing.emplace_back("BEANSTALK_SECRET_ACCESS_KEY");
  if (missing.size() == 2)
    return "BEANSTALK_ACCESS_KEY_ID and BEANSTALK_SECRET_ACCESS_KEY are not "
           "set: heaven has no AWS credentials for Elastic Beanstalk";
  if (missing.size() == 1)
    return missing.front()
           + " is not set: heaven has no AWS credentials for Elastic "
             "Beanstalk";
  auto& r = job.request;
  if (!valid_sha(r.sha))
    return "the deployment's sha \"" + truncate_description(r.sha, 40)
           + "\" is not a full 40-character sha";
  t.bucket = cfg.bucket.empty() ? "heaven-elasticbeanstalk-builds-" + t.region
                                : cfg.bucket;
  if (!valid_bucket(t.bucket))
    return "BEANSTALK_S3_BUCKET \"" + t.bucket
           + "\" is not a valid S3 bucket name";
  t.environment = r.environment;
  t.creds = {cfg.access_key_id, cfg.secret_access_key, {}};
  t.s3_base = fill(fill(cfg.s3_endpoint, "bucket", t.bucket), "region",
                   t.region);
  if (t.s3_base.empty() || t.s3_base.back() != '/')
    t.s3_base += '/';
  t.eb_url = fill(cfg.beanstalk_endpoint, "region", t.region);
  t.key = t.app + "-" + r.sha + ".zip";
  auto stamp = utc(std::chrono::system_clock::now(), "%Y%m%d%H%M%S");
  t.label = r.sha.substr(0, 12) + "-" + stamp + "-" + std::to_string(job.id);
  t.label = t.label.substr(0, 100);
  return std::nullopt;
}

bool worth_retrying(const http_response& res) {
  if (transient(res))
    return true;
  return res.status == 400 && throttled(parse_aws_error(res.body).code);
}

http_request eb_request(const std::string& eb_url, const string_pairs& params) {
  http_request req;
  req.method = "POST";
  req.url = eb_url;
  req.headers = {
    {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = form(params);
  return req;
}

std::string version_description(const deployment_request& r) {
  return r.repo + " " + r.ref + " (" + short_sha(r.sha) + ") deployed"
         + (r.actor.empty() ? "" : " by " + r.actor) + " with heaven";
}

http_request head_bucket_request(const eb_target& t) {
  http_request req;
  req.method = "HEAD";
  req.url = t.s3_base;
  return req;
}

http_request create_bucket_request(const eb_target& t) {
  http_request req;
  req.method = "PUT";
  req.url = t.s3_base;
  req.body = create_bucket_body(t.region);
  if (!req.body.empty())
    req.headers = {{"Content-Type", "application/xml"}};
  return req;
}

http_request put_object_request(const eb_target& t, std::string zip) {
  http_request req;
  req.method = "PUT";
  // '/' escaped too: curl must not read dot segments into the key.
  req.url = t.s3_base + percent_encode(t.key);
  req.headers = {{"Content-Type", "application/zip"}};
  req.body = std::move(zip);
  req.timeout_ms = 600000;
  return req;
}

} // namespace heaven
