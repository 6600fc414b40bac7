/// The real `heaven serve` binary as a child process, for end-to-end tests,
/// and the few helpers those tests share: temporary directories, signed
/// events, and the statuses a GitHub stand-in was sent.
///
/// Failures (heaven does not start, a deployment does not finish) throw
/// std::runtime_error, which fails the running test case.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include "messages/types.hpp"
#include "tests/support/http_stub.hpp"

namespace heaven::test {

/// The webhook secret every test heaven gets; `post_event` signs with it.
inline constexpr const char* e2e_webhook_secret = "e2e webhook secret";

/// The GitHub token every test heaven gets (GITHUB_TOKEN).
inline constexpr const char* e2e_github_token = "ghp_e2eSECRETtoken0123456789";

/// HEAVEN_PUBLIC_URL of every test heaven: the base of its log links.
inline constexpr const char* e2e_public_url = "https://heaven.example.test";

/// A fresh, empty directory under the system's temporary directory, its
/// name made of `tag`, this process's id and a counter.
std::filesystem::path make_temp_dir(const std::string& tag);

/// The whole text of the file at `path` ("" when it can't be read).
std::string read_text(const std::filesystem::path& path);

/// A running `heaven serve` child process with its own data directory. Its
/// stdout is read until "heaven is ready on port N"; its stderr (heaven's
/// own log) goes to `stderr_file`.
struct heaven_server {
  /// NAME=value settings, in addition to (or overriding) the defaults.
  using env_list = std::vector<std::pair<std::string, std::string>>;

  pid_t pid = -1;
  uint16_t port = 0;
  std::filesystem::path data;
  /// `<data>.stderr`.
  std::filesystem::path stderr_file;

  /// Starts heaven on 127.0.0.1 (any free port) with data in `data_dir`,
  /// GitHub's API at `api`, the e2e secret, token and public URL, and
  /// `extra` settings; returns once it listens.
  heaven_server(const std::filesystem::path& data_dir, const std::string& api,
                env_list extra = {});

  heaven_server(const heaven_server&) = delete;
  heaven_server& operator=(const heaven_server&) = delete;

  /// Stops heaven (see `stop`).
  ~heaven_server();

  /// Stops heaven with SIGTERM and returns its exit status; -1 when it
  /// had to be killed because it did not exit within a minute.
  int stop();

  /// "http://127.0.0.1:<port>".
  std::string base() const;

  /// Posts an event of `type` to /events, signed with the e2e secret (or
  /// carrying `signature` instead).
  http_response post_event(const std::string& type,
                           const std::string& delivery,
                           const std::string& body,
                           std::optional<std::string> signature
                           = std::nullopt) const;

  /// GET /deployments: every deployment heaven knows, as JSON rows.
  nlohmann::json deployments() const;

  /// Waits until deployment `id` reached a terminal state; returns its row.
  nlohmann::json wait_finished(int64_t id, int seconds = 60) const;

  /// The key heaven made for its log links (data/log.key).
  std::string log_key() const;

  /// The log of deployment `id`, fetched with its token.
  std::string log(int64_t id) const;
};

/// The requests `github` got for the statuses of deployment `github_id` of
/// `repo`, in arrival order.
std::vector<recorded_request> statuses(const http_stub& github,
                                       int64_t github_id,
                                       const std::string& repo = "octo/app");

/// The `state` of each status request's JSON body.
std::vector<std::string> states(const std::vector<recorded_request>& reqs);

/// heaven's id for the deployment of GitHub id `github_id`, waiting until
/// heaven has recorded it.
int64_t id_of(const heaven_server& h, int64_t github_id);

} // namespace heaven::test
