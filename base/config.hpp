/// heaven's settings: from flags, the environment and a config file, in that
/// order of precedence.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "messages/types.hpp"

namespace heaven {

/// Every setting heaven reads. Names in comments are the environment
/// variables; each also has a `--flag` and a `NAME=value` config file line.
struct settings {
  std::string listen = "127.0.0.1:8080"; ///< HEAVEN_LISTEN
  std::string data_dir = "./var";        ///< HEAVEN_DATA_DIR
  /// postgresql://user:password@host:port/db: the store in PostgreSQL
  /// (several instances on one database); empty: SQLite in data_dir. A
  /// secret (its password).
  std::string database_url;   ///< HEAVEN_DATABASE_URL
  std::string webhook_secret; ///< GITHUB_WEBHOOK_SECRET
  std::string github_token;   ///< GITHUB_TOKEN
  /// GitHub App heaven authenticates as (with the app's private key): each
  /// repository's calls use its installation's token; GITHUB_TOKEN is the
  /// fallback for repositories the app is not installed on.
  std::string github_app_id; ///< GITHUB_APP_ID
  /// The app's private key: PEM text (its newlines real or `\n` escapes).
  /// A secret.
  std::string github_app_private_key; ///< GITHUB_APP_PRIVATE_KEY
  std::string api_endpoint
    = "https://api.github.com/";                    ///< OCTOKIT_API_ENDPOINT
  std::string web_endpoint = "https://github.com/"; ///< OCTOKIT_WEB_ENDPOINT
  std::string public_url;                           ///< HEAVEN_PUBLIC_URL
  int64_t deployment_timeout = 300;                 ///< DEPLOYMENT_TIMEOUT (s)
  bool terminate_children = true; ///< TERMINATE_CHILD_PROCESS_ON_TIMEOUT
  int64_t kill_grace = 5;         ///< HEAVEN_KILL_GRACE (s)
  /// "auto": each deployment's processes in a cgroup v2 of their own when
  /// the machine allows it; "off": process groups tracked by heaven.
  std::string cgroups = "auto";          ///< HEAVEN_CGROUPS
  bool insecure = false;                 ///< HEAVEN_INSECURE
  std::vector<std::string> withhold_env; ///< HEAVEN_WITHHOLD_ENV
  std::string log_level = "info";        ///< HEAVEN_LOG_LEVEL
  /// heaven's own log (stderr): "text" lines or one "json" object a line.
  std::string log_format = "text";     ///< HEAVEN_LOG_FORMAT
  int64_t max_body = 25 * 1024 * 1024; ///< HEAVEN_MAX_BODY (bytes)
  /// Webhook events waiting for the store's commit beyond which /events
  /// answers 503 with Retry-After.
  int64_t max_pending_events = 1000; ///< HEAVEN_MAX_PENDING_EVENTS
  /// Bearer token for GET /metrics, /deployments and /locks (empty: /metrics
  /// is not served on HEAVEN_LISTEN).
  std::string api_token; ///< HEAVEN_API_TOKEN
  /// Sign-in with GitHub (OAuth web flow) for /deployments and /locks; on
  /// when the client id is set, which wants a team or an organisation.
  std::string github_client_id;     ///< GITHUB_CLIENT_ID
  std::string github_client_secret; ///< GITHUB_CLIENT_SECRET
  std::string github_team_id;       ///< GITHUB_TEAM_ID
  std::string github_org;           ///< HEAVEN_GITHUB_ORG
  /// A second address serving only /metrics (no token) and /healthz.
  std::string metrics_listen; ///< HEAVEN_METRICS_LISTEN
  int64_t status_retries = 5; ///< HEAVEN_STATUS_RETRIES
  /// Seconds a GitHub status, a chat message or an auto-deployment is
  /// retried (across restarts) before it is dropped.
  int64_t outbox_max_age = 86400; ///< HEAVEN_OUTBOX_MAX_AGE
  /// First wait before an undelivered status or chat message is tried
  /// again; doubles.
  int64_t retry_backoff_ms = 1000;      ///< HEAVEN_RETRY_BACKOFF_MS
  int64_t retry_max_backoff_ms = 60000; ///< HEAVEN_RETRY_MAX_BACKOFF_MS
  /// Seconds running deployments may take to finish after SIGTERM.
  int64_t drain_seconds = 30; ///< HEAVEN_DRAIN_SECONDS
  /// Deployments running at once; the rest wait, queued, in order.
  int64_t max_running = 64; ///< HEAVEN_MAX_RUNNING
  /// A deployment to a busy app+environment waits its turn (queued) instead
  /// of being refused, unless its payload.config.queue is false.
  bool queue_deployments = false; ///< HEAVEN_QUEUE_DEPLOYMENTS
  int64_t lease_seconds = 30;     ///< HEAVEN_LEASE_SECONDS
  std::string config_file;        ///< HEAVEN_CONFIG
  /// Milliseconds between two polls of a remote build (Heroku, Beanstalk).
  int64_t poll_interval_ms = 3000; ///< HEAVEN_POLL_INTERVAL_MS
  /// Connections to one host for API requests (statuses, polls, ...).
  int64_t http_max_host_connections = 32; ///< HEAVEN_HTTP_MAX_HOST_CONNECTIONS
  /// Connections for API requests to all hosts, idle ones included.
  int64_t http_max_connections = 256; ///< HEAVEN_HTTP_MAX_CONNECTIONS
  /// Build outputs (Heroku's output streams) followed at once.
  int64_t http_max_streams = 1024; ///< HEAVEN_HTTP_MAX_STREAMS
  /// PEM bundle of the authorities HTTPS servers must be signed by, instead
  /// of the system's; "": the system's.
  std::string ca_file;        ///< HEAVEN_CA_FILE
  std::string heroku_api_key; ///< HEROKU_API_KEY
  std::string heroku_endpoint
    = "https://api.heroku.com/";           ///< HEAVEN_HEROKU_ENDPOINT
  std::string beanstalk_bucket;            ///< BEANSTALK_S3_BUCKET
  std::string beanstalk_access_key_id;     ///< BEANSTALK_ACCESS_KEY_ID
  std::string beanstalk_secret_access_key; ///< BEANSTALK_SECRET_ACCESS_KEY
  /// S3 base URL; {bucket} and {region} are filled in.
  std::string s3_endpoint
    = "https://{bucket}.s3.{region}.amazonaws.com/"; ///< HEAVEN_S3_ENDPOINT
  /// Elastic Beanstalk query API URL; {region} is filled in.
  std::string beanstalk_endpoint
    = "https://elasticbeanstalk.{region}.amazonaws.com/"; ///< HEAVEN_BEANSTALK_ENDPOINT

