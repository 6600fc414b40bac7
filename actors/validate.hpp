/// Checks on user input that decide whether anything runs at all.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace heaven {

/// True when `ref` is a valid git ref name (git-check-ref-format rules, plus
/// printable ASCII only).
bool valid_ref(std::string_view ref);

/// True when `task` is `deploy` or `deploy:<word>[:<word>...]`, where a word
/// is `[A-Za-z0-9_-]+`.
bool valid_task(std::string_view task);

/// True when `path` has the shape of a script path inside a repository:
/// `[\w-]+(/[\w-]+)*(\.\w+)?`.
bool valid_script_path(std::string_view path);

/// True for a full 40-character lower- or upper-case hex sha.
bool valid_sha(std::string_view sha);

/// Shortens `text` to at most `max` bytes without splitting a UTF-8
/// character, ending with "..." when it had to cut.
std::string truncate_description(std::string_view text, std::size_t max = 140);

/// True for a clone URL git may be given: https://, http://, ssh://, git://
/// or file:// with something after the scheme, or scp-like
/// `user@host:path`; never one starting with '-' (git would read an option)
/// or holding control characters or spaces.
bool valid_clone_url(std::string_view url);

/// The host of a URL such as "https://user@github.example.com:443/x" (no
/// userinfo, no port), or "" when it has none.
std::string url_host(std::string_view url);

/// `url` without a "user:password@" part, for logs and messages.
std::string url_without_credentials(std::string_view url);

/// Lower-case hex of `size` bytes at `data` (digests, signatures).
std::string to_hex(const unsigned char* data, std::size_t size);

/// `text` as one word for a POSIX shell: in single quotes, each ' written as
/// '\''. Whatever `text` holds (`x; rm -rf /`, $(...), newlines), the shell
/// sees it as data.
std::string shell_quote(std::string_view text);

} // namespace heaven
