#include "base/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>

namespace heaven {

namespace {

/// One setting: its variable, its flag, what it means, and how to store it.
struct option {
  const char* env;
  const char* flag;
  const char* help;
  std::function<std::string(settings&, const std::string&)> set;
  std::function<std::string(const settings&)> show;
  /// The flag names a file holding the value: secrets on a command line
  /// would show in every process list.
  bool flag_names_file = false;
  /// That file's whole text is the value (a PEM key), not its first line.
  bool whole_file = false;
};

std::string parse_int(const std::string& value, int64_t& out,
                      const char* name) {
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(),
                                   x);
  if (ec != std::errc{} || ptr != value.data() + value.size() || x < 0)
    return std::string{name} + " must be a non-negative whole number, got '"
           + value + "'";
  out = x;
  return {};
}

std::string parse_bool(const std::string& value, bool& out, const char* name) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), ::tolower);
  if (v == "1" || v == "true" || v == "yes" || v == "on") {
    out = true;
  } else if (v == "0" || v == "false" || v == "no" || v == "off") {
    out = false;
  } else {
    return std::string{name} + " must be true or false (1/0), got '" + value
           + "'";
  }
  return {};
}

#define HEAVEN_STRING(field)                                                   \
  [](settings& s, const std::string& v) {                                      \
    s.field = v;                                                               \
    return std::string{};                                                      \
  },                                                                           \
    [](const settings& s) { return s.field; }
#define HEAVEN_INT(field, name)                                                \
  [](settings& s, const std::string& v) {                                      \
    return parse_int(v, s.field, name);                                        \
  },                                                                           \
    [](const settings& s) { return std::to_string(s.field); }
#define HEAVEN_BOOL(field, name)                                               \
  [](settings& s, const std::string& v) {                                      \
    return parse_bool(v, s.field, name);                                       \
  },                                                                           \
    [](const settings& s) { return std::string{s.field ? "1" : "0"}; }

