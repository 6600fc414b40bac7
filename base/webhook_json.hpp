/// What the webhook parsers share: reading simdjson's ondemand values into
/// heaven's fields, with messages that name the field. Private to
/// base/webhook.cpp and base/webhook_json.cpp, the only files that see
/// simdjson.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <simdjson.h>

namespace heaven::webhook_json {

namespace od = simdjson::ondemand;

/// The message for a parser error.
std::string malformed(simdjson::error_code err);

/// What went wrong with one field, named by its path.
std::string wrong_type(std::string_view path, std::string_view expected);

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
                        std::optional<std::string>& out);

/// Reads `login` from a user object such as `deployment.creator`; anything
/// but an object (null, say) leaves `out` untouched.
std::string read_login(od::value& v, std::string_view path,
                       std::optional<std::string>& out);

/// Reads a value that is a string or an integer (then as its decimal text)
/// into `out`; null counts as absent. Chat adapters name users and rooms
/// either way.
std::string read_text(od::value& v, std::string_view path,
                      std::optional<std::string>& out);

/// Calls `f(type)` with the JSON type of `v` unless `v` is null, which
/// counts as absent (""); the parser's error, or what `f` says.
template <class F>
std::string unless_null(od::value& v, F f) {
  od::json_type type;
  if (auto err = v.type().get(type))
    return malformed(err);
  return type == od::json_type::null ? std::string{} : f(type);
}

/// Reads an optional object: calls `f(key, value)` for each of its fields;
/// null counts as absent, anything else but an object is an error.
template <class F>
std::string read_object(od::value& v, std::string_view path, F f) {
  return unless_null(v, [&](od::json_type type) {
    od::object obj;
    if (type != od::json_type::object || v.get_object().get(obj))
      return wrong_type(path, "an object");
    return for_each_field(obj, f);
  });
}

/// Reads a required object: calls `f(key, value)` for each of its fields;
/// anything but an object (null too) is an error.
template <class F>
std::string read_required_object(od::value& v, std::string_view path, F f) {
  od::object obj;
  if (v.get_object().get(obj))
    return wrong_type(path, "an object");
  return for_each_field(obj, f);
}

/// Where the string fields of an object go: (key, place) pairs.
using string_places = std::initializer_list<
  std::pair<std::string_view, std::optional<std::string>*>>;

/// Reads field `key` of object `path` into its place in `places` (see
/// read_string); a key `places` does not name is skipped.
std::string read_string_field(std::string_view path, std::string_view key,
                              od::value& v, string_places places);

/// The first of `values` that is present and not empty, else `fallback`.
std::string
first_of(std::initializer_list<const std::optional<std::string>*> values,
         std::string fallback = {});

/// `body` copied, with simdjson's padding, into storage this thread keeps,
/// and the ondemand parser that reads it: once warm, a parse allocates
/// nothing. A parse nested in another on the same thread gets storage of its
/// own. After a body over 64 KiB, the copy and the parser sized for it
/// (~5 bytes per byte of body) are given back.
class padded_input {
public:
  explicit padded_input(std::string_view body);
  ~padded_input();
  padded_input(const padded_input&) = delete;
  padded_input& operator=(const padded_input&) = delete;

  /// Starts reading the body; the document must not outlive this.
  simdjson::simdjson_result<od::document> iterate();

private:
  struct storage;
  std::unique_ptr<storage> nested_;
  storage* storage_;
  std::size_t size_;
};

/// Opens `body` (already checked to be one well-formed JSON object) and
/// calls `f(key, value)` for each top-level field.
template <class F>
std::string for_each_root_field(std::string_view body, F f) {
  padded_input input{body};
  od::document doc;
  if (auto err = input.iterate().get(doc))
    return malformed(err);
  od::object root;
  if (auto err = doc.get_object().get(root))
    return malformed(err);
  return for_each_field(root, f);
}

/// Checks every key and string under `v` (field `path`) for control
/// characters and broken UTF-8; numbers, booleans and nulls pass. `path`
/// grows while descending and is restored on the way back, so a message
/// names the exact place ("deployment.payload.config.hosts.production[1]
/// contains a control character").
std::string check_tree(od::value& v, std::string& path);

/// The first message of `checks` that is not empty, or "". Each check runs
/// only when the ones before it passed.
std::string
first_problem(std::initializer_list<std::function<std::string()>> checks);

/// check_text of `value` when it is present.
std::string text_ok(const std::optional<std::string>& value,
                    std::string_view path, std::size_t max);

/// A required text field and its path.
using required_field
  = std::pair<const std::optional<std::string>*, const char*>;

/// "missing field <path>" for the first of `fields` that is absent or
/// empty, else "".
std::string first_missing(std::initializer_list<required_field> fields);

/// check_login of `value` when it is present.
std::string login_ok(const std::optional<std::string>& value,
                     std::string_view path);

} // namespace heaven::webhook_json
