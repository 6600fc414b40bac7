/// A test actor that records what a deployment would be told.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/process.hpp"
#include "messages/atoms.hpp"
#include "messages/interfaces.hpp"
#include "messages/types.hpp"

namespace heaven::test {

/// Everything the recorder actor received, safe to read from the test.
struct record {
  std::mutex mx;
  std::condition_variable cv;
  std::vector<log_line> lines;
  std::vector<int32_t> started;
  std::vector<exit_info> exits;
  std::vector<std::pair<bool, std::string>> prepared;
  std::vector<provider_outcome> results;
  /// How many batches of lines (spawn_process's output) arrived.
  size_t batches = 0;

  /// Waits until `pred` holds (called under the lock) or `timeout` passes.
  bool wait(const std::function<bool()>& pred,
            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> guard{mx};
    return cv.wait_for(guard, timeout, pred);
  }

  /// The texts of the lines from `source`.
  std::vector<std::string> texts(stream source) {
    std::lock_guard<std::mutex> guard{mx};
    std::vector<std::string> result;
    for (auto& x : lines)
      if (x.source == source)
        result.push_back(x.text);
    return result;
  }

  /// True when some line (under the lock) has exactly `text`.
  bool has_line_locked(const std::string& text) {
    for (auto& x : lines)
      if (x.text == text)
        return true;
    return false;
  }
};

/// What the recorder hears: everything heaven's runners tell (the process
/// runner, the SSH sessions, the workspace) and a provider's result.
using recorder_actor = caf::typed_actor<
  caf::reacts_to<log_atom, log_line>,
  caf::reacts_to<log_atom, std::vector<log_line>>,
  caf::reacts_to<started_atom, int32_t>, caf::reacts_to<exited_atom, exit_info>,
  caf::reacts_to<prepared_atom, bool, std::string>,
  caf::reacts_to<result_atom, provider_outcome>>;

/// An actor that stores every deployment-bound message into `rec`.
inline recorder_actor::behavior_type recorder(recorder_actor::pointer,
                                              std::shared_ptr<record> rec) {
  auto add = [rec](auto fn) {
    {
      std::lock_guard<std::mutex> guard{rec->mx};
      fn(*rec);
    }
    rec->cv.notify_all();
  };
  return {
    [add](log_atom, log_line& x) {
      add([&](record& r) { r.lines.push_back(std::move(x)); });
    },
    [add](log_atom, std::vector<log_line>& xs) {
      add([&](record& r) {
        ++r.batches;
        for (auto& x : xs)
          r.lines.push_back(std::move(x));
      });
    },
    [add](started_atom, int32_t pid) {
      add([&](record& r) { r.started.push_back(pid); });
    },
    [add](exited_atom, exit_info& x) {
      add([&](record& r) { r.exits.push_back(std::move(x)); });
    },
    [add](prepared_atom, bool ok, std::string& why) {
      add([&](record& r) { r.prepared.emplace_back(ok, std::move(why)); });
    },
    [add](result_atom, provider_outcome& x) {
      add([&](record& r) { r.results.push_back(std::move(x)); });
    },
  };
}

/// The recorder as the deployment a provider is given (typed): records what
/// `recorder` records and ignores the rest of the deployment's interface.
inline deployment_actor::behavior_type
deployment_recorder(deployment_actor::pointer self,
                    std::shared_ptr<record> rec) {
  auto add = [rec](auto fn) {
    {
      std::lock_guard<std::mutex> guard{rec->mx};
      fn(*rec);
    }
    rec->cv.notify_all();
  };
  return {
    [add](log_atom, log_line& x) {
      add([&](record& r) { r.lines.push_back(std::move(x)); });
    },
    [add](log_atom, std::vector<log_line>& xs) {
      add([&](record& r) {
        ++r.batches;
        for (auto& x : xs)
          r.lines.push_back(std::move(x));
      });
    },
    [add](prepared_atom, bool ok, std::string& why) {
      add([&](record& r) { r.prepared.emplace_back(ok, std::move(why)); });
    },
    [add](result_atom, provider_outcome& x) {
      add([&](record& r) { r.results.push_back(std::move(x)); });
    },
    [](timeout_atom) {},
    [](cancel_atom, std::string&) {},
    [](shelve_atom) {},
    [](swept_atom, int32_t) {},
    [](retry_atom) {},
  };
}

/// A temporary directory, removed at the end.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    auto base = std::filesystem::temp_directory_path() / "heaven-test-XXXXXX";
    auto text = base.string();
    if (::mkdtemp(text.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = std::filesystem::canonical(text);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// Writes `text` to `path` (creating directories), optionally executable.
inline void write_file(const std::filesystem::path& path,
                       const std::string& text, bool executable = false) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream{path} << text;
  if (executable)
    std::filesystem::permissions(path, std::filesystem::perms::owner_all
                                         | std::filesystem::perms::group_read
                                         | std::filesystem::perms::others_read);
}

/// Reads a whole file.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Makes this process the reaper of its orphaned grandchildren: the test
/// machine's init does not reap, and a zombie still counts as a member of
/// its process group.
inline void become_subreaper() {
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
}

/// Polls `pred` until it holds or `timeout` passes (for conditions no
/// message announces, like a file disappearing).
inline bool
eventually(const std::function<bool()>& pred,
           std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    ::usleep(10 * 1000);
  }
  return true;
}

/// Reaps what is left of group `pgid` and waits until it is gone. Call only
/// after the group's leader was reaped by run_process.
inline bool
wait_group_gone(int32_t pgid,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    while (::waitpid(-pgid, nullptr, WNOHANG) > 0)
      ; // Reaped one orphan; look for more.
    if (!group_alive(pgid))
      return true;
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    ::usleep(20 * 1000);
  }
}

/// The environment the tests give their children.
inline string_pairs child_env(const std::filesystem::path& home) {
  string_pairs env;
  auto path = std::getenv("PATH");
  env.emplace_back("PATH", path ? path : "/usr/local/bin:/usr/bin:/bin");
  env.emplace_back("HOME", home.string());
  env.emplace_back("GIT_CONFIG_NOSYSTEM", "1");
  env.emplace_back("LC_ALL", "C");
  return env;
}

} // namespace heaven::test
