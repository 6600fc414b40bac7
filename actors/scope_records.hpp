/// Scopes' fallback backend (see actors/scope.hpp): what heaven reads of the
/// machine without cgroups (/proc's processes and their HEAVEN_SCOPE
/// cookies) and the record file of each scope. Private to actors/scope*.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace heaven::scope_detail {

/// Reads a whole (small, /proc or cgroupfs) file; "" when it cannot.
std::string slurp(const std::string& path);

/// Writes `text` to an existing file (a cgroup control file); true when
/// all of it went in.
bool write_text(const std::string& path, const std::string& text);

/// One process as /proc/<pid>/stat shows it.
struct proc_entry {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  uint64_t start = 0;
  char state = '?';
  unsigned long flags = 0;

  bool dead() const {
    return state == 'Z' || state == 'X' || state == 'x';
  }

  /// A kernel thread (PF_KTHREAD): never anyone's, no environment.
  bool kernel() const {
    return (flags & 0x00200000UL) != 0;
  }
};

/// Parses /proc/<pid>/stat's text into `e`; false when it cannot.
bool parse_stat(const std::string& text, proc_entry& e);

/// Every process on the machine (that /proc shows).
std::vector<proc_entry> snapshot();

/// The HEAVEN_SCOPE cookie in `pid`'s environment ("" when none). False
/// when its environment cannot be known yet: it is readable but empty, as
/// in the moment an exec is setting it up (or when a process really has no
/// variable at all).
bool read_cookie(pid_t pid, std::string& cookie);

/// The HEAVEN_SCOPE cookie in `pid`'s environment, or "".
std::string cookie_of(pid_t pid);

/// True when heaven is the child subreaper.
bool is_subreaper();

/// A scope's record file, parsed.
struct record_data {
  std::string cookie;
  std::string cgroup;
  std::vector<std::pair<pid_t, uint64_t>> groups;
};

/// Parses a scope's record file.
record_data parse_record(const std::string& text);

/// Closes a scope's record to new processes: takes it exclusively (waiting
/// for starts under way, which hold it shared, to be recorded) and renames
/// it to `<record>.ending`, which nothing starts under. Returns what it
/// recorded. Continues an ending that a killed heaven left half done.
record_data close_record(const std::string& record);

/// close_record without waiting: when a start under way holds the record,
/// returns false and changes nothing; otherwise closes it as close_record
/// does, sets `out` to what it recorded and returns true.
bool try_close_record(const std::string& record, record_data& out);

} // namespace heaven::scope_detail
