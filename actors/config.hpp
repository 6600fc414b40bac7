/// heaven's settings: from flags, the environment and a config file, in that
/// order of precedence.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "messages/types.hpp"

namespace heaven {

/// Every setting heaven reads. Names in comments are the environment
/// variables; each also has a `--flag` and a `NAME=value` config file line.
struct settings {
  std::string listen = "127.0.0.1:8080";      ///< HEAVEN_LISTEN
  std::string data_dir = "./var";             ///< HEAVEN_DATA_DIR
  std::string webhook_secret;                 ///< GITHUB_WEBHOOK_SECRET
  std::string github_token;                   ///< GITHUB_TOKEN
  std::string api_endpoint = "https://api.github.com/"; ///< OCTOKIT_API_ENDPOINT
  std::string web_endpoint = "https://github.com/";     ///< OCTOKIT_WEB_ENDPOINT
  std::string public_url;                     ///< HEAVEN_PUBLIC_URL
  int64_t deployment_timeout = 300;           ///< DEPLOYMENT_TIMEOUT (s)
  bool terminate_children = true;     ///< TERMINATE_CHILD_PROCESS_ON_TIMEOUT
  int64_t kill_grace = 5;                     ///< HEAVEN_KILL_GRACE (s)
  bool insecure = false;                      ///< HEAVEN_INSECURE
  std::vector<std::string> withhold_env;      ///< HEAVEN_WITHHOLD_ENV
  std::string log_level = "info";             ///< HEAVEN_LOG_LEVEL
  int64_t max_body = 25 * 1024 * 1024;        ///< HEAVEN_MAX_BODY (bytes)
  int64_t status_retries = 5;                 ///< HEAVEN_STATUS_RETRIES
  std::string config_file;                    ///< HEAVEN_CONFIG
  /// Milliseconds between two polls of a remote build (Heroku, Beanstalk).
  int64_t poll_interval_ms = 3000;            ///< HEAVEN_POLL_INTERVAL_MS
  std::string heroku_api_key;                 ///< HEROKU_API_KEY
  std::string heroku_endpoint = "https://api.heroku.com/"; ///< HEAVEN_HEROKU_ENDPOINT
  std::string beanstalk_bucket;               ///< BEANSTALK_S3_BUCKET
  std::string beanstalk_access_key_id;        ///< BEANSTALK_ACCESS_KEY_ID
  std::string beanstalk_secret_access_key;    ///< BEANSTALK_SECRET_ACCESS_KEY
  /// S3 base URL; {bucket} and {region} are filled in.
  std::string s3_endpoint = "https://{bucket}.s3.{region}.amazonaws.com/"; ///< HEAVEN_S3_ENDPOINT
  /// Elastic Beanstalk query API URL; {region} is filled in.
  std::string beanstalk_endpoint = "https://elasticbeanstalk.{region}.amazonaws.com/"; ///< HEAVEN_BEANSTALK_ENDPOINT
};

/// The outcome of reading the settings: the settings, or an error message.
using settings_or_error = std::variant<settings, std::string>;

/// Reads settings from `args` (flags, without the program name and
/// subcommand), `env` (the process environment) and the config file named
/// by HEAVEN_CONFIG/--config (default conf/heaven.conf when it exists).
settings_or_error load_settings(const std::vector<std::string>& args,
                                const string_pairs& env);

/// The text of `heaven --help`: every setting with its variable, flag,
/// default and meaning.
std::string help_text();

/// The process environment as pairs.
string_pairs current_environment();

/// The environment a deployment's processes start from: heaven's own minus
/// the webhook secret and the variables named in `withhold_env`.
string_pairs child_environment(const settings& cfg, const string_pairs& env);

/// The values that must never appear in a log: tokens, keys, secrets found in
/// `cfg` and in well-known variables of `env`.
std::vector<std::string> secret_values(const settings& cfg,
                                       const string_pairs& env);

} // namespace heaven
