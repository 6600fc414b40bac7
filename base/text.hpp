/// Text and encodings, written once: hex, base64, SHA-256 and HMAC-SHA256
/// (OpenSSL), a constant-time compare, shell quoting, and the URL helpers
/// every HTTP caller shares.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace heaven {

// -- bytes as text -----------------------------------------------------------

/// Lower-case hex of `size` bytes at `data` (digests, signatures).
std::string to_hex(const unsigned char* data, std::size_t size);

/// Lower-case hex of the bytes of `bytes`.
std::string to_hex(std::string_view bytes);

/// The value of hex digit `c` (either case), or -1 when it is none.
int hex_value(char c);

/// Standard base64 of `bytes`, with '=' padding.
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64, skipping whitespace and '='; "" on invalid
/// input.
std::string base64_decode(std::string_view text);

// -- digests -----------------------------------------------------------------

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// Raw HMAC-SHA256 of `data` under `key` (32 bytes); the digest buffer is
/// wiped before it is freed (it may be key material).
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Lower-case hex HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// Whether `a` and `b` are equal, in time that depends on their length only
/// (tokens, signatures).
bool equal_constant_time(std::string_view a, std::string_view b);

// -- words for others --------------------------------------------------------

/// `s` with every character that `table` names replaced by its text (the
/// escapes of HTML, of chat markup, ...).
std::string
replace_chars(std::string_view s,
              std::initializer_list<std::pair<char, std::string_view>> table);

/// `text` as one word for a POSIX shell: in single quotes, each ' written as
/// '\''. Whatever `text` holds (`x; rm -rf /`, $(...), newlines), the shell
/// sees it as data.
std::string shell_quote(std::string_view text);

/// The first `length` characters of `sha`: 7 as GitHub and status
/// descriptions show it, 8 in chat messages and logs.
std::string short_sha(std::string_view sha, std::size_t length = 7);

// -- URLs --------------------------------------------------------------------

/// `base` and `path` joined with exactly one slash.
std::string join_url(std::string base, std::string_view path);

/// RFC 3986 percent-encoding (as SigV4 wants it, and fine for any path
/// segment or query value): unreserved characters (A-Z a-z 0-9 - _ . ~)
/// stay, every other byte becomes %XX (upper case); '/' stays too when
/// `keep_slash`.
std::string percent_encode(std::string_view s, bool keep_slash = false);

/// Decodes every valid %XX; anything else (a lone '%', '+') stays as is.
std::string percent_decode(std::string_view s);

} // namespace heaven
