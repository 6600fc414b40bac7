/// A webhook delivery's envelope, checked before its JSON is read: the
/// signature GitHub puts on it and the form encoding it may come in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/text.hpp" // hmac_sha256_hex, which signs a delivery

namespace heaven {

/// True when `header` is "sha256=<hex>" and the hex equals
/// HMAC-SHA256(secret, body), compared in constant time.
bool signature_valid(std::string_view secret, std::string_view body,
                     std::string_view header);

/// The JSON inside a form-encoded delivery (a webhook set to content type
/// `application/x-www-form-urlencoded` sends `payload=<url-encoded JSON>`),
/// or nullopt when `body` has no `payload` field or a bad %-escape.
std::optional<std::string> form_payload(std::string_view body);

} // namespace heaven
