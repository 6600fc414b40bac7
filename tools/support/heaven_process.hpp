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
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include "messages/types.hpp"
#include "tools/support/http_stub.hpp"
#include "tools/support/launch.hpp"

namespace heaven::test {

/// The webhook secret every test heaven gets; `post_event` signs with it.
inline constexpr const char* e2e_webhook_secret = "e2e webhook secret";

/// The GitHub token every test heaven gets (GITHUB_TOKEN).
inline constexpr const char* e2e_github_token = "ghp_e2eSECRETtoken0123456789";

/// HEAVEN_API_TOKEN of every test heaven unless a test sets its own: it
/// reads GET /deployments and /locks.
inline constexpr const char* e2e_api_token = "e2e-api-TOKEN-reads-deployments";

/// HEAVEN_PUBLIC_URL of every test heaven: the base of its log links.
inline constexpr const char* e2e_public_url = "https://heaven.example.test";

/// A fresh, empty directory under the system's temporary directory, its
/// name made of `tag`, this process's id and a counter. It is removed when
/// the process exits normally (a test may remove it sooner).
std::filesystem::path make_temp_dir(const std::string& tag);

/// A TCP port on 127.0.0.1 nobody listens on right now (bind-probed; a
/// service started on it must still cope with losing a race for it).
/// Throws std::runtime_error when none can be had.
int free_port();

/// The whole text of the file at `path` ("" when it can't be read).
std::string read_text(const std::filesystem::path& path);

/// The fields of a GitHub `deployment` event that tests and benchmarks
/// vary; the rest (action "created", ref "main", task "deploy") is fixed.
struct deployment_fields {
  int64_t id = 0;
  std::string sha;
  std::string clone_url;
  /// deployment.payload.
  nlohmann::json payload = nlohmann::json::object();
  /// repository.full_name; repository.name is "app".
  std::string repo = "octo/app";
  std::string environment = "production";
  std::string description = "Deploying from the e2e test";
  /// The login of the deployment's creator and of the event's sender.
  std::string login = "alice";
};

/// The JSON of a `deployment` event (the shape GitHub sends) of `f`.
nlohmann::json deployment_event(const deployment_fields& f);

/// What a shell command printed (stdout and stderr together) and its exit
/// status (-1 when a signal ended it).
struct command_result {
  int status = -1;
  std::string out;
};

/// Runs `cmd` with /bin/sh and collects its output.
command_result run_command(const std::string& cmd);

/// Runs `cmd`; returns its output without trailing newlines, or throws
/// std::runtime_error naming the command and showing its output.
std::string run_checked(const std::string& cmd);

/// A thread copying `fd` to the file `path` until the stream ends, then
/// closing `fd` (so heaven never blocks on a full stdout pipe).
std::thread drain_to_file(int fd, std::filesystem::path path);

/// Figures of a process read from /proc.
struct proc_figures {
  long hwm_kb = 0, rss_kb = 0, threads = 0;
  /// Open descriptors; 0 unless counted.
  long fds = 0;
  /// CPU seconds used (utime + stime).
  double cpu_s = 0;
};

/// VmHWM, VmRSS, Threads and CPU time of `pid`, and its open descriptors
/// when `count_fds`.
proc_figures read_proc(pid_t pid, bool count_fds);

/// How a process ended after `stop_process`.
struct stop_outcome {
  /// False when it had to be killed with SIGKILL.
  bool exited = false;
  /// waitpid's status.
  int status = 0;
  /// Seconds from SIGTERM until it exited (or was killed).
  double seconds = 0;
};

/// Sends SIGTERM to `pid` and waits for it, polling every `poll_ms`, for
/// up to `timeout_s` seconds; kills it with SIGKILL after that.
stop_outcome stop_process(pid_t pid, int timeout_s, int poll_ms);

/// A running `heaven serve` child process with its own data directory. Its
/// stdout is read until "heaven is ready on port N"; its stderr (heaven's
/// own log) goes to `stderr_file`. Construct it on the thread that lives
/// as long as it should (the test's): heaven gets SIGTERM when that thread
/// ends, so a crashed test leaves none behind.
struct heaven_server {
  /// NAME=value settings, in addition to (or replacing) the defaults.
  using env_list = std::vector<std::pair<std::string, std::string>>;

  pid_t pid = -1;
  uint16_t port = 0;
  std::filesystem::path data;
  /// `<data>.stderr`.
  std::filesystem::path stderr_file;
  /// Its HEAVEN_API_TOKEN (e2e_api_token unless `extra` set another).
  std::string api_token;

  /// Starts heaven on 127.0.0.1 (any free port) with data in `data_dir`,
  /// GitHub's API at `api`, the e2e secret, tokens and public URL, and
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
  http_response
  post_event(const std::string& type, const std::string& delivery,
             const std::string& body,
             std::optional<std::string> signature = std::nullopt) const;

  /// `Authorization: Bearer <api_token>`, which reads /deployments and
  /// /locks.
  string_pairs authorization() const;

  /// GET /deployments (with the API token): every deployment heaven knows,
  /// as JSON rows.
  nlohmann::json deployments() const;

  /// Waits until deployment `id` reached a terminal state; returns its row.
  nlohmann::json wait_finished(int64_t id, int seconds = 60) const;

  /// Waits until heaven has nothing left to send: no deployment queued or
  /// running, every outbox row settled (see tools/support/store_view.hpp).
  /// Then every status, notice and chat message heaven had for what it was
  /// told has been answered, and nothing more comes until it is told
  /// something new. Throws when that does not happen within `seconds`.
  void wait_quiet(int seconds = 60) const;

  /// The key heaven made for its log links (data/log.key).
  std::string log_key() const;

  /// The log of deployment `id`, fetched with its token.
  std::string log(int64_t id) const;

  /// What is wrong with how heaven shows deployment `id`, one that ended
  /// before it started (the rules refused it at intake), whose log is the
  /// one line `line` ('\n' included); "" when nothing is. heaven made no
  /// file for it in data/logs; its log link answers 200 with exactly
  /// `line`, framed as any log (chunked plain text); its page (read with
  /// the API token) shows that line with the time its row ended; and the
  /// log link of an id heaven does not know still answers 404.
  std::string unstarted_log_problems(int64_t id, const std::string& line) const;
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
