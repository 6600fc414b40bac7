/// The little of HTTP/1.1 answers `heaven loadtest` reads: the status
/// line, Content-Length, chunked encoding, Connection: close.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace heaven::loadtest {

/// A parsed response head, or what is still missing.
struct response_head {
  int status = 0;
  std::size_t body_start = 0;
  int64_t content_length = -1;
  bool chunked = false;
  bool close = false;
};

inline bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size())
    return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i])
      return false;
  return true;
}

inline bool contains_nocase(std::string_view text, std::string_view word) {
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i)
    if (iequals_prefix(text.substr(i), word))
      return true;
  return false;
}

/// Parses the head at the start of `in`; false when it is malformed.
inline bool parse_head(std::string_view in, std::size_t head_end,
                       response_head& h) {
  if (in.size() < 12 || in.substr(0, 7) != "HTTP/1.")
    return false;
  for (int i = 9; i < 12; ++i)
    if (in[i] < '0' || in[i] > '9')
      return false;
  h.status = (in[9] - '0') * 100 + (in[10] - '0') * 10 + (in[11] - '0');
  h.close = in[7] == '0';
  h.body_start = head_end + 4;
  auto pos = in.find("\r\n") + 2;
  while (pos < head_end) {
    auto eol = in.find("\r\n", pos);
    auto line = in.substr(pos, eol - pos);
    auto value = line.substr(std::min(line.find(':') + 1, line.size()));
    if (iequals_prefix(line, "content-length:"))
      h.content_length = std::strtoll(std::string{value}.c_str(), nullptr, 10);
    else if (iequals_prefix(line, "transfer-encoding:"))
      h.chunked = contains_nocase(value, "chunked");
    else if (iequals_prefix(line, "connection:"))
      h.close = contains_nocase(value, "close");
    pos = eol + 2;
  }
  return true;
}

/// The end of a chunked body that starts at `pos`, 0 while incomplete,
/// npos when malformed.
inline std::size_t chunked_end(std::string_view in, std::size_t pos) {
  while (true) {
    auto eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos)
      return 0;
    char* end = nullptr;
    std::string size_text{in.substr(pos, eol - pos)};
    auto size = std::strtoull(size_text.c_str(), &end, 16);
    if (end == size_text.c_str())
      return std::string_view::npos;
    if (size == 0) {
      // The last chunk, trailers, and an empty line.
      auto fin = in.find("\r\n\r\n", eol);
      return fin == std::string_view::npos ? 0 : fin + 4;
    }
    pos = eol + 2 + size + 2;
    if (pos > in.size())
      return 0;
  }
}

} // namespace heaven::loadtest
