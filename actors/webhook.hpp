/// Verifying and parsing GitHub webhook deliveries (simdjson stays inside
/// webhook.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "messages/types.hpp"

namespace heaven {

/// Lower-case hex of HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// True when `header` is "sha256=<hex>" and the hex equals
/// HMAC-SHA256(secret, body), compared in constant time.
bool signature_valid(std::string_view secret, std::string_view body,
                     std::string_view header);

/// Parses a `deployment` event. On success returns the request; otherwise
/// a message naming what is wrong ("malformed JSON: ...",
/// "missing field deployment.sha", ...). `deployment.payload` may be an object
/// or a JSON string holding an object.
std::variant<deployment_request, std::string>
parse_deployment(std::string_view body);

/// The JSON inside a form-encoded delivery (a webhook set to content type
/// `application/x-www-form-urlencoded` sends `payload=<url-encoded JSON>`),
/// or nullopt when `body` has no `payload` field or a bad %-escape.
std::optional<std::string> form_payload(std::string_view body);

/// Checks that `body` is one well-formed JSON object; returns "" when it is,
/// else what is wrong.
std::string check_json_object(std::string_view body);

} // namespace heaven