  /// known_hosts file every server's SSH host key must be in (capistrano's
  /// native mode); default $HOME/.ssh/known_hosts.
  std::string known_hosts; ///< HEAVEN_KNOWN_HOSTS
  /// Milliseconds to connect and sign in to a server over SSH.
  int64_t ssh_connect_timeout_ms = 10000; ///< HEAVEN_SSH_CONNECT_TIMEOUT_MS

  // -- chat-ops -------------------------------------------------------------
  /// Tasks `<prefix>:lock` and `<prefix>:unlock` lock an environment.
  std::string deploy_prefix = "deploy"; ///< HUBOT_DEPLOY_PREFIX
  /// Slack incoming webhook; Slack is notified when set (a secret: the URL
  /// carries the token).
  std::string slack_webhook_url;        ///< SLACK_WEBHOOK_URL
  std::string slack_bot_name = "hubot"; ///< SLACK_BOT_NAME
  std::string slack_bot_icon
    = "https://octodex.github.com/images/labtocat.png"; ///< SLACK_BOT_ICON
  /// HipChat room notification token; HipChat is notified when set.
  std::string hipchat_token;                              ///< HIPCHAT_TOKEN
  std::string hipchat_room = "Developers";                ///< HIPCHAT_ROOM
  std::string hipchat_server = "https://api.hipchat.com"; ///< HIPCHAT_SERVER
  /// Campfire API token; Campfire is notified when set.
  std::string campfire_token;     ///< CAMPFIRE_TOKEN
  std::string campfire_subdomain; ///< CAMPFIRE_SUBDOMAIN
  /// Campfire base URL; {subdomain} is filled in.
  std::string campfire_endpoint
    = "https://{subdomain}.campfirenow.com/"; ///< HEAVEN_CAMPFIRE_ENDPOINT
  /// JSON object: flow name (payload.notify.room) -> flow source token;
  /// Flowdock is notified when set.
  std::string flowdock_flow_tokens;          ///< FLOWDOCK_FLOW_TOKENS
  std::string flowdock_user_name = "Heaven"; ///< FLOWDOCK_USER_NAME
  std::string flowdock_user_email
    = "build@flowdock.com";         ///< FLOWDOCK_USER_EMAIL
  std::string flowdock_user_avatar; ///< FLOWDOCK_USER_AVATAR
  std::string flowdock_endpoint
    = "https://api.flowdock.com/"; ///< HEAVEN_FLOWDOCK_ENDPOINT
  /// A generic outgoing webhook for chat systems heaven doesn't know.
  std::string notify_webhook_url; ///< HEAVEN_NOTIFY_WEBHOOK_URL
  /// HMAC-SHA256 key of that webhook's `X-Heaven-Signature-256`.
  std::string notify_webhook_secret; ///< HEAVEN_NOTIFY_WEBHOOK_SECRET
  /// List the commits a successful deploy brought.
  bool display_commits = false; ///< HEAVEN_NOTIFIER_DISPLAY_COMMITS
  /// At most this many commits in that list (0: all).
  int64_t display_commits_limit = 0; ///< HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT
  /// Attempts per chat message before it is dropped (0: until
  /// HEAVEN_OUTBOX_MAX_AGE).
  int64_t notify_retries = 0; ///< HEAVEN_NOTIFY_RETRIES
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

// -- the environment (base/environment.cpp) ---------------------------------

/// The process environment as pairs.
string_pairs current_environment();

/// The environment a deployment's processes start from: heaven's own minus
/// the webhook secret, the API token and the variables named in
/// `withhold_env`.
string_pairs child_environment(const settings& cfg, const string_pairs& env);

/// Sets `key` to `value` in `env`, replacing an earlier value.
void set_env(string_pairs& env, const std::string& key, std::string value);

/// The value of `key` in `env`, or nullopt when absent.
std::optional<std::string> get_env(const string_pairs& env,
                                   std::string_view key);

/// The parts of a database URL that are secret: the password of its user
/// info (as written and percent-decoded) and of a `password=` query
/// parameter; none when it has no password.
std::vector<std::string> database_url_passwords(const std::string& url);

/// The values that must never appear in a log: tokens, keys, secrets found in
/// `cfg` and in well-known variables of `env`.
std::vector<std::string> secret_values(const settings& cfg,
                                       const string_pairs& env);

} // namespace heaven
