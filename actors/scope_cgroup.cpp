#include "actors/scope_cgroup.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <system_error>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "actors/children.hpp"
#include "actors/scope_records.hpp"

namespace fs = std::filesystem;

namespace heaven::scope_detail {

std::string unescape_mount(const std::string& text) {
  std::string result;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      auto digits = text.substr(i + 1, 3);
      if (digits.find_first_not_of("01234567") == std::string::npos) {
        result += static_cast<char>(std::stoi(digits, nullptr, 8));
        i += 3;
        continue;
      }
    }
    result += text[i];
  }
  return result;
}

cgroup2_mount find_cgroup2() {
  std::istringstream in{slurp("/proc/self/mountinfo")};
  std::string line;
  while (std::getline(in, line)) {
    auto dash = line.find(" - ");
    if (dash == std::string::npos)
      continue;
    std::istringstream tail{line.substr(dash + 3)};
    std::string type;
    tail >> type;
    if (type != "cgroup2")
      continue;
    std::istringstream head{line.substr(0, dash)};
    std::string id, parent, dev, root, point;
    head >> id >> parent >> dev >> root >> point;
    return {unescape_mount(point), unescape_mount(root)};
  }
  return {};
}

std::string cgroup_of(const std::string& pid) {
  std::istringstream in{slurp("/proc/" + pid + "/cgroup")};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0)
      return line.substr(3);
  return {};
}

std::string relative_cgroup(const std::string& dir) {
  static const auto mount = find_cgroup2();
  if (mount.point.empty() || dir.compare(0, mount.point.size(), mount.point))
    return {};
  auto rel = dir.substr(mount.point.size());
  if (mount.root != "/")
    rel = mount.root + rel;
  return rel.empty() ? "/" : rel;
}

void cgroup_members(const std::string& dir, std::vector<pid_t>& out) {
  std::istringstream in{slurp(dir + "/cgroup.procs")};
  long long pid;
  while (in >> pid)
    out.push_back(static_cast<pid_t>(pid));
  std::error_code ec;
  for (auto& entry : fs::directory_iterator{dir, ec})
    if (entry.is_directory(ec))
      cgroup_members(entry.path().string(), out);
}

bool remove_cgroup(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return true;
  for (auto& entry : fs::directory_iterator{dir, ec})
    if (entry.is_directory(ec))
      remove_cgroup(entry.path().string());
  // A cgroup whose last process just exited may be busy for a moment.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT)
      return true;
    if (errno != EBUSY)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::warn("heaven could not remove the cgroup {}: {}", dir,
               std::strerror(errno));
  return false;
}

std::string make_cgroup_root(const std::string& instance, std::string& root) {
  auto mount = find_cgroup2();
  if (mount.point.empty())
    return "no cgroup2 file system is mounted";
  auto own = cgroup_of("self");
  if (own.empty() || own.compare(0, mount.root.size(), mount.root) != 0)
    return "heaven's own cgroup is not below the cgroup2 mount";
  auto rel = mount.root == "/" ? own : own.substr(mount.root.size());
  auto dir = mount.point + (rel == "/" ? "" : rel) + "/heaven-" + instance;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return "cannot create the cgroup " + dir + ": " + std::strerror(errno);
  // Whether a process can really be moved there: try it with one.
  auto probe = dir + "/probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) {
    auto why = "cannot create the cgroup " + probe + ": "
               + std::strerror(errno);
    ::rmdir(dir.c_str());
    return why;
  }
  child_options opts;
  opts.exe = "/bin/sh";
  opts.argv = {"sh", "-c", "exit 0"};
  opts.scope.cgroup = probe;
  std::string why;
  if (auto child = start_child(opts, why))
    child->wait();
  ::rmdir(probe.c_str());
  if (!why.empty()) {
    ::rmdir(dir.c_str());
    return "cannot start a process in the cgroup " + probe + ": " + why;
  }
  root = dir;
  return {};
}

} // namespace heaven::scope_detail