const std::vector<option>& options() {
  static const std::vector<option> result = {
    {"HEAVEN_LISTEN", "--listen", "address and port to serve on",
     HEAVEN_STRING(listen)},
    {"HEAVEN_DATA_DIR", "--data-dir",
     "where the database, logs, mirrors and workspaces live",
     HEAVEN_STRING(data_dir)},
    {"HEAVEN_DATABASE_URL", "--database-url-file",
     "postgresql:// (or postgres://) URL of a PostgreSQL database that "
     "holds the store instead of SQLite in the data directory (not built "
     "yet: heaven refuses to start with it); the flag names a file holding "
     "it",
     [](settings& s, const std::string& v) {
       if (!v.empty() && v.rfind("postgresql://", 0) != 0
           && v.rfind("postgres://", 0) != 0)
         // Not the value: it may hold a password.
         return std::string{"HEAVEN_DATABASE_URL must be a postgresql:// "
                            "(or postgres://) URL"};
       s.database_url = v;
       return std::string{};
     },
     [](const settings& s) { return s.database_url; }, true},
    {"GITHUB_WEBHOOK_SECRET", "--webhook-secret-file",
     "secret GitHub signs webhooks with (required unless --insecure); the "
     "flag names a file holding it",
     HEAVEN_STRING(webhook_secret), true},
    {"GITHUB_TOKEN", "--github-token-file",
     "token for GitHub's API and private clones; the flag names a file "
     "holding it",
     HEAVEN_STRING(github_token), true},
    {"GITHUB_APP_ID", "--github-app-id",
     "id of the GitHub App heaven authenticates as (with "
     "GITHUB_APP_PRIVATE_KEY): each repository's API calls and clones use "
     "its installation's token; GITHUB_TOKEN serves repositories the app is "
     "not installed on",
     [](settings& s, const std::string& v) {
       if (!v.empty() && v.find_first_not_of("0123456789") != v.npos)
         return "GITHUB_APP_ID must be the app's numeric id, got '" + v + "'";
       s.github_app_id = v;
       return std::string{};
     },
     [](const settings& s) { return s.github_app_id; }},
    {"GITHUB_APP_PRIVATE_KEY", "--github-app-private-key-file",
     "the GitHub App's private key (PEM, or one line with \\n escapes); the "
     "flag names the .pem file GitHub gave",
     HEAVEN_STRING(github_app_private_key), true, true},
    {"OCTOKIT_API_ENDPOINT", "--api-endpoint", "GitHub API base URL",
     HEAVEN_STRING(api_endpoint)},
    {"OCTOKIT_WEB_ENDPOINT", "--web-endpoint", "GitHub web base URL",
     HEAVEN_STRING(web_endpoint)},
    {"HEAVEN_PUBLIC_URL", "--public-url",
     "base of the log links given to GitHub (default http://<listen>)",
     HEAVEN_STRING(public_url)},
    {"DEPLOYMENT_TIMEOUT", "--deployment-timeout",
     "seconds a deployment may run before it fails",
     HEAVEN_INT(deployment_timeout, "DEPLOYMENT_TIMEOUT")},
    {"TERMINATE_CHILD_PROCESS_ON_TIMEOUT", "--terminate-child-process",
     "kill a timed-out deployment's process group (1) or leave it (0)",
     HEAVEN_BOOL(terminate_children, "TERMINATE_CHILD_PROCESS_ON_TIMEOUT")},
    {"HEAVEN_KILL_GRACE", "--kill-grace",
     "seconds between SIGTERM and SIGKILL when killing a deployment",
     HEAVEN_INT(kill_grace, "HEAVEN_KILL_GRACE")},
    {"HEAVEN_CGROUPS", "--cgroups",
     "auto: end each deployment's processes through a cgroup of its own "
     "where the machine allows it (cgroup v2, writable); off: through the "
     "process groups and sessions heaven tracks",
     [](settings& s, const std::string& v) {
       if (v != "auto" && v != "off")
         return "HEAVEN_CGROUPS must be auto or off, got '" + v + "'";
       s.cgroups = v;
       return std::string{};
     },
     [](const settings& s) { return s.cgroups; }},
    {"HEAVEN_INSECURE", "--insecure",
     "accept unsigned webhooks when no secret is set (never in production)",
     HEAVEN_BOOL(insecure, "HEAVEN_INSECURE")},
    {"HEAVEN_WITHHOLD_ENV", "--withhold-env",
     "comma-separated variables not passed to deploy scripts",
     [](settings& s, const std::string& v) {
       s.withhold_env.clear();
       size_t start = 0;
       while (start <= v.size()) {
         auto end = v.find(',', start);
         auto item = v.substr(start, end == v.npos ? v.npos : end - start);
         if (!item.empty())
           s.withhold_env.push_back(item);
         if (end == v.npos)
           break;
         start = end + 1;
       }
       return std::string{};
     },
     [](const settings& s) {
       std::string r;
       for (auto& x : s.withhold_env)
         r += (r.empty() ? "" : ",") + x;
       return r;
     }},
    {"HEAVEN_LOG_LEVEL", "--log-level",
     "trace, debug, info, warn, error or off", HEAVEN_STRING(log_level)},
    {"HEAVEN_LOG_FORMAT", "--log-format",
     "text: heaven's own log (stderr) as lines of text; json: one JSON "
     "object a line (time, level, message, and the deployment, repository "
     "and environment a line is about); secrets are redacted in both",
     [](settings& s, const std::string& v) {
       if (v != "text" && v != "json")
         return "HEAVEN_LOG_FORMAT must be text or json, got '" + v + "'";
       s.log_format = v;
       return std::string{};
     },
     [](const settings& s) { return s.log_format; }},
    {"HEAVEN_MAX_BODY", "--max-body", "largest webhook body in bytes",
     HEAVEN_INT(max_body, "HEAVEN_MAX_BODY")},
    {"HEAVEN_MAX_PENDING_EVENTS", "--max-pending-events",
     "webhook events waiting to be stored beyond which POST /events answers "
     "503 with Retry-After (GitHub and senders retry) instead of queueing",
     HEAVEN_INT(max_pending_events, "HEAVEN_MAX_PENDING_EVENTS")},
    {"HEAVEN_API_TOKEN", "--api-token-file",
     "bearer token that reads GET /metrics, GET /deployments and GET /locks "
     "(Authorization: Bearer ...); without it /metrics is not served on "
     "HEAVEN_LISTEN, nor /deployments and /locks without GitHub sign-in; the "
     "flag names a file holding it",
     HEAVEN_STRING(api_token), true},
    {"GITHUB_CLIENT_ID", "--github-client-id",
     "client id of the GitHub OAuth app people sign in with to read "
     "/deployments and /locks (callback: HEAVEN_PUBLIC_URL/auth/github/"
     "callback); wants GITHUB_TEAM_ID or HEAVEN_GITHUB_ORG",
     HEAVEN_STRING(github_client_id)},
    {"GITHUB_CLIENT_SECRET", "--github-client-secret-file",
     "client secret of that OAuth app; the flag names a file holding it",
     HEAVEN_STRING(github_client_secret), true},
    {"GITHUB_TEAM_ID", "--github-team-id",
     "sign-in lets in only this team's active members (GitHub's team id)",
     HEAVEN_STRING(github_team_id)},
    {"HEAVEN_GITHUB_ORG", "--github-org",
     "without GITHUB_TEAM_ID, sign-in lets in this organisation's members",
     HEAVEN_STRING(github_org)},
    {"HEAVEN_METRICS_LISTEN", "--metrics-listen",
     "host:port of a second listener that serves GET /metrics without a "
     "token, and /healthz (for a private network); empty: none",
     HEAVEN_STRING(metrics_listen)},
    {"HEAVEN_STATUS_RETRIES", "--status-retries",
     "attempts of one API request (Heroku, Beanstalk, GitHub archives, "
     "auto-deploy's questions and creations, the commit list of a chat "
     "notice) on passing failures; statuses are retried until "
     "HEAVEN_OUTBOX_MAX_AGE",
     HEAVEN_INT(status_retries, "HEAVEN_STATUS_RETRIES")},
    {"HEAVEN_OUTBOX_MAX_AGE", "--outbox-max-age",
     "seconds heaven keeps trying to deliver a GitHub status, a chat "
     "message or an auto-deployment, across restarts, before it drops it "
     "with an error line",
     HEAVEN_INT(outbox_max_age, "HEAVEN_OUTBOX_MAX_AGE")},
    {"HEAVEN_RETRY_BACKOFF_MS", "--retry-backoff-ms",
     "milliseconds before the first retry of an undelivered status or chat "
     "message; doubles each time",
     HEAVEN_INT(retry_backoff_ms, "HEAVEN_RETRY_BACKOFF_MS")},
    {"HEAVEN_RETRY_MAX_BACKOFF_MS", "--retry-max-backoff-ms",
     "longest wait between two attempts of an undelivered status or chat "
     "message",
     HEAVEN_INT(retry_max_backoff_ms, "HEAVEN_RETRY_MAX_BACKOFF_MS")},
    {"HEAVEN_DRAIN_SECONDS", "--drain-seconds",
     "on SIGTERM, seconds running deployments may take to finish before "
     "heaven stops them",
     HEAVEN_INT(drain_seconds, "HEAVEN_DRAIN_SECONDS")},
    {"HEAVEN_MAX_RUNNING", "--max-running",
     "deployments that run at once (checkout, script, statuses); the rest "
     "wait as queued, in the order they came, and start as others end",
     HEAVEN_INT(max_running, "HEAVEN_MAX_RUNNING")},
    {"HEAVEN_QUEUE_DEPLOYMENTS", "--queue-deployments",
     "a deployment to an app and environment that is busy waits its turn "
     "(queued, started when the one before ends) instead of being refused "
     "with 'Already deploying.'; an app's payload.config.queue: false opts "
     "out (payload.config.queue: true opts in without this)",
     HEAVEN_BOOL(queue_deployments, "HEAVEN_QUEUE_DEPLOYMENTS")},
    {"HEAVEN_LEASE_SECONDS", "--lease-seconds",
     "several instances (HEAVEN_DATABASE_URL): each renews its lease this "
     "often times three; one silent for two of these is taken over by "
     "another",
     HEAVEN_INT(lease_seconds, "HEAVEN_LEASE_SECONDS")},
    {"HEAVEN_CONFIG", "--config",
     "config file of NAME=value lines (default conf/heaven.conf if present)",
     HEAVEN_STRING(config_file)},
    {"HEAVEN_POLL_INTERVAL_MS", "--poll-interval-ms",
     "milliseconds between polls of a Heroku build or a Beanstalk "
     "environment",
     HEAVEN_INT(poll_interval_ms, "HEAVEN_POLL_INTERVAL_MS")},
    {"HEAVEN_HTTP_MAX_HOST_CONNECTIONS", "--http-max-host-connections",
     "connections to one host for API requests (GitHub statuses, Heroku "
     "and Beanstalk calls, chat messages): requests in flight to it at "
     "once; more wait their turn",
     HEAVEN_INT(http_max_host_connections, "HEAVEN_HTTP_MAX_HOST_CONNECTIONS")},
    {"HEAVEN_HTTP_MAX_CONNECTIONS", "--http-max-connections",
     "connections for API requests to all hosts together, idle ones kept "
     "for reuse included",
     HEAVEN_INT(http_max_connections, "HEAVEN_HTTP_MAX_CONNECTIONS")},
    {"HEAVEN_HTTP_MAX_STREAMS", "--http-max-streams",
     "build outputs (Heroku output streams) followed at once, on "
     "connections of their own; the next ones wait for one to end",
     HEAVEN_INT(http_max_streams, "HEAVEN_HTTP_MAX_STREAMS")},
    {"HEAVEN_CA_FILE", "--ca-file",
     "PEM file of the certificate authorities HTTPS servers must be signed "
     "by (API requests, build outputs, chat messages); it replaces the "
     "system's (/etc/ssl/certs), which are used when unset",
     HEAVEN_STRING(ca_file)},
    {"HEROKU_API_KEY", "--heroku-api-key-file",
     "Heroku Platform API key (heroku provider); the flag names a file "
     "holding it",
     HEAVEN_STRING(heroku_api_key), true},
    {"HEAVEN_HEROKU_ENDPOINT", "--heroku-endpoint",
     "Heroku Platform API base URL", HEAVEN_STRING(heroku_endpoint)},
    {"BEANSTALK_S3_BUCKET", "--beanstalk-s3-bucket",
     "S3 bucket for Elastic Beanstalk bundles (default "
     "heaven-elasticbeanstalk-builds-<region>)",
     HEAVEN_STRING(beanstalk_bucket)},
    {"BEANSTALK_ACCESS_KEY_ID", "--beanstalk-access-key-id",
     "AWS access key id (elastic_beanstalk provider)",
     HEAVEN_STRING(beanstalk_access_key_id)},
    {"BEANSTALK_SECRET_ACCESS_KEY", "--beanstalk-secret-access-key-file",
     "AWS secret access key (elastic_beanstalk provider); the flag names a "
     "file holding it",
     HEAVEN_STRING(beanstalk_secret_access_key), true},
    {"HEAVEN_S3_ENDPOINT", "--s3-endpoint",
     "S3 base URL; {bucket} and {region} are filled in",
     HEAVEN_STRING(s3_endpoint)},
    {"HEAVEN_BEANSTALK_ENDPOINT", "--beanstalk-endpoint",
     "Elastic Beanstalk API URL; {region} is filled in",
     HEAVEN_STRING(beanstalk_endpoint)},
    {"HEAVEN_KNOWN_HOSTS", "--known-hosts",
     "known_hosts file the servers' SSH host keys must be in (default "
     "$HOME/.ssh/known_hosts)",
     HEAVEN_STRING(known_hosts)},
    {"HEAVEN_SSH_CONNECT_TIMEOUT_MS", "--ssh-connect-timeout-ms",
     "milliseconds to connect and sign in to a server over SSH",
     HEAVEN_INT(ssh_connect_timeout_ms, "HEAVEN_SSH_CONNECT_TIMEOUT_MS")},
    {"HUBOT_DEPLOY_PREFIX", "--deploy-prefix",
     "task prefix of the lock tasks: <prefix>:lock and <prefix>:unlock",
     HEAVEN_STRING(deploy_prefix)},
    {"SLACK_WEBHOOK_URL", "--slack-webhook-url-file",
     "Slack incoming webhook URL (Slack is told of deployments when set); "
     "the flag names a file holding it",
     HEAVEN_STRING(slack_webhook_url), true},
    {"SLACK_BOT_NAME", "--slack-bot-name", "name heaven posts to Slack as",
     HEAVEN_STRING(slack_bot_name)},
    {"SLACK_BOT_ICON", "--slack-bot-icon", "icon URL of heaven's Slack posts",
     HEAVEN_STRING(slack_bot_icon)},
    {"HIPCHAT_TOKEN", "--hipchat-token-file",
     "HipChat room notification token (HipChat is told when set); the flag "
     "names a file holding it",
     HEAVEN_STRING(hipchat_token), true},
    {"HIPCHAT_ROOM", "--hipchat-room",
     "HipChat room when the payload names none", HEAVEN_STRING(hipchat_room)},
    {"HIPCHAT_SERVER", "--hipchat-server", "HipChat server base URL",
     HEAVEN_STRING(hipchat_server)},
    {"CAMPFIRE_TOKEN", "--campfire-token-file",
     "Campfire API token (Campfire is told when set); the flag names a file "
     "holding it",
     HEAVEN_STRING(campfire_token), true},
    {"CAMPFIRE_SUBDOMAIN", "--campfire-subdomain", "Campfire account subdomain",
     HEAVEN_STRING(campfire_subdomain)},
    {"HEAVEN_CAMPFIRE_ENDPOINT", "--campfire-endpoint",
     "Campfire base URL; {subdomain} is filled in",
     HEAVEN_STRING(campfire_endpoint)},
    {"FLOWDOCK_FLOW_TOKENS", "--flowdock-flow-tokens-file",
     "JSON object of flow name -> flow source token (Flowdock is told when "
     "set); the flag names a file holding it",
     HEAVEN_STRING(flowdock_flow_tokens), true},
    {"FLOWDOCK_USER_NAME", "--flowdock-user-name",
     "author name of heaven's Flowdock activities",
     HEAVEN_STRING(flowdock_user_name)},
    {"FLOWDOCK_USER_EMAIL", "--flowdock-user-email",
     "author email of heaven's Flowdock activities",
     HEAVEN_STRING(flowdock_user_email)},
    {"FLOWDOCK_USER_AVATAR", "--flowdock-user-avatar",
     "author avatar URL of heaven's Flowdock activities (default: a build "
     "status icon)",
     HEAVEN_STRING(flowdock_user_avatar)},
    {"HEAVEN_FLOWDOCK_ENDPOINT", "--flowdock-endpoint", "Flowdock API base URL",
     HEAVEN_STRING(flowdock_endpoint)},
    {"HEAVEN_NOTIFY_WEBHOOK_URL", "--notify-webhook-url",
     "URL heaven POSTs every deployment status to as signed JSON",
     HEAVEN_STRING(notify_webhook_url)},
    {"HEAVEN_NOTIFY_WEBHOOK_SECRET", "--notify-webhook-secret-file",
     "key of that webhook's X-Heaven-Signature-256; the flag names a file "
     "holding it",
     HEAVEN_STRING(notify_webhook_secret), true},
    {"HEAVEN_NOTIFIER_DISPLAY_COMMITS", "--notifier-display-commits",
     "after a successful deploy, list the commits it brought (1/0)",
     HEAVEN_BOOL(display_commits, "HEAVEN_NOTIFIER_DISPLAY_COMMITS")},
    {"HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT",
     "--notifier-display-commits-limit",
     "list at most this many commits (0: all)",
     HEAVEN_INT(display_commits_limit,
                "HEAVEN_NOTIFIER_DISPLAY_COMMITS_LIMIT")},
    {"HEAVEN_NOTIFY_RETRIES", "--notify-retries",
     "attempts per chat message before it is dropped with an error line "
     "(0: until HEAVEN_OUTBOX_MAX_AGE); undelivered messages survive "
     "restarts",
     HEAVEN_INT(notify_retries, "HEAVEN_NOTIFY_RETRIES")},
  };
  return result;
}

