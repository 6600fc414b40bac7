#include "base/payload_config.hpp"

#include <nlohmann/json.hpp>

namespace heaven {

namespace {

using json = nlohmann::json;

/// The string at `key` of `object`, when there is one.
bool read_string(const json& object, const std::string& key, std::string& out) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string())
    return false;
  out = it->get<std::string>();
  return true;
}

/// A list of strings (see config_list).
config_list read_list(const json& value) {
  config_list result;
  if (value.is_null())
    return result;
  if (!value.is_array()) {
    result.valid = false;
    return result;
  }
  for (auto& x : value) {
    if (!x.is_string()) {
      result.valid = false;
      break;
    }
    result.items.push_back(x.get<std::string>());
  }
  return result;
}

/// The list at `key` of `object` (absent: empty and valid).
config_list read_list(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? config_list{} : read_list(*it);
}

/// True unless `value` is null, false, "", [] or {}.
bool names(const json& value) {
  if (value.is_null())
    return false;
  if (value.is_boolean())
    return value.get<bool>();
  if (value.is_string() || value.is_array() || value.is_object())
    return !value.empty();
  return true;
}

/// One entry of a `hosts` list.
config_host read_host(const json& h) {
  config_host result;
  if (h.is_string())
    result.address = h.get<std::string>();
  if (!h.is_object())
    return result;
  read_string(h, "host", result.address);
  if (auto d = h.find("deploy_to"); d != h.end()) {
    result.has_deploy_to = true;
    result.deploy_to_valid = d->is_string();
    if (result.deploy_to_valid)
      result.deploy_to = d->get<std::string>();
  }
  return result;
}

/// `hosts` for `environment`: a list, or an object of lists by environment.
void read_hosts(const json& config, const std::string& environment,
                payload_config& out) {
  auto hosts = config.find("hosts");
  if (hosts == config.end())
    return;
  out.names_hosts = !hosts->is_null() && !hosts->empty();
  const json* list = &*hosts;
  if (hosts->is_object()) {
    auto env = hosts->find(environment);
    if (env == hosts->end())
      return;
    list = &*env;
  }
  if (!list->is_array())
    return;
  for (auto& h : *list)
    out.hosts.push_back(read_host(h));
}

void read_config(const json& config, const deployment_request& req,
                 payload_config& out) {
  read_string(config, "deploy_script", out.deploy_script);
  if (auto s = config.find("servers"); s != config.end())
    out.names_servers = names(*s);
  read_hosts(config, req.environment, out);
  read_string(config, "user", out.user);
  out.has_deploy_to = read_string(config, "deploy_to", out.deploy_to);
  read_string(config, "repo_url", out.repo_url);
  if (auto k = config.find("keep_releases"); k != config.end()) {
    out.has_keep_releases = true;
    out.keep_releases = k->is_number_integer() ? k->get<int64_t>() : 0;
  }
  out.linked_files = read_list(config, "linked_files");
  out.linked_dirs = read_list(config, "linked_dirs");
  out.before_publish = read_list(config, "before_publish");
  out.after_publish = read_list(config, "after_publish");
  if (auto t = config.find("tasks"); t != config.end() && t->is_object()) {
    out.has_tasks = true;
    for (auto& [name, commands] : t->items())
      out.tasks.emplace(name, read_list(commands));
  }
  if (!read_string(config, "heroku_" + req.environment + "_name",
                   out.heroku_app))
    read_string(config, "heroku_name", out.heroku_app);
  read_string(config, "app_name", out.app_name);
}

} // namespace

payload_config read_payload_config(const deployment_request& req) {
  payload_config result;
  result.repo_url = req.clone_url;
  auto payload = json::parse(req.payload_json, nullptr, false);
  if (!payload.is_object())
    return result;
  if (auto c = payload.find("config"); c != payload.end() && c->is_object())
    read_config(*c, req, result);
  if (auto a = payload.find("aws"); a != payload.end() && a->is_object())
    read_string(*a, "region", result.aws_region);
  if (auto r = payload.find("rollback_release");
      r != payload.end() && !r->is_null()) {
    result.has_rollback_release = true;
    read_string(payload, "rollback_release", result.rollback_release);
  }
  return result;
}

} // namespace heaven
