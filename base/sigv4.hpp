/// AWS Signature Version 4, written once for S3 and Elastic Beanstalk.
///
/// The pieces are separate functions so that each step of AWS's published
/// test suite (canonical request, string to sign, authorization) can be
/// checked on its own.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "messages/types.hpp"

namespace heaven::sigv4 {

/// AWS credentials. `session_token` is optional (temporary credentials).
struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

/// A request as SigV4 sees it.
struct request {
  std::string method;
  /// The path, not yet %-encoded ("/", "/bucket/app-1.zip", "/ሴ").
  std::string path;
  /// The raw query string after '?', as sent ("" when none).
  std::string query;
  /// Every header to sign, as sent, including `host` (and `x-amz-date`).
  string_pairs headers;
  /// Lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_hash;
};

/// `t` as SigV4's timestamp, "YYYYMMDDTHHMMSSZ" (UTC).
std::string amz_date(std::chrono::system_clock::time_point t);

/// The canonical request. `normalize_path` removes "." and ".." segments and
/// repeated slashes (every service but S3).
std::string canonical_request(const request& req, bool normalize_path);

/// The string to sign for `canonical` at `amz_date` ("YYYYMMDDTHHMMSSZ").
std::string string_to_sign(std::string_view canonical,
                           std::string_view amz_date, std::string_view region,
                           std::string_view service);

/// The value of the `Authorization` header.
std::string authorization(const request& req, const credentials& creds,
                          std::string_view amz_date, std::string_view region,
                          std::string_view service, bool normalize_path);

/// Signs `req` in place for `service` ("s3", "elasticbeanstalk") in
/// `region` at time `now`: adds `Host`, `X-Amz-Date`, `x-amz-content-sha256`
/// (S3 only), `X-Amz-Security-Token` (with a session token) and
/// `Authorization`, over every header `req` carries. `req.url` must be an
/// absolute http(s) URL whose path is already %-encoded the way SigV4
/// encodes it (see `percent_encode` in base/text.hpp).
void sign(http_request& req, const credentials& creds, std::string_view region,
          std::string_view service, std::chrono::system_clock::time_point now);

} // namespace heaven::sigv4