const option* by_env(const std::string& name) {
  for (auto& o : options())
    if (name == o.env)
      return &o;
  return nullptr;
}

const option* by_flag(const std::string& flag) {
  for (auto& o : options())
    if (flag == o.flag)
      return &o;
  return nullptr;
}

std::string trim(std::string s) {
  auto ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

/// Reads NAME=value lines; '#' starts a comment line; values may be quoted.
std::string read_file(const std::string& path, settings& s, bool required) {
  std::ifstream in{path};
  if (!in)
    return required ? "cannot read config file " + path : std::string{};
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = trim(line);
    if (line.empty() || line[0] == '#')
      continue;
    auto eq = line.find('=');
    if (eq == line.npos)
      return path + ":" + std::to_string(lineno) + ": expected NAME=value";
    auto name = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (value.size() >= 2
        && ((value.front() == '"' && value.back() == '"')
            || (value.front() == '\'' && value.back() == '\'')))
      value = value.substr(1, value.size() - 2);
    auto opt = by_env(name);
    if (!opt)
      return path + ":" + std::to_string(lineno) + ": unknown setting " + name;
    if (auto err = opt->set(s, value); !err.empty())
      return path + ":" + std::to_string(lineno) + ": " + err;
  }
  return {};
}

} // namespace

settings_or_error load_settings(const std::vector<std::string>& args,
                                const string_pairs& env) {
  // Collect flags first: --config may name the file the rest builds on.
  std::vector<std::pair<const option*, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    auto arg = args[i];
    std::string value;
    auto eq = arg.find('=');
    if (eq != arg.npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto opt = by_flag(arg);
    if (!opt)
      return "unknown option " + arg + " (see heaven --help)";
    bool is_bool = std::string{opt->flag} == "--insecure"
                   || std::string{opt->flag} == "--terminate-child-process"
                   || std::string{opt->flag} == "--queue-deployments";
    if (eq == std::string::npos) {
      if (is_bool) {
        value = "1";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return "option " + arg + " needs a value";
      }
    }
    flags.emplace_back(opt, value);
  }
  settings s;
  std::string file;
  bool file_required = false;
  for (auto& [k, v] : env)
    if (k == "HEAVEN_CONFIG")
      file = v, file_required = true;
  for (auto& [opt, v] : flags)
    if (std::string{opt->env} == "HEAVEN_CONFIG")
      file = v, file_required = true;
  if (file.empty())
    file = "conf/heaven.conf";
  if (auto err = read_file(file, s, file_required); !err.empty())
    return err;
  if (std::filesystem::exists(file))
    s.config_file = file;
  for (auto& [k, v] : env)
    if (auto opt = by_env(k); opt && k != "HEAVEN_CONFIG")
      if (auto err = opt->set(s, v); !err.empty())
        return err;
  for (auto& [opt, v] : flags) {
    auto value = v;
    if (opt->flag_names_file) {
      std::ifstream in{v};
      if (!in)
        return std::string{opt->flag} + ": cannot read " + v;
      if (opt->whole_file) {
        value.assign(std::istreambuf_iterator<char>{in},
                     std::istreambuf_iterator<char>{});
      } else {
        std::getline(in, value);
      }
      value = trim(value);
    }
    if (auto err = opt->set(s, value); !err.empty())
      return err;
  }
  if (s.known_hosts.empty())
    for (auto& [k, v] : env)
      if (k == "HOME" && !v.empty())
        s.known_hosts = v + "/.ssh/known_hosts";
  if (s.public_url.empty())
    s.public_url = "http://" + s.listen;
  while (!s.public_url.empty() && s.public_url.back() == '/')
    s.public_url.pop_back();
  if (s.deployment_timeout == 0)
    return "DEPLOYMENT_TIMEOUT must be at least 1 second";
  if (s.status_retries == 0)
    s.status_retries = 1;
  if (s.max_running < 1)
    return "HEAVEN_MAX_RUNNING must be at least 1";
  if (s.poll_interval_ms < 1)
    return "HEAVEN_POLL_INTERVAL_MS must be at least 1";
  if (s.max_pending_events < 1)
    return "HEAVEN_MAX_PENDING_EVENTS must be at least 1";
  if (s.outbox_max_age < 1)
    return "HEAVEN_OUTBOX_MAX_AGE must be at least 1 second";
  if (s.http_max_host_connections < 1)
    return "HEAVEN_HTTP_MAX_HOST_CONNECTIONS must be at least 1";
  if (s.http_max_connections < s.http_max_host_connections)
    return "HEAVEN_HTTP_MAX_CONNECTIONS must be at least "
           "HEAVEN_HTTP_MAX_HOST_CONNECTIONS";
  if (s.http_max_streams < 1)
    return "HEAVEN_HTTP_MAX_STREAMS must be at least 1";
  if (!s.ca_file.empty()
      && (!std::filesystem::is_regular_file(s.ca_file)
          || !std::ifstream{s.ca_file}))
    return "HEAVEN_CA_FILE: cannot read " + s.ca_file;
  if (s.retry_backoff_ms < 1)
    return "HEAVEN_RETRY_BACKOFF_MS must be at least 1";
  if (s.retry_max_backoff_ms < s.retry_backoff_ms)
    return "HEAVEN_RETRY_MAX_BACKOFF_MS must be at least "
           "HEAVEN_RETRY_BACKOFF_MS";
  if (s.lease_seconds < 2)
    return "HEAVEN_LEASE_SECONDS must be at least 2";
  if (s.github_app_id.empty() != s.github_app_private_key.empty())
    return s.github_app_id.empty()
             ? "GITHUB_APP_PRIVATE_KEY is set but GITHUB_APP_ID is not: set "
               "the app's id too"
             : "GITHUB_APP_ID is set but GITHUB_APP_PRIVATE_KEY is not: set "
               "the app's private key (or --github-app-private-key-file)";
  return s;
}

