#include "actors/webhook.hpp"

#include <array>
#include <optional>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include "actors/validate.hpp"

namespace heaven {

namespace {

namespace od = simdjson::ondemand;

constexpr std::string_view sig_prefix = "sha256=";

std::string malformed(simdjson::error_code err) {
  return std::string{"malformed JSON: "} + simdjson::error_message(err);
}

/// What went wrong with one field, named by its path.
std::string wrong_type(std::string_view path, std::string_view expected) {
  return "field " + std::string{path} + " must be " + std::string{expected};
}

/// Calls `f(key, value)` for each field of `obj` in document order (ondemand
/// reads forward only); stops at the first error `f` or the parser reports.
template <class F>
std::string for_each_field(od::object& obj, F f) {
  for (auto res : obj) {
    od::field field;
    if (auto err = std::move(res).get(field))
      return malformed(err);
    std::string_view key;
    if (auto err = field.unescaped_key().get(key))
      return malformed(err);
    od::value val = field.value();
    if (auto msg = f(key, val); !msg.empty())
      return msg;
  }
  return {};
}

/// Reads a string value into `out`; null counts as absent. Returns an error
/// message, or "" on success.
std::string read_string(od::value& v, std::string_view path,
                        std::optional<std::string>& out) {
  od::json_type type;
  if (auto err = v.type().get(type))
    return malformed(err);
  if (type == od::json_type::null)
    return {};
  std::string_view text;
  if (type != od::json_type::string || v.get_string().get(text))
    return wrong_type(path, "a string");
  out = std::string{text};
  return {};
}

/// Reads `login` from a user object such as `deployment.creator`; anything
/// but an object (null, say) leaves `out` untouched.
std::string read_login(od::value& v, std::string_view path,
                       std::optional<std::string>& out) {
  od::json_type type;
  if (auto err = v.type().get(type))
    return malformed(err);
  if (type != od::json_type::object)
    return {};
  od::object obj;
  if (auto err = v.get_object().get(obj))
    return malformed(err);
  return for_each_field(obj, [&](std::string_view key, od::value& val) {
    return key == "login"
             ? read_string(val, std::string{path} + ".login", out)
             : std::string{};
  });
}

/// Fields of a deployment event before defaults are applied.
struct raw_fields {
  std::optional<int64_t> id;
  std::optional<std::string> sha, ref, environment, task, description,
    creator, sender, payload, full_name, clone_url, repo_name;
};

std::string read_deployment(od::value& v, raw_fields& f) {
  od::object obj;
  if (v.get_object().get(obj))
    return wrong_type("deployment", "an object");
  return for_each_field(obj, [&](std::string_view key,
                                 od::value& val) -> std::string {
    std::string msg;
    if (key == "id") {
      int64_t id = 0;
      if (val.get_int64().get(id))
        return wrong_type("deployment.id", "an integer");
      f.id = id;
    } else if (key == "sha") {
      msg = read_string(val, "deployment.sha", f.sha);
    } else if (key == "ref") {
      msg = read_string(val, "deployment.ref", f.ref);
    } else if (key == "environment") {
      msg = read_string(val, "deployment.environment", f.environment);
    } else if (key == "task") {
      msg = read_string(val, "deployment.task", f.task);
    } else if (key == "description") {
      msg = read_string(val, "deployment.description", f.description);
    } else if (key == "creator") {
      msg = read_login(val, "deployment.creator", f.creator);
    } else if (key == "payload") {
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
        f.payload = std::string{text};
      } else if (type == od::json_type::string) {
        // Some clients send the payload JSON-encoded a second time.
        msg = read_string(val, "deployment.payload", f.payload);
        if (f.payload && f.payload->find_first_not_of(" \t\r\n")
                           == std::string::npos)
          f.payload.reset();
        else if (f.payload)
          if (auto inner = check_json_object(*f.payload); !inner.empty())
            return "field deployment.payload holds no JSON object ("
                   + inner + ")";
      } else if (type != od::json_type::null) {
        return wrong_type("deployment.payload", "an object or a string");
      }
    }
    return msg;
  });
}

std::string read_repository(od::value& v, raw_fields& f) {
  od::object obj;
  if (v.get_object().get(obj))
    return wrong_type("repository", "an object");
  return for_each_field(obj, [&](std::string_view key, od::value& val) {
    if (key == "full_name")
      return read_string(val, "repository.full_name", f.full_name);
    if (key == "clone_url")
      return read_string(val, "repository.clone_url", f.clone_url);
    if (key == "name")
      return read_string(val, "repository.name", f.repo_name);
    return std::string{};
  });
}

/// Reads `name`, `config.provider` and `config.<environment>_url` from the
/// payload object's text (already checked to be a well-formed object).
std::string read_payload(const std::string& text, deployment_request& req) {
  od::parser parser;
  simdjson::padded_string json{text};
  od::document doc;
  if (auto err = parser.iterate(json).get(doc))
    return malformed(err);
  od::object obj;
  if (auto err = doc.get_object().get(obj))
    return malformed(err);
  std::optional<std::string> name, provider, env_url;
  const std::string url_key = req.environment + "_url";
  auto read_config = [&](std::string_view key, od::value& val) {
    if (key == "provider")
      return read_string(val, "deployment.payload.config.provider", provider);
    if (key == url_key)
      return read_string(val, "deployment.payload.config." + url_key, env_url);
    return std::string{};
  };
  auto msg = for_each_field(obj, [&](std::string_view key,
                                     od::value& val) -> std::string {
    if (key == "name")
      return read_string(val, "deployment.payload.name", name);
    if (key != "config")
      return {};
    od::json_type type;
    if (auto err = val.type().get(type))
      return malformed(err);
    if (type == od::json_type::null)
      return {};
    od::object config;
    if (val.get_object().get(config))
      return wrong_type("deployment.payload.config", "an object");
    return for_each_field(config, read_config);
  });
  if (!msg.empty())
    return msg;
  if (name && !name->empty())
    req.app = *name;
  req.provider = provider.value_or("");
  req.environment_url = env_url.value_or("");
  return {};
}

} // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       md.data(), &len);
  return to_hex(md.data(), len);
}

