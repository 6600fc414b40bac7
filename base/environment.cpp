// The environment heaven reads and the one its deployments get, and the
// secrets in them (declared in base/config.hpp).
#include "base/config.hpp"

#include <algorithm>
#include <string_view>

#include "base/text.hpp"

extern char** environ;

namespace heaven {

string_pairs current_environment() {
  string_pairs result;
  for (auto p = environ; p && *p; ++p) {
    std::string kv = *p;
    auto eq = kv.find('=');
    if (eq != kv.npos)
      result.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return result;
}

string_pairs child_environment(const settings& cfg, const string_pairs& env) {
  string_pairs result;
  for (auto& [k, v] : env) {
    if (k == "GITHUB_WEBHOOK_SECRET" || k == "HEAVEN_API_TOKEN"
        || k == "GITHUB_CLIENT_SECRET" || k == "HEAVEN_DATABASE_URL"
        || k == "GITHUB_APP_PRIVATE_KEY")
      continue;
    if (std::find(cfg.withhold_env.begin(), cfg.withhold_env.end(), k)
        != cfg.withhold_env.end())
      continue;
    result.emplace_back(k, v);
  }
  return result;
}

namespace {

/// The string values (not the keys) of a flat JSON object such as
/// FLOWDOCK_FLOW_TOKENS' {"room": "token"}: each one is a secret of its own.
std::vector<std::string> json_string_values(std::string_view text) {
  std::vector<std::string> values;
  size_t i = 0;
  while ((i = text.find('"', i)) != std::string_view::npos) {
    std::string str;
    size_t j = i + 1;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size())
        ++j;
      str += text[j];
    }
    auto next = text.find_first_not_of(" \t\r\n", j + 1);
    bool is_key = next != std::string_view::npos && text[next] == ':';
    if (!is_key && !str.empty())
      values.push_back(std::move(str));
    i = j + 1;
  }
  return values;
}

/// The parts of a chat secret that could be printed on their own: a Slack
/// webhook's path after /services/ and its last segment (the token); the
/// values of the Flowdock token map.
void add_secret_parts(const std::string& name, const std::string& value,
                      std::vector<std::string>& out) {
  if (value.empty())
    return;
  out.push_back(value);
  if (name == "SLACK_WEBHOOK_URL") {
    constexpr std::string_view services = "/services/";
    if (auto at = value.find(services);
        at != std::string::npos && at + services.size() < value.size())
      out.push_back(value.substr(at + services.size()));
    if (auto slash = value.rfind('/');
        slash != std::string::npos && slash + 1 < value.size())
      out.push_back(value.substr(slash + 1));
  } else if (name == "HEAVEN_DATABASE_URL") {
    for (auto& v : database_url_passwords(value))
      out.push_back(std::move(v));
  } else if (name.find("PRIVATE_KEY") != std::string::npos) {
    // A PEM key: each line of its body on its own, real newlines or \n
    // escapes.
    std::string line;
    auto flush = [&] {
      if (line.size() >= 16 && line.find("-----") == std::string::npos)
        out.push_back(line);
      line.clear();
    };
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '\n' || value[i] == '\r') {
        flush();
      } else if (value[i] == '\\' && i + 1 < value.size()
                 && (value[i + 1] == 'n' || value[i + 1] == 'r')) {
        flush();
        ++i;
      } else {
        line += value[i];
      }
    }
    flush();
  } else if (name == "FLOWDOCK_FLOW_TOKENS") {
    for (auto& v : json_string_values(value))
      out.push_back(std::move(v));
  }
}

} // namespace

