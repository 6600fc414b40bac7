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

/// The bounds heaven puts on the names and texts an event carries (see
/// README, "What heaven does"). Lengths count characters (UTF-8 code
/// points) unless they say bytes.
namespace limits {
/// A GitHub login (user, organization, owner of a repository): GitHub's
/// username limit.
inline constexpr std::size_t login = 39;
/// The name part of `owner/name`: GitHub's repository name limit.
inline constexpr std::size_t repository = 100;
/// `deployment.environment`: GitHub's environment name limit.
inline constexpr std::size_t environment = 255;
/// A git ref, in bytes: git keeps a ref as a file (plus ".lock" while it
/// changes) and a file name has at most 255 bytes; GitHub refuses branch
/// names past about 250 bytes.
inline constexpr std::size_t ref = 255;
/// A name GitHub puts no documented bound on (task, `payload.name`,
/// `payload.config.provider`, a chat room or user): as long as an
/// environment name may be.
inline constexpr std::size_t name = 255;
/// An object name: 40 hex digits for SHA-1, 64 for SHA-256 repositories
/// (which heaven does not deploy; the deployment rule says so).
inline constexpr std::size_t sha = 64;
/// A commit or deployment status `state` (GitHub's longest is 11).
inline constexpr std::size_t state = 32;
/// `deployment.description`: GitHub states no bound; a sentence or two.
inline constexpr std::size_t description = 1024;
/// `deployment_status.description`: GitHub's limit on a status description.
inline constexpr std::size_t status_description = 140;
/// Any URL an event carries (clone, html, log, target, environment URLs):
/// GitHub states no bound; 2048 is what browsers and proxies reliably take.
inline constexpr std::size_t url = 2048;
/// Entries of a `status` event's `branches`: GitHub sends at most 10.
inline constexpr std::size_t branches = 10;
} // namespace limits

/// What is wrong with text field `path`: "" when `value` is well-formed
/// UTF-8 of at most `max` characters without a control character (C0,
/// DEL or C1: a NUL, a newline, an escape...), else "<path> contains a
/// control character", "<path> is not valid UTF-8" or "<path> is longer
/// than <max> characters". A control character anywhere counts, after
/// JSON unescaping: `"prod\u0000x"` is refused, never cut at the NUL.
std::string check_text(std::string_view path, std::string_view value,
                       std::size_t max);

/// As check_text, with the limit in bytes ("longer than 255 bytes").
std::string check_bytes(std::string_view path, std::string_view value,
                        std::size_t max);

/// What is wrong with GitHub login `value` in field `path`, or "": at most
/// limits::login of letters, digits, '-' and '_' (Enterprise Managed
/// Users' `_shortcode`), optionally followed by "[bot]" (a GitHub App).
std::string check_login(std::string_view path, std::string_view value);

/// What is wrong with repository full name `value` in field `path`, or "":
/// `owner/name`, the owner 1 to limits::login letters, digits, '-' or '_',
/// the name 1 to limits::repository letters, digits, '.', '-' or '_' and
/// neither "." nor "..".
std::string check_full_name(std::string_view path, std::string_view value);

/// What is wrong with repository name `value` (the part after the slash)
/// in field `path`, or "", by the rules of check_full_name.
std::string check_repository_name(std::string_view path,
                                  std::string_view value);

} // namespace heaven
