/// Splitting a byte stream into lines, for the output of local processes
/// and of SSH commands alike.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace heaven {

/// Lines longer than this leave in pieces of this size, so one runaway line
/// cannot eat the memory.
inline constexpr std::size_t max_line = 64 * 1024;

/// Collects a stream's bytes and hands on each complete line (without its
/// newline), and at the end the partial last one.
class line_splitter {
public:
  /// Appends `data` and calls `emit(std::string_view)` for each line it
  /// completes (and each max_line piece of a longer one).
  template <class F>
  void feed(std::string_view data, F&& emit) {
    buf_.append(data);
    std::size_t start = 0;
    for (;;) {
      auto nl = buf_.find('\n', start);
      if (nl == std::string::npos) {
        while (buf_.size() - start >= max_line) {
          emit(std::string_view{buf_}.substr(start, max_line));
          start += max_line;
        }
        break;
      }
      // A line longer than the limit still leaves in pieces.
      while (nl - start > max_line) {
        emit(std::string_view{buf_}.substr(start, max_line));
        start += max_line;
      }
      emit(std::string_view{buf_}.substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
  }

  /// Calls `emit` with the partial last line, if any, and forgets it.
  template <class F>
  void finish(F&& emit) {
    if (!buf_.empty())
      emit(std::string_view{buf_});
    buf_.clear();
  }

  /// Forgets a partial line.
  void clear() {
    buf_.clear();
  }

private:
  std::string buf_;
};

} // namespace heaven
