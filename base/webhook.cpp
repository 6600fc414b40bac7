#include "base/webhook.hpp"

#include <optional>
#include <utility>
#include <vector>

#include "base/validate.hpp"
#include "base/webhook_json.hpp"

namespace heaven {

using namespace webhook_json;

namespace {

/// The fields of `repository` that events use.
struct repo_fields {
  std::optional<std::string> full_name, clone_url, name, html_url,
    default_branch;
};

/// Fields of a deployment event before defaults are applied.
struct raw_fields {
  std::optional<int64_t> id;
  std::optional<std::string> sha, ref, environment, task, description, creator,
    sender, payload;
  repo_fields repo;
};

/// Reads `deployment.payload`: an object (kept as its text), or a string
/// holding one (some clients encode it twice); null or blank is none.
std::string read_payload_text(od::value& val, std::optional<std::string>& out) {
  od::json_type type;
  if (auto err = val.type().get(type))
    return malformed(err);
  if (type == od::json_type::object) {
    od::object payload;
    std::string_view text;
    if (auto err = val.get_object().get(payload))
      return malformed(err);
    if (auto err = payload.raw_json().get(text))
      return malformed(err);
    out = std::string{text};
    return {};
  }
  if (type == od::json_type::null)
    return {};
  if (type != od::json_type::string)
    return wrong_type("deployment.payload", "an object or a string");
  auto msg = read_string(val, "deployment.payload", out);
  if (out && out->find_first_not_of(" \t\r\n") == std::string::npos)
    out.reset();
  else if (out)
    if (auto inner = check_json_object(*out); !inner.empty())
      return "field deployment.payload holds no JSON object (" + inner + ")";
  return msg;
}

std::string read_deployment(od::value& v, raw_fields& f) {
  return read_required_object(
    v, "deployment", [&](std::string_view key, od::value& val) -> std::string {
      if (key == "id") {
        int64_t id = 0;
        if (val.get_int64().get(id))
          return wrong_type("deployment.id", "an integer");
        f.id = id;
        return {};
      }
      if (key == "creator")
        return read_login(val, "deployment.creator", f.creator);
      if (key == "payload")
        return read_payload_text(val, f.payload);
      return read_string_field("deployment", key, val,
                               {{"sha", &f.sha},
                                {"ref", &f.ref},
                                {"environment", &f.environment},
                                {"task", &f.task},
                                {"description", &f.description}});
    });
}

std::string read_repository(od::value& v, repo_fields& f) {
  return read_required_object(
    v, "repository", [&](std::string_view key, od::value& val) {
      return read_string_field("repository", key, val,
                               {{"full_name", &f.full_name},
                                {"clone_url", &f.clone_url},
                                {"name", &f.name},
                                {"html_url", &f.html_url},
                                {"default_branch", &f.default_branch}});
    });
}

/// The application name when the payload names none: `repository.name`,
/// else the part of the full name after the slash.
std::string app_name(const repo_fields& f) {
  if (f.name && !f.name->empty())
    return *f.name;
  const std::string& full = f.full_name.value_or("");
  auto slash = full.rfind('/');
  return slash == std::string::npos ? full : full.substr(slash + 1);
}

/// What heaven takes from a deployment's payload.
struct payload_fields {
  std::optional<std::string> name, provider, env_url, user_name, user, room;
};

/// Reads a string field (read_string) and checks it with check_text.
std::string read_checked(od::value& v, const std::string& path,
                         std::optional<std::string>& out, std::size_t max) {
  if (auto msg = read_string(v, path, out); !msg.empty())
    return msg;
  return out ? check_text(path, *out, max) : std::string{};
}

/// Reads `name`, `config.provider`, `config.<environment>_url` and
/// `notify.{user_name,user,room}` from the payload object's text (already
/// checked to be a well-formed object), and checks everything heaven reads
/// from a payload: those fields' lengths, and every key and string under
/// `config`, `aws` and `notify` for control characters (they reach
/// commands, URLs and log lines). The rest of the payload is kept as text
/// and never read.
std::string read_payload(const std::string& text,
                         const std::string& environment, payload_fields& p) {
  const std::string url_key = environment + "_url";
  const std::string config_path = "deployment.payload.config";
  auto read_config = [&](std::string_view key, od::value& val) -> std::string {
    auto path = config_path + "." + std::string{key};
    if (auto msg = check_text("a key of " + config_path, key,
                              std::string_view::npos);
        !msg.empty())
      return msg;
    if (key == "provider")
      return read_checked(val, path, p.provider, limits::name);
    if (key == url_key)
      return read_checked(val, path, p.env_url, limits::url);
    return check_tree(val, path);
  };
  auto read_notify = [&](std::string_view key, od::value& val) -> std::string {
    auto path = "deployment.payload.notify." + std::string{key};
    if (auto msg = check_text("a key of deployment.payload.notify", key,
                              std::string_view::npos);
        !msg.empty())
      return msg;
    std::optional<std::string>* out = key == "user_name" ? &p.user_name
                                      : key == "user"    ? &p.user
                                      : key == "room"    ? &p.room
                                                         : nullptr;
    if (out == nullptr)
      return check_tree(val, path);
    if (auto msg = read_text(val, path, *out); !msg.empty())
      return msg;
    return *out ? check_text(path, **out, limits::name) : std::string{};
  };
  return for_each_root_field(
    text, [&](std::string_view key, od::value& val) -> std::string {
      if (key == "name")
        return read_checked(val, "deployment.payload.name", p.name,
                            limits::name);
      if (key == "config")
        return read_object(val, config_path, read_config);
      if (key == "notify")
        return read_object(val, "deployment.payload.notify", read_notify);
      if (key == "aws") {
        std::string path = "deployment.payload.aws";
        return check_tree(val, path);
      }
      return {};
    });
}

/// Fields of a `status` event before defaults are applied.
struct status_fields {
  std::optional<std::string> sha, state, author, sender;
  std::vector<std::string> branches;
  repo_fields repo;
};

/// Reads `branches[].name`; a missing or null list is no branches. GitHub
/// sends at most limits::branches; each name is a ref (limits::ref bytes).
std::string read_branches(od::value& v, std::vector<std::string>& out) {
  return unless_null(v, [&](od::json_type type) -> std::string {
    od::array arr;
    if (type != od::json_type::array || v.get_array().get(arr))
      return wrong_type("branches", "an array");
    std::size_t count = 0;
    for (auto res : arr) {
      if (++count > limits::branches)
        return "branches has more than " + std::to_string(limits::branches)
               + " entries";
      od::value item;
      if (auto err = std::move(res).get(item))
        return malformed(err);
      auto path = "branches[" + std::to_string(count - 1) + "]";
      od::json_type item_type;
      if (auto err = item.type().get(item_type))
        return malformed(err);
      if (item_type != od::json_type::object)
        return wrong_type(path, "an object");
      std::optional<std::string> name;
      auto msg = read_object(item, path,
                             [&](std::string_view key, od::value& val) {
                               return key == "name"
                                        ? read_string(val, path + ".name", name)
                                        : std::string{};
                             });
      if (!msg.empty())
        return msg;
      if (name)
        if (auto msg = check_bytes(path + ".name", *name, limits::ref);
            !msg.empty())
          return msg;
      if (name && !name->empty())
        out.push_back(std::move(*name));
    }
    return {};
  });
}

/// Fields of a `deployment_status` event before defaults are applied.
struct notice_fields {
  /// `deployment_status.*`.
  std::optional<int64_t> status_id;
  std::optional<std::string> state, description, log_url, target_url,
    environment_url;
  /// `deployment`, `repository`, `sender`.
  raw_fields deployment;
};

std::string read_deployment_status(od::value& v, notice_fields& f) {
  return read_required_object(
    v, "deployment_status",
    [&](std::string_view key, od::value& val) -> std::string {
      if (key == "id")
        return unless_null(val, [&](od::json_type) {
          int64_t id = 0;
          if (val.get_int64().get(id))
            return wrong_type("deployment_status.id", "an integer");
          f.status_id = id;
          return std::string{};
        });
      return read_string_field("deployment_status", key, val,
                               {{"state", &f.state},
                                {"description", &f.description},
                                {"log_url", &f.log_url},
                                {"target_url", &f.target_url},
                                {"environment_url", &f.environment_url}});
    });
}

/// Limits on the `repository` fields an event uses.
std::string check_repository(const repo_fields& f) {
  return first_problem({
    [&] {
      return f.full_name ? check_full_name("repository.full_name", *f.full_name)
                         : std::string{};
    },
    [&] {
      return f.name && !f.name->empty()
               ? check_repository_name("repository.name", *f.name)
               : std::string{};
    },
    [&] { return text_ok(f.clone_url, "repository.clone_url", limits::url); },
    [&] { return text_ok(f.html_url, "repository.html_url", limits::url); },
    [&] {
      return f.default_branch ? check_bytes("repository.default_branch",
                                            *f.default_branch, limits::ref)
                              : std::string{};
    },
  });
}

/// Limits on the `deployment` fields (and `repository`, `sender`) of a
/// deployment or deployment_status event.
std::string check_deployment(const raw_fields& f) {
  return first_problem({
    [&] { return text_ok(f.sha, "deployment.sha", limits::sha); },
    [&] {
      return f.ref ? check_bytes("deployment.ref", *f.ref, limits::ref)
                   : std::string{};
    },
    [&] {
      return text_ok(f.environment, "deployment.environment",
                     limits::environment);
    },
    [&] { return text_ok(f.task, "deployment.task", limits::name); },
    [&] {
      return text_ok(f.description, "deployment.description",
                     limits::description);
    },
    [&] { return login_ok(f.creator, "deployment.creator.login"); },
    [&] { return login_ok(f.sender, "sender.login"); },
    [&] { return check_repository(f.repo); },
  });
}

/// Reads a deployment or deployment_status event: `deployment`,
/// `repository` and `sender` into `d`, any other top-level field through
/// `more(key, value)`.
template <class F>
std::string
read_deployment_event(std::string_view body, raw_fields& d, F more) {
  // Ondemand skips what it is not asked about, so check the whole text first:
  // the body is stored and re-read later, it must be sound throughout.
  if (auto msg = check_json_object(body); !msg.empty())
    return msg;
  return for_each_root_field(body, [&](std::string_view key, od::value& val) {
    if (key == "deployment")
      return read_deployment(val, d);
    if (key == "repository")
      return read_repository(val, d.repo);
    if (key == "sender")
      return read_login(val, "sender", d.sender);
    return more(key, val);
  });
}

} // namespace

std::variant<deployment_request, std::string>
parse_deployment(std::string_view body) {
  raw_fields f;
  auto msg = read_deployment_event(body, f, [](std::string_view, od::value&) {
    return std::string{};
  });
  if (!msg.empty())
    return msg;
  if (!f.id)
    return std::string{"missing field deployment.id"};
  msg = first_missing({
    {&f.sha, "deployment.sha"},
    {&f.ref, "deployment.ref"},
    {&f.environment, "deployment.environment"},
    {&f.repo.full_name, "repository.full_name"},
    {&f.repo.clone_url, "repository.clone_url"},
  });
  if (!msg.empty())
    return msg;
  if (auto msg = check_deployment(f); !msg.empty())
    return msg;
  deployment_request req;
  req.github_id = *f.id;
  req.sha = std::move(*f.sha);
  req.ref = std::move(*f.ref);
  req.environment = std::move(*f.environment);
  req.app = app_name(f.repo);
  req.repo = std::move(*f.repo.full_name);
  req.clone_url = std::move(*f.repo.clone_url);
  req.task = f.task && !f.task->empty() ? *f.task : "deploy";
  req.description = f.description.value_or("");
  req.actor = f.creator ? *f.creator : f.sender.value_or("");
  req.payload_json = f.payload ? std::move(*f.payload) : "{}";
  payload_fields p;
  if (auto msg = read_payload(req.payload_json, req.environment, p);
      !msg.empty())
    return msg;
  if (p.name && !p.name->empty())
    req.app = *p.name;
  req.provider = p.provider.value_or("");
  req.environment_url = p.env_url.value_or("");
  return req;
}

std::variant<commit_status_event, std::string>
parse_commit_status(std::string_view body) {
  if (auto msg = check_json_object(body); !msg.empty())
    return msg;
  status_fields f;
  auto msg = for_each_root_field(body, [&](std::string_view key,
                                           od::value& val) {
    if (key == "sha")
      return read_string(val, "sha", f.sha);
    if (key == "state")
      return read_string(val, "state", f.state);
    if (key == "branches")
      return read_branches(val, f.branches);
    if (key == "commit")
      return read_object(val, "commit",
                         [&](std::string_view key, od::value& val) {
                           return key == "author"
                                    ? read_login(val, "commit.author", f.author)
                                    : std::string{};
                         });
    if (key == "repository")
      return read_repository(val, f.repo);
    if (key == "sender")
      return read_login(val, "sender", f.sender);
    return std::string{};
  });
  if (!msg.empty())
    return msg;
  msg = first_missing({
    {&f.sha, "sha"},
    {&f.state, "state"},
    {&f.repo.full_name, "repository.full_name"},
    {&f.repo.default_branch, "repository.default_branch"},
  });
  if (!msg.empty())
    return msg;
  auto problem = first_problem({
    [&] { return text_ok(f.sha, "sha", limits::sha); },
    [&] { return text_ok(f.state, "state", limits::state); },
    [&] { return login_ok(f.author, "commit.author.login"); },
    [&] { return login_ok(f.sender, "sender.login"); },
    [&] { return check_repository(f.repo); },
  });
  if (!problem.empty())
    return problem;
  commit_status_event ev;
  ev.repo = std::move(*f.repo.full_name);
  ev.sha = std::move(*f.sha);
  ev.state = std::move(*f.state);
  ev.default_branch = std::move(*f.repo.default_branch);
  ev.branches = std::move(f.branches);
  ev.author = first_of({&f.author, &f.sender});
  return ev;
}

std::variant<deployment_notice, std::string>
parse_deployment_status(std::string_view body) {
  notice_fields f;
  auto& d = f.deployment;
  auto msg = read_deployment_event(body, d,
                                   [&](std::string_view key, od::value& val) {
                                     return key == "deployment_status"
                                              ? read_deployment_status(val, f)
                                              : std::string{};
                                   });
  if (!msg.empty())
    return msg;
  if (!f.state || f.state->empty())
    return std::string{"missing field deployment_status.state"};
  if (!d.id)
    return std::string{"missing field deployment.id"};
  msg = first_missing({
    {&d.sha, "deployment.sha"},
    {&d.ref, "deployment.ref"},
    {&d.environment, "deployment.environment"},
    {&d.repo.full_name, "repository.full_name"},
  });
  if (!msg.empty())
    return msg;
  auto problem = first_problem({
    [&] { return text_ok(f.state, "deployment_status.state", limits::state); },
    [&] {
      return text_ok(f.description, "deployment_status.description",
                     limits::status_description);
    },
    [&] {
      return text_ok(f.log_url, "deployment_status.log_url", limits::url);
    },
    [&] {
      return text_ok(f.target_url, "deployment_status.target_url", limits::url);
    },
    [&] {
      return text_ok(f.environment_url, "deployment_status.environment_url",
                     limits::url);
    },
    [&] { return check_deployment(d); },
  });
  if (!problem.empty())
    return problem;
  payload_fields p;
  if (d.payload)
    if (auto msg = read_payload(*d.payload, *d.environment, p); !msg.empty())
      return msg;
  deployment_notice n;
  n.app = first_of({&p.name}, app_name(d.repo));
  n.repo = std::move(*d.repo.full_name);
  n.repo_url = d.repo.html_url.value_or("");
  n.deployment_id = *d.id;
  n.status_id = f.status_id.value_or(0);
  n.state = std::move(*f.state);
  n.description = f.description.value_or("");
  n.log_url = first_of({&f.log_url, &f.target_url});
  n.environment_url = f.environment_url.value_or("");
  n.environment = std::move(*d.environment);
  n.task = first_of({&d.task}, "deploy");
  n.ref = std::move(*d.ref);
  n.sha = std::move(*d.sha);
  n.deployment_description = d.description.value_or("");
  n.creator = first_of({&d.creator, &d.sender});
  n.chat_user = first_of({&p.user_name, &p.user}, n.creator);
  if (n.chat_user.empty())
    n.chat_user = "unknown";
  n.room = p.room.value_or("");
  return n;
}

std::string repository_full_name(std::string_view body) {
  // Ondemand reads only up to the repository: a body broken after it would
  // still name one.
  if (!check_json_object(body).empty())
    return {};
  // Lenient by design: a ping names a repository or it doesn't.
  std::optional<std::string> name;
  auto msg = for_each_root_field(body, [&](std::string_view key,
                                           od::value& val) {
    if (key != "repository")
      return std::string{};
    return read_object(
      val, "repository", [&](std::string_view key, od::value& val) {
        return key == "full_name"
                 ? read_string(val, "repository.full_name", name)
                 : std::string{};
      });
  });
  return msg.empty() ? name.value_or("") : std::string{};
}

int64_t installation_id(std::string_view body) {
  if (!check_json_object(body).empty())
    return 0;
  int64_t id = 0;
  auto msg = for_each_root_field(body, [&](std::string_view key,
                                           od::value& val) {
    if (key != "installation")
      return std::string{};
    return read_object(val, "installation",
                       [&](std::string_view key, od::value& val) {
                         if (key == "id" && val.get_int64().get(id))
                           id = 0;
                         return std::string{};
                       });
  });
  return msg.empty() ? id : 0;
}

} // namespace heaven
