#include "base/validate.hpp"

#include <algorithm>

namespace heaven {

namespace {

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '_';
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size()
         && s.substr(s.size() - suffix.size()) == suffix;
}

} // namespace

bool valid_ref(std::string_view ref) {
  if (ref.empty() || ref == "@")
    return false;
  if (ref.front() == '/' || ref.back() == '/' || ref.back() == '.')
    return false;
  if (ends_with(ref, ".lock"))
    return false;
  if (ref.find("..") != ref.npos || ref.find("@{") != ref.npos
      || ref.find("//") != ref.npos || ref.find("/.") != ref.npos)
    return false;
  if (ref.front() == '.' || ref.front() == '-')
    return false;
  for (auto c : ref) {
    // Printable ASCII only; no space, no control, no DEL.
    if (c <= ' ' || c >= 0x7f)
      return false;
    if (std::string_view{"\\~^:?*["}.find(c) != std::string_view::npos)
      return false;
  }
  // No path component may end with ".lock".
  return ref.find(".lock/") == ref.npos;
}

bool valid_task(std::string_view task) {
  if (task.substr(0, 6) != "deploy")
    return false;
  auto rest = task.substr(6);
  while (!rest.empty()) {
    if (rest.front() != ':')
      return false;
    rest.remove_prefix(1);
    size_t n = 0;
    while (n < rest.size() && (word_char(rest[n]) || rest[n] == '-'))
      ++n;
    if (n == 0)
      return false;
    rest.remove_prefix(n);
  }
  return true;
}

bool valid_script_path(std::string_view path) {
  // [\w-]+(/[\w-]+)*(\.\w+)?
  auto seg = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return word_char(c) || c == '-';
    });
  };
  auto last_slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot != path.npos && (last_slash == path.npos || dot > last_slash)) {
    auto ext = path.substr(dot + 1);
    if (ext.empty() || !std::all_of(ext.begin(), ext.end(), [](char c) {
          return word_char(c);
        }))
      return false;
    path = path.substr(0, dot);
  }
  if (path.empty())
    return false;
  size_t start = 0;
  while (true) {
    auto end = path.find('/', start);
    if (!seg(path.substr(start, end == path.npos ? path.npos : end - start)))
      return false;
    if (end == path.npos)
      return true;
    start = end + 1;
  }
}

bool valid_sha(std::string_view sha) {
  return sha.size() == 40 && std::all_of(sha.begin(), sha.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                  || (c >= 'A' && c <= 'F');
         });
}

std::string truncate_description(std::string_view text, std::size_t max) {
  if (text.size() <= max)
    return std::string{text};
  std::string_view ellipsis = "...";
  if (max <= ellipsis.size())
    return std::string{ellipsis.substr(0, max)};
  auto cut = max - ellipsis.size();
  // Step back over UTF-8 continuation bytes so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  std::string result{text.substr(0, cut)};
  result += ellipsis;
  return result;
}

namespace {

/// The authority part of a URL (between "://" and the path), with its
/// position, or npos when the URL has none.
std::pair<std::size_t, std::size_t> authority(std::string_view url) {
  auto start = url.find("://");
  if (start == url.npos)
    return {url.npos, 0};
  start += 3;
  auto end = url.find_first_of("/?#", start);
  if (end == url.npos)
    end = url.size();
  return {start, end - start};
}

} // namespace

bool valid_clone_url(std::string_view url) {
  if (url.empty() || url.front() == '-')
    return false;
  for (auto c : url)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return false;
  for (std::string_view scheme :
       {"https://", "http://", "ssh://", "git://", "file://"})
    if (url.substr(0, scheme.size()) == scheme)
      return url.size() > scheme.size();
  // scp-like: user@host:path (no scheme, no slash before the colon).
  auto at = url.find('@');
  auto colon = url.find(':');
  auto slash = url.find('/');
  return at != url.npos && at > 0 && colon != url.npos && colon > at + 1
         && (slash == url.npos || slash > colon) && colon + 1 < url.size();
}

std::string url_host(std::string_view url) {
  auto [pos, len] = authority(url);
  if (pos == url.npos)
    return {};
  auto host = url.substr(pos, len);
  if (auto at = host.rfind('@'); at != host.npos)
    host.remove_prefix(at + 1);
  if (auto colon = host.find(':'); colon != host.npos)
    host = host.substr(0, colon);
  return std::string{host};
}

std::string url_without_credentials(std::string_view url) {
  auto [pos, len] = authority(url);
  if (pos == url.npos)
    return std::string{url};
  auto at = url.substr(pos, len).rfind('@');
  if (at == std::string_view::npos)
    return std::string{url};
  std::string result{url.substr(0, pos)};
  result += url.substr(pos + at + 1);
  return result;
}