std::vector<std::string> database_url_passwords(const std::string& url) {
  std::vector<std::string> out;
  auto add = [&](const std::string& raw) {
    if (raw.empty())
      return;
    out.push_back(raw);
    auto decoded = percent_decode(raw);
    if (decoded != raw && !decoded.empty())
      out.push_back(decoded);
  };
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return out;
  auto start = scheme + 3;
  auto end = url.find_first_of("/?#", start);
  auto authority = url.substr(start, end == url.npos ? url.npos : end - start);
  if (auto at = authority.rfind('@'); at != std::string::npos) {
    auto userinfo = authority.substr(0, at);
    if (auto colon = userinfo.find(':'); colon != std::string::npos)
      add(userinfo.substr(colon + 1));
  }
  // ...?password=secret&sslmode=require
  if (auto q = url.find('?'); q != std::string::npos) {
    auto query = url.substr(q + 1);
    size_t i = 0;
    while (i <= query.size()) {
      auto amp = query.find('&', i);
      auto item = query.substr(i, amp == query.npos ? query.npos : amp - i);
      if (item.rfind("password=", 0) == 0)
        add(item.substr(9));
      if (amp == query.npos)
        break;
      i = amp + 1;
    }
  }
  return out;
}

std::vector<std::string> secret_values(const settings& cfg,
                                       const string_pairs& env) {
  std::vector<std::string> result;
  if (!cfg.github_token.empty())
    result.push_back(cfg.github_token);
  if (!cfg.webhook_secret.empty())
    result.push_back(cfg.webhook_secret);
  if (!cfg.api_token.empty())
    result.push_back(cfg.api_token);
  if (!cfg.github_client_secret.empty())
    result.push_back(cfg.github_client_secret);
  add_secret_parts("GITHUB_APP_PRIVATE_KEY", cfg.github_app_private_key,
                   result);
  if (!cfg.heroku_api_key.empty())
    result.push_back(cfg.heroku_api_key);
  if (!cfg.beanstalk_secret_access_key.empty())
    result.push_back(cfg.beanstalk_secret_access_key);
  add_secret_parts("SLACK_WEBHOOK_URL", cfg.slack_webhook_url, result);
  add_secret_parts("HIPCHAT_TOKEN", cfg.hipchat_token, result);
  add_secret_parts("CAMPFIRE_TOKEN", cfg.campfire_token, result);
  add_secret_parts("FLOWDOCK_FLOW_TOKENS", cfg.flowdock_flow_tokens, result);
  add_secret_parts("HEAVEN_NOTIFY_WEBHOOK_SECRET", cfg.notify_webhook_secret,
                   result);
  add_secret_parts("HEAVEN_DATABASE_URL", cfg.database_url, result);
  static const char* names[] = {
    "GITHUB_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "HEROKU_API_KEY",
    "DEPLOYMENT_PRIVATE_KEY",
    "BEANSTALK_ACCESS_KEY_ID",
    "BEANSTALK_SECRET_ACCESS_KEY",
    "BUNDLER_PRIVATE_CREDENTIALS",
    "SLACK_WEBHOOK_URL",
    "HIPCHAT_TOKEN",
    "CAMPFIRE_TOKEN",
    "FLOWDOCK_USER_API_TOKEN",
    "FLOWDOCK_FLOW_TOKENS",
    "HEAVEN_DATABASE_URL",
  };
  for (auto& [k, v] : env) {
    if (v.empty())
      continue;
    bool known = std::find_if(std::begin(names), std::end(names),
                              [&](const char* n) { return k == n; })
                 != std::end(names);
    bool looks_secret = k.find("TOKEN") != k.npos || k.find("SECRET") != k.npos
                        || k.find("PASSWORD") != k.npos
                        || k.find("PRIVATE_KEY") != k.npos;
    if (known || looks_secret)
      add_secret_parts(k, v, result);
  }
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

void set_env(string_pairs& env, const std::string& key, std::string value) {
  for (auto& kvp : env)
    if (kvp.first == key) {
      kvp.second = std::move(value);
      return;
    }
  env.emplace_back(key, std::move(value));
}

std::optional<std::string> get_env(const string_pairs& env,
                                   std::string_view key) {
  for (auto& kvp : env)
    if (kvp.first == key)
      return kvp.second;
  return std::nullopt;
}

} // namespace heaven
