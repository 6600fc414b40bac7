/// The end of a deployment's log as its page shows it: the last lines with
/// their numbers and times (from the log book's `.times` sidecar).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/pages.hpp"

namespace heaven {

/// The complete lines of the log at `log_path` (up to its last '\n'; a
/// partial last line is left for the follower), at most the last `max_bytes`
/// bytes of them, starting at a line (then `truncated`). Each line has its
/// 1-based number, its text without '\n' and its time: that of the last
/// record of `times_path` ("<offset> <ms>" lines) at or before the line's
/// offset, 0 when none. `end_offset` is the offset just past the last line
/// shown; `follow_url` and `raw_url` are left empty. A missing log gives an
/// empty view, a missing sidecar times of 0. Reads only the shown part and
/// counts the lines before it, so a long log costs one pass of memchr.
pages::log_view read_log_tail(const std::string& log_path,
                              const std::string& times_path,
                              uint64_t max_bytes);

/// read_log_tail of a log held in memory: `log` is the log from its start,
/// `times` its times records.
pages::log_view log_tail_of(std::string_view log, std::string_view times,
                            uint64_t max_bytes);

} // namespace heaven
