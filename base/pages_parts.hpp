/// What the page renderers share (base/pages*.cpp only): times, the page
/// frame, forms' CSRF field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/pages.hpp"

namespace heaven::pages::detail {

/// Milliseconds since the epoch of an ISO-8601 UTC time
/// ("2026-11-27T12:00:00Z", with optional fraction, 'T' or ' ', 'Z' or
/// "+00:00" or nothing); none when `iso` is not one.
std::optional<int64_t> iso_ms(std::string_view iso);

/// `ms` as ISO-8601 UTC ("2026-11-27T12:00:00Z", ".123" when it has
/// milliseconds).
std::string iso_of_ms(int64_t ms);

/// `<time datetime="ISO">YYYY-MM-DD HH:MM:SS UTC</time>`; "–" for "" and
/// the escaped text for something that is not a time.
std::string time_html(std::string_view iso);
std::string time_html_ms(int64_t ms);

/// "HH:MM:SS" (UTC) of `ms`; "" for 0.
std::string clock_of_ms(int64_t ms);

/// The whole page around `body` (which goes into <main>).
std::string frame(std::string_view title, const viewer& who, const notice& said,
                  std::string_view body);

/// `<input type="hidden" name="csrf" value="...">`.
std::string csrf_field(const viewer& who);

} // namespace heaven::pages::detail
