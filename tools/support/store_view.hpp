/// heaven's store as a test sees it: its SQLite file (<data>/heaven.db) read
/// through a read-only connection of the test's own, in one snapshot. This
/// is how end-to-end tests know that heaven has nothing left to send,
/// instead of waiting a while to see whether something comes.
///
/// Why a quiet store means that nothing more comes (actors/sqlite_store.cpp,
/// actors/outbox.cpp, actors/deployment.cpp):
/// - everything heaven sends on its own (GitHub statuses, chat notices and
///   messages, the creation of auto-deployments) is an `outbox` row, written
///   in the transaction of what it reports;
/// - a row is settled (`settled_at` set) only after its request got an
///   answer, or was given up, and what it leads to is added in the very
///   transaction that settles it;
/// - a deployment queues a status with each transition and none after its
///   end, and its provider has stopped before its end is recorded; heaven
///   answers an event only once what it leads to is committed.
/// So once no deployment is queued or running and no outbox row is
/// unsettled, every request heaven was going to make has been answered, and
/// it makes no other until it is told something new. Not covered: the GitHub
/// questions an auto-deploy job asks after a `status` event, before it
/// claims anything (they leave no row).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heaven::test {

/// One snapshot of heaven's store.
struct store_snapshot {
  struct deployment {
    int64_t id = 0;
    int64_t github_id = 0;
    std::string state;
  };
  struct unsettled_row {
    int64_t id = 0;
    std::string kind;
    std::string stream;
  };
  /// Every deployment, oldest first.
  std::vector<deployment> deployments;
  /// The outbox rows not settled yet, oldest first.
  std::vector<unsettled_row> unsettled;

  /// No deployment is queued or running and every outbox row is settled.
  bool quiet() const;

  /// What keeps it from being quiet ("deployment 3 (GitHub's 1001) is
  /// running; outbox row 7 (status, stream d3) is unsettled"), or "quiet":
  /// for failure messages.
  std::string describe() const;
};

/// Reads the store of the heaven whose data directory is `data_dir`, in one
/// read transaction. Throws std::runtime_error when it cannot be read.
store_snapshot read_store(const std::filesystem::path& data_dir);

/// Reads the store of `data_dir` until it is quiet or `timeout` passed;
/// returns the last snapshot (quiet unless the time ran out).
store_snapshot
wait_quiet(const std::filesystem::path& data_dir,
           std::chrono::milliseconds timeout = std::chrono::seconds(60));

} // namespace heaven::test
