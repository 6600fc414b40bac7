#include "actors/scope_records.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace heaven::scope_detail {

std::string slurp(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return {};
  std::string result;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    result.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return result;
}

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
  return n == static_cast<ssize_t>(text.size());
}

bool parse_stat(const std::string& text, proc_entry& e) {
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return false;
  std::istringstream in{text.substr(close + 1)};
  std::string skip;
  in >> e.state >> e.ppid >> e.pgrp >> e.session >> skip >> skip >> e.flags;
  for (int field = 10; field < 22; ++field)
    in >> skip;
  in >> e.start;
  return static_cast<bool>(in);
}

std::vector<proc_entry> snapshot() {
  std::vector<proc_entry> result;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr)
    return result;
  while (auto* ent = ::readdir(dir)) {
    if (ent->d_name[0] < '1' || ent->d_name[0] > '9')
      continue;
    proc_entry e;
    e.pid = static_cast<pid_t>(std::atoi(ent->d_name));
    if (parse_stat(slurp(std::string{"/proc/"} + ent->d_name + "/stat"), e))
      result.push_back(e);
  }
  ::closedir(dir);
  return result;
}

bool read_cookie(pid_t pid, std::string& cookie) {
  cookie.clear();
  auto path = "/proc/" + std::to_string(pid) + "/environ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true; // Gone, or not ours to read: it never will be.
  ::close(fd);
  auto env = slurp(path);
  if (env.empty())
    return false;
  static const std::string key = "HEAVEN_SCOPE=";
  size_t pos = 0;
  while (pos < env.size()) {
    auto end = env.find('\0', pos);
    if (end == std::string::npos)
      end = env.size();
    if (env.compare(pos, key.size(), key) == 0) {
      cookie = env.substr(pos + key.size(), end - pos - key.size());
      return true;
    }
    pos = end + 1;
  }
  return true;
}

std::string cookie_of(pid_t pid) {
  std::string cookie;
  read_cookie(pid, cookie);
  return cookie;
}

bool is_subreaper() {
  int flag = 0;
  return ::prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) == 0 && flag != 0;
}

record_data parse_record(const std::string& text) {
  record_data result;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("scope ", 0) == 0) {
      result.cookie = line.substr(6);
    } else if (line.rfind("cgroup ", 0) == 0) {
      result.cgroup = line.substr(7);
    } else if (line.rfind("group ", 0) == 0) {
      std::istringstream fields{line.substr(6)};
      long long pid = 0;
      unsigned long long start = 0;
      if (fields >> pid >> start && pid > 1)
        result.groups.emplace_back(static_cast<pid_t>(pid), start);
    }
  }
  return result;
}

namespace {

/// close_record's work. With `wait` false it takes the record only when no
/// start holds it: otherwise it returns false, having changed nothing.
bool close_record_with(const std::string& record, bool wait, record_data& out) {
  out = {};
  if (record.empty())
    return true;
  auto ending = record + ".ending";
  int fd = ::open(record.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    out = parse_record(slurp(ending));
    return true;
  }
  int op = wait ? LOCK_EX : LOCK_EX | LOCK_NB;
  while (::flock(fd, op) != 0) {
    if (errno == EINTR)
      continue;
    if (!wait && errno == EWOULDBLOCK) {
      ::close(fd);
      return false;
    }
    break;
  }
  if (::rename(record.c_str(), ending.c_str()) != 0)
    spdlog::warn("heaven could not close the record {}: {}", record,
                 std::strerror(errno));
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  out = parse_record(text);
  return true;
}

} // namespace

record_data close_record(const std::string& record) {
  record_data result;
  close_record_with(record, true, result);
  return result;
}

bool try_close_record(const std::string& record, record_data& out) {
  return close_record_with(record, false, out);
}

} // namespace heaven::scope_detail
