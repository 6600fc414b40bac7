#include "base/webhook_json.hpp"

#include "base/validate.hpp"
#include "base/webhook.hpp"

namespace heaven {

namespace webhook_json {

/// `body` and simdjson's padding in `text`, whose allocation is reused.
void pad_into(std::string& text, std::string_view body) {
  // Spaces, so that the padding simdjson may read is initialized.
  text.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  text.assign(body);
  text.append(simdjson::SIMDJSON_PADDING, ' ');
}

/// After a parse: a thread keeps a copy and a parser sized for a body of
/// at most 64 KiB (the DOM parser takes ~14 bytes per byte of body).
template <class Parser>
void give_back_large(Parser& parser, std::string& text) {
  constexpr std::size_t kept_bytes = 64 * 1024;
  if (text.capacity() > kept_bytes)
    std::string{}.swap(text);
  if (parser.capacity() > kept_bytes)
    parser = Parser{};
}

struct padded_input::storage {
  od::parser parser;
  std::string text;
  bool busy = false;
};

padded_input::padded_input(std::string_view body) : size_(body.size()) {
  thread_local storage kept;
  if (kept.busy) {
    nested_ = std::make_unique<storage>();
    storage_ = nested_.get();
  } else {
    storage_ = &kept;
  }
  storage_->busy = true;
  pad_into(storage_->text, body);
}

padded_input::~padded_input() {
  storage_->busy = false;
  if (!nested_)
    give_back_large(storage_->parser, storage_->text);
}

simdjson::simdjson_result<od::document> padded_input::iterate() {
  return storage_->parser.iterate(storage_->text.data(), size_,
                                  storage_->text.size());
}

std::string malformed(simdjson::error_code err) {
  return std::string{"malformed JSON: "} + simdjson::error_message(err);
}

std::string wrong_type(std::string_view path, std::string_view expected) {
  return "field " + std::string{path} + " must be " + std::string{expected};
}

namespace {

/// read_string, with the field's path made only for a message.
template <class Path>
std::string
read_string_at(od::value& v, Path path, std::optional<std::string>& out) {
  return unless_null(v, [&](od::json_type type) {
    std::string_view text;
    if (type != od::json_type::string || v.get_string().get(text))
      return wrong_type(path(), "a string");
    out = std::string{text};
    return std::string{};
  });
}

/// "<path>.<key>".
std::string join_path(std::string_view path, std::string_view key) {
  std::string joined;
  joined.reserve(path.size() + 1 + key.size());
  joined.append(path).append(1, '.').append(key);
  return joined;
}

} // namespace

std::string read_string(od::value& v, std::string_view path,
                        std::optional<std::string>& out) {
  return read_string_at(
    v, [path] { return path; }, out);
}

std::string read_string_field(std::string_view path, std::string_view key,
                              od::value& v, string_places places) {
  for (auto& [name, place] : places)
    if (name == key)
      return read_string_at(
        v, [&] { return join_path(path, key); }, *place);
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
    return key == "login" ? read_string_at(
             val, [&] { return join_path(path, key); }, out)
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
  // The DOM parser validates the whole document, unlike ondemand. Its
  // parser and padded copy are kept per thread, like padded_input's (this
  // never nests in itself; it may run inside an ondemand parse).
  struct kept {
    simdjson::dom::parser parser;
    std::string text;
  };
  thread_local kept k;
  webhook_json::pad_into(k.text, body);
  simdjson::dom::element root;
  auto err = k.parser.parse(k.text.data(), body.size(), false).get(root);
  bool object = !err && root.is_object();
  webhook_json::give_back_large(k.parser, k.text);
  if (err)
    return webhook_json::malformed(err);
  if (!object)
    return "not a JSON object";
  return {};
}

} // namespace heaven