std::string help_text() {
  std::string out
    = "heaven - deploys GitHub deployment events\n\n"
      "Usage:\n"
      "  heaven serve [options]    serve webhooks on POST /events\n"
      "  heaven demo [options]     serve, and deploy a bundled example\n"
      "  heaven locks [options]    list the locked environments\n"
      "  heaven unlock <owner/name> <environment> [options]\n"
      "                            break a lock (also while heaven serves)\n"
      "  heaven repos [options]    list the repositories heaven has heard of\n"
      "  heaven repos disable|enable <owner/name> [options]\n"
      "                            ignore a repository's events, or act again\n"
      "  heaven migrate [options]  create or migrate the database's schema\n"
      "                            (PostgreSQL with HEAVEN_DATABASE_URL, else\n"
      "                            SQLite in the data directory)\n"
      "  heaven db copy [--from <data dir>] [options]\n"
      "                            copy a SQLite data directory (default:\n"
      "                            HEAVEN_DATA_DIR) into the empty PostgreSQL\n"
      "                            database of HEAVEN_DATABASE_URL; stop its\n"
      "                            heaven first\n"
      "  heaven loadtest [--target URL] [options]\n"
      "                            send signed events at a rate and measure\n"
      "                            (heaven loadtest --help tells its options)\n"
      "  heaven --help             this text\n\n"
      "Every setting can come from a flag, an environment variable, or a\n"
      "NAME=value line in the config file; flags win over variables, and\n"
      "variables over the file.\n\n"
      "Settings (variable, flag, default):\n";
  settings defaults;
  for (auto& o : options()) {
    auto def = o.show(defaults);
    out += "  ";
    out += o.env;
    out += ", ";
    out += o.flag;
    out += "\n      ";
    out += o.help;
    if (!def.empty())
      out += " [default: " + def + "]";
    out += "\n";
  }
  out += "\nOther variables the providers read keep the Rails Heaven's names "
         "(DEPLOYMENT_PRIVATE_KEY, DEPLOY_COMMAND_FORMAT, ...).\n";
  return out;
}

} // namespace heaven
