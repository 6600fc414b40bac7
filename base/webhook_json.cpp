#include "base/webhook_json.hpp"

#include "base/validate.hpp"
#include "base/webhook.hpp"

namespace heaven {

namespace webhook_json {

std::string malformed(simdjson::error_code err) {
  return std::string{"malformed JSON: "} + simdjson::error_message(err);
}

std::string wrong_type(std::string_view path, std::string_view expected) {
  return "field " + std::string{path} + " must be " + std::string{expected};
}

std::string read_string(od::value& v, std::string_view path,
                        std::optional<std::string>& out) {
  return unless_null(v, [&](od::json_type type) {
    std::string_view text;
    if (type != od::json_type::string || v.get_string().get(text))
      return wrong_type(path, "a string");
    out = std::string{text};
    return std::string{};
  });
}

std::string read_string_field(std::string_view path, std::string_view key,
                              od::value& v, string_places places) {
  for (auto& [name, place] : places)
    if (name == key)
      return read_string(v, std::string{path} + "." + std::string{key}, *place);
  return {};
}

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
    return key == "login" ? read_string(val, std::string{path} + ".login", out)
                          : std::string{};
  });
}

std::string read_text(od::value& v, std::string_view path,
                      std::optional<std::string>& out) {
  od::json_type type;
  if (auto err = v.type().get(type))
    return malformed(err);
  if (type == od::json_type::number) {
    int64_t n = 0;
    if (v.get_int64().get(n))
      return wrong_type(path, "a string or an integer");
    out = std::to_string(n);
    return {};
  }
  if (type != od::json_type::null && type != od::json_type::string)
    return wrong_type(path, "a string or an integer");
  return read_string(v, path, out);
}

std::string
first_of(std::initializer_list<const std::optional<std::string>*> values,
         std::string fallback) {
  for (auto* value : values)
    if (*value && !(*value)->empty())
      return **value;
  return fallback;
}

std::string check_tree(od::value& v, std::string& path) {
  constexpr auto any_length = std::string_view::npos;
  od::json_type type;
  if (auto err = v.type().get(type))
    return malformed(err);
  if (type == od::json_type::string) {
    std::string_view text;
    if (auto err = v.get_string().get(text))
      return malformed(err);
    return check_text(path, text, any_length);
  }
  if (type == od::json_type::object) {
    od::object obj;
    if (auto err = v.get_object().get(obj))
      return malformed(err);
    return for_each_field(
      obj, [&](std::string_view key, od::value& val) -> std::string {
        if (auto msg = check_text("a key of " + path, key, any_length);
            !msg.empty())
          return msg;
        auto size = path.size();
        path += '.';
        path += key;
        auto msg = check_tree(val, path);
        path.resize(size);
        return msg;
      });
  }
  if (type == od::json_type::array) {
    od::array arr;
    if (auto err = v.get_array().get(arr))
      return malformed(err);
    std::size_t index = 0;
    for (auto res : arr) {
      od::value item;
      if (auto err = std::move(res).get(item))
        return malformed(err);
      auto size = path.size();
      path += '[' + std::to_string(index++) + ']';
      auto msg = check_tree(item, path);
      path.resize(size);
      if (!msg.empty())
        return msg;
    }
  }
  return {};
}

std::string
first_problem(std::initializer_list<std::function<std::string()>> checks) {
  for (auto& check : checks)
    if (auto msg = check(); !msg.empty())
      return msg;
  return {};
}

std::string text_ok(const std::optional<std::string>& value,
                    std::string_view path, std::size_t max) {
  return value ? check_text(path, *value, max) : std::string{};
}

std::string first_missing(std::initializer_list<required_field> fields) {
  for (auto& [value, path] : fields)
    if (!*value || (*value)->empty())
      return "missing field " + std::string{path};
  return {};
}

std::string login_ok(const std::optional<std::string>& value,
                     std::string_view path) {
  return value ? check_login(path, *value) : std::string{};
}

} // namespace webhook_json

std::string check_json_object(std::string_view body) {
  // The DOM parser validates the whole document, unlike ondemand.
  simdjson::dom::parser parser;
  simdjson::padded_string json{body};
  simdjson::dom::element root;
  if (auto err = parser.parse(json).get(root))
    return webhook_json::malformed(err);
  if (!root.is_object())
    return "not a JSON object";
  return {};
}

} // namespace heaven
