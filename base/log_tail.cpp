#include "base/log_tail.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace heaven {

namespace {

constexpr std::size_t block = 64 * 1024;

/// A descriptor closed at the end of the scope.
struct file {
  int fd;
  explicit file(const std::string& path)
    : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  }
  ~file() {
    if (fd >= 0)
      ::close(fd);
  }
  file(const file&) = delete;
  file& operator=(const file&) = delete;
};

/// Reads `size` bytes at `offset` into `out` (fewer at the end of the file).
void read_at(int fd, uint64_t offset, std::size_t size, std::string& out) {
  out.resize(size);
  std::size_t done = 0;
  while (done < size) {
    auto n = ::pread(fd, out.data() + done, size - done,
                     static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
}

/// The offset just past the last '\n' of the first `size` bytes; 0 when
/// there is none.
uint64_t end_of_lines(int fd, uint64_t size) {
  std::string buf;
  for (uint64_t hi = size; hi > 0;) {
    auto lo = hi > block ? hi - block : 0;
    read_at(fd, lo, static_cast<std::size_t>(hi - lo), buf);
    if (buf.size() != hi - lo)
      return 0;
    for (auto i = buf.size(); i > 0; --i)
      if (buf[i - 1] == '\n')
        return lo + i;
    hi = lo;
  }
  return 0;
}

/// How many '\n' the first `size` bytes hold.
uint64_t count_lines(int fd, uint64_t size) {
  std::string buf;
  uint64_t count = 0;
  for (uint64_t at = 0; at < size;) {
    auto want = static_cast<std::size_t>(
      std::min<uint64_t>(block * 16, size - at));
    read_at(fd, at, want, buf);
    if (buf.empty())
      break;
    const char* p = buf.data();
    const char* end = p + buf.size();
    while ((p = static_cast<const char*>(std::memchr(p, '\n', end - p)))) {
      ++count;
      ++p;
    }
    at += buf.size();
  }
  return count;
}

/// The records of times sidecar text, (offset, ms), by offset; malformed
/// ones are skipped.
std::vector<std::pair<uint64_t, int64_t>> parse_times(std::string_view rest) {
  std::vector<std::pair<uint64_t, int64_t>> out;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos)
      break; // a record being written
    auto line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    uint64_t offset = 0;
    int64_t ms = 0;
    auto end = line.data() + line.size();
    auto [p, ec] = std::from_chars(line.data(), end, offset);
    if (ec != std::errc{} || p == end || *p != ' ')
      continue;
    auto [q, ec2] = std::from_chars(p + 1, end, ms);
    if (ec2 != std::errc{} || q != end)
      continue;
    out.emplace_back(offset, ms);
  }
  // Written in order; sorted anyway so that a lookup never goes wrong.
  std::stable_sort(out.begin(), out.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  return out;
}

/// The records of the times sidecar at `path` (see parse_times).
std::vector<std::pair<uint64_t, int64_t>> read_times(const std::string& path) {
  file f{path};
  if (f.fd < 0)
    return {};
  struct stat st {};
  if (::fstat(f.fd, &st) != 0)
    return {};
  std::string text;
  read_at(f.fd, 0, static_cast<std::size_t>(st.st_size), text);
  return parse_times(text);
}

/// Fills `view` with the lines of `shown` (starting at `offset`, the
/// `number`th line of the log; it ends with '\n') and their times.
void add_lines(pages::log_view& view, std::string_view shown, uint64_t offset,
               uint64_t number,
               const std::vector<std::pair<uint64_t, int64_t>>& times) {
  auto time = times.begin();
  int64_t ms = 0;
  while (!shown.empty()) {
    auto nl = shown.find('\n');
    for (; time != times.end() && time->first <= offset; ++time)
      ms = time->second;
    view.lines.push_back({number++, ms, std::string{shown.substr(0, nl)}});
    shown.remove_prefix(nl + 1);
    offset += nl + 1;
  }
}

} // namespace

pages::log_view read_log_tail(const std::string& log_path,
                              const std::string& times_path,
                              uint64_t max_bytes) {
  pages::log_view view;
  file log{log_path};
  if (log.fd < 0)
    return view;
  struct stat st {};
  if (::fstat(log.fd, &st) != 0)
    return view;
  auto end = end_of_lines(log.fd, static_cast<uint64_t>(st.st_size));
  if (end == 0)
    return view;
  // The shown part starts at a line, at most max_bytes before the end: read
  // from one byte earlier to see whether a line starts there.
  uint64_t start = end > max_bytes ? end - max_bytes : 0;
  uint64_t from = start > 0 ? start - 1 : 0;
  std::string text;
  read_at(log.fd, from, static_cast<std::size_t>(end - from), text);
  if (text.size() != end - from)
    return view;
  std::string_view shown{text};
  if (start > 0) {
    view.truncated = true;
    auto nl = shown.find('\n');
    // Always found: the last byte is a '\n'.
    shown.remove_prefix(nl + 1);
    start = from + nl + 1;
  }
  view.end_offset = end;
  add_lines(view, shown, start, count_lines(log.fd, start) + 1,
            read_times(times_path));
  return view;
}

pages::log_view log_tail_of(std::string_view log, std::string_view times,
                            uint64_t max_bytes) {
  pages::log_view view;
  auto end = log.rfind('\n');
  if (end == std::string_view::npos)
    return view;
  ++end;
  uint64_t start = end > max_bytes ? end - max_bytes : 0;
  if (start > 0) {
    // The shown part starts at a line: after the first '\n' at or after
    // start - 1.
    view.truncated = true;
    start = log.find('\n', start - 1) + 1;
  }
  view.end_offset = end;
  auto before = log.substr(0, start);
  auto number = static_cast<uint64_t>(
                  std::count(before.begin(), before.end(), '\n'))
                + 1;
  add_lines(view, log.substr(start, end - start), start, number,
            parse_times(times));
  return view;
}

} // namespace heaven