bool signature_valid(std::string_view secret, std::string_view body,
                     std::string_view header) {
  // An empty secret would make every forger's job trivial: never accept it.
  if (secret.empty() || header.size() != sig_prefix.size() + 64
      || header.substr(0, sig_prefix.size()) != sig_prefix)
    return false;
  std::string given{header.substr(sig_prefix.size())};
  for (auto& c : given) {
    if (c >= 'A' && c <= 'F')
      c = static_cast<char>(c - 'A' + 'a');
    else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  auto expected = hmac_sha256_hex(secret, body);
  return CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::variant<deployment_request, std::string>
parse_deployment(std::string_view body) {
  // Ondemand skips what it is not asked about, so check the whole text first:
  // the body is stored and re-read later, it must be sound throughout.
  if (auto msg = check_json_object(body); !msg.empty())
    return msg;
  od::parser parser;
  simdjson::padded_string json{body};
  od::document doc;
  if (auto err = parser.iterate(json).get(doc))
    return malformed(err);
  od::object root;
  if (auto err = doc.get_object().get(root))
    return malformed(err);
  raw_fields f;
  auto msg = for_each_field(root, [&](std::string_view key, od::value& val) {
    if (key == "deployment")
      return read_deployment(val, f);
    if (key == "repository")
      return read_repository(val, f);
    if (key == "sender")
      return read_login(val, "sender", f.sender);
    return std::string{};
  });
  if (!msg.empty())
    return msg;
  if (!f.id)
    return std::string{"missing field deployment.id"};
  const std::pair<std::optional<std::string>*, const char*> required[] = {
    {&f.sha, "deployment.sha"},
    {&f.ref, "deployment.ref"},
    {&f.environment, "deployment.environment"},
    {&f.full_name, "repository.full_name"},
    {&f.clone_url, "repository.clone_url"},
  };
  for (auto& [value, path] : required)
    if (!*value || (*value)->empty())
      return "missing field " + std::string{path};
  deployment_request req;
  req.github_id = *f.id;
  req.sha = std::move(*f.sha);
  req.ref = std::move(*f.ref);
  req.environment = std::move(*f.environment);
  req.repo = std::move(*f.full_name);
  req.clone_url = std::move(*f.clone_url);
  req.task = f.task && !f.task->empty() ? *f.task : "deploy";
  req.description = f.description.value_or("");
  req.actor = f.creator ? *f.creator : f.sender.value_or("");
  if (f.repo_name && !f.repo_name->empty()) {
    req.app = *f.repo_name;
  } else {
    auto slash = req.repo.rfind('/');
    req.app = slash == std::string::npos ? req.repo
                                         : req.repo.substr(slash + 1);
  }
  req.payload_json = f.payload ? std::move(*f.payload) : "{}";
  if (auto msg = read_payload(req.payload_json, req); !msg.empty())
    return msg;
  return req;
}

std::optional<std::string> form_payload(std::string_view body) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  while (!body.empty()) {
    auto amp = body.find('&');
    auto pair = body.substr(0, amp);
    body = amp == body.npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.substr(0, 8) != "payload=")
      continue;
    std::string out;
    auto value = pair.substr(8);
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '+') {
        out += ' ';
      } else if (value[i] == '%') {
        if (i + 2 >= value.size())
          return std::nullopt;
        int hi = hex(value[i + 1]), lo = hex(value[i + 2]);
        if (hi < 0 || lo < 0)
          return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
      } else {
        out += value[i];
      }
    }
    return out;
  }
  return std::nullopt;
}

std::string check_json_object(std::string_view body) {
  // The DOM parser validates the whole document, unlike ondemand.
  simdjson::dom::parser parser;
  simdjson::padded_string json{body};
  simdjson::dom::element root;
  if (auto err = parser.parse(json).get(root))
    return malformed(err);
  if (!root.is_object())
    return "not a JSON object";
  return {};
}

} // namespace heaven