namespace {

/// What a scan of some text found.
struct text_scan {
  std::size_t characters = 0;
  bool control = false;
  bool malformed = false;
};

/// Counts the UTF-8 code points of `text` and notes control characters
/// (U+0000-U+001F, U+007F, U+0080-U+009F) and byte sequences that are not
/// UTF-8 (stray or truncated sequences, overlong forms, surrogates, beyond
/// U+10FFFF).
text_scan scan_text(std::string_view text) {
  text_scan out;
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    ++out.characters;
    if (c < 0x80) {
      out.control = out.control || c < 0x20 || c == 0x7f;
      ++i;
      continue;
    }
    std::size_t more = 0;
    unsigned char lo = 0x80, hi = 0xbf; // Bounds of the second byte.
    if (c >= 0xc2 && c <= 0xdf) {
      more = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      more = 2;
      if (c == 0xe0)
        lo = 0xa0; // Overlong below U+0800.
      else if (c == 0xed)
        hi = 0x9f; // U+D800-U+DFFF are surrogates.
    } else if (c >= 0xf0 && c <= 0xf4) {
      more = 3;
      if (c == 0xf0)
        lo = 0x90; // Overlong below U+10000.
      else if (c == 0xf4)
        hi = 0x8f; // Beyond U+10FFFF.
    } else {
      out.malformed = true;
      ++i;
      continue;
    }
    if (i + more >= text.size()) {
      out.malformed = true;
      break;
    }
    auto second = static_cast<unsigned char>(text[i + 1]);
    bool ok = second >= lo && second <= hi;
    for (std::size_t k = 2; ok && k <= more; ++k)
      ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (!ok) {
      out.malformed = true;
      ++i;
      continue;
    }
    // C1 controls are U+0080-U+009F: 0xC2 0x80-0x9F.
    out.control = out.control || (c == 0xc2 && second <= 0x9f);
    i += more + 1;
  }
  return out;
}

/// The verdict on `value` as field `path`, its size measured by `size` and
/// bounded by `max` `unit`s.
std::string verdict(std::string_view path, const text_scan& scan,
                    std::size_t size, std::size_t max, const char* unit) {
  if (scan.control)
    return std::string{path} + " contains a control character";
  if (scan.malformed)
    return std::string{path} + " is not valid UTF-8";
  if (size > max)
    return std::string{path} + " is longer than " + std::to_string(max) + " "
           + unit;
  return {};
}

/// True for the characters GitHub allows in a login: letters, digits, '-'
/// (and '_', which Enterprise Managed Users' logins carry).
bool login_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
         || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

} // namespace

std::string check_text(std::string_view path, std::string_view value,
                       std::size_t max) {
  auto scan = scan_text(value);
  return verdict(path, scan, scan.characters, max, "characters");
}

std::string check_bytes(std::string_view path, std::string_view value,
                        std::size_t max) {
  auto scan = scan_text(value);
  return verdict(path, scan, value.size(), max, "bytes");
}

std::string check_login(std::string_view path, std::string_view value) {
  // Bounded below, after "[bot]" is set aside.
  if (auto msg = check_text(path, value, std::string_view::npos); !msg.empty())
    return msg;
  auto name = value;
  if (ends_with(name, "[bot]"))
    name.remove_suffix(5);
  if (name.size() > limits::login)
    return std::string{path} + " is longer than "
           + std::to_string(limits::login) + " characters";
  if (name.empty() || !std::all_of(name.begin(), name.end(), login_char))
    return std::string{path}
           + " is not a GitHub login (letters, digits, '-' and '_')";
  return {};
}

std::string check_repository_name(std::string_view path,
                                  std::string_view value) {
  if (auto msg = check_text(path, value, limits::repository); !msg.empty())
    return msg;
  auto ok = std::all_of(value.begin(), value.end(),
                        [](char c) { return login_char(c) || c == '.'; });
  if (value.empty() || value == "." || value == ".." || !ok)
    return std::string{path}
           + " is not a GitHub repository name (letters, digits, '.', '-' "
             "and '_')";
  return {};
}

std::string check_full_name(std::string_view path, std::string_view value) {
  if (auto msg = check_text(path, value,
                            limits::login + 1 + limits::repository);
      !msg.empty())
    return msg;
  auto slash = value.find('/');
  if (slash == value.npos)
    return std::string{path} + " is not owner/name";
  auto owner = value.substr(0, slash);
  if (owner.size() > limits::login)
    return std::string{path} + " has an owner longer than "
           + std::to_string(limits::login) + " characters";
  if (owner.empty() || !std::all_of(owner.begin(), owner.end(), login_char))
    return std::string{path}
           + " has an owner that is not a GitHub login (letters, digits, "
             "'-' and '_')";
  auto name = value.substr(slash + 1);
  if (name.size() > limits::repository)
    return std::string{path} + " has a name longer than "
           + std::to_string(limits::repository) + " characters";
  if (auto msg = check_repository_name(path, name); !msg.empty())
    return msg;
  return {};
}

} // namespace heaven
