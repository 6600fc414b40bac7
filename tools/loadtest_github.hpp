/// `heaven loadtest --github-stand-in`: the local heaven's GitHub API and
/// Heroku Platform API, played by the recording stand-in of
/// tools/support/http_stub, and a git repository for the shell provider.
/// It notes when each deployment status arrives, so that the time from a
/// webhook to each status (and to the terminal one) can be told per
/// provider.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tools/loadtest_histogram.hpp"

namespace heaven::loadtest {

/// A status as the stand-in got it.
struct status_seen {
  std::string state;
  /// steady_clock nanoseconds.
  int64_t at_ns = 0;
};

/// The GitHub token and Heroku key the local heaven is given (fake: only
/// the stand-in sees them).
inline constexpr const char* stand_in_github_token = "loadtest-github-token";
inline constexpr const char* stand_in_heroku_key = "loadtest-heroku-key";

class github_stand_in {
public:
  /// Makes the shell provider's repository under `dir` (git must be on
  /// PATH; throws std::runtime_error otherwise) and starts listening.
  explicit github_stand_in(const std::filesystem::path& dir);
  ~github_stand_in();

  /// "http://127.0.0.1:<port>/".
  std::string base_url() const;
  /// file:// URL and head commit of the repository.
  std::string clone_url() const;
  std::string sha() const;

  /// The statuses of GitHub deployment `id` so far, in arrival order.
  std::map<int64_t, std::vector<status_seen>> statuses() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Whether `state` ends a deployment.
bool terminal_state(const std::string& state);

/// What the deployments of one provider took, from the webhook's send.
struct provider_figures {
  /// Deployments accepted (201) by heaven.
  uint64_t accepted = 0;
  /// Those that reached a terminal status, by that state.
  std::map<std::string, uint64_t> endings;
  /// Microseconds from the webhook to the first status of each state.
  std::map<std::string, histogram> to_state;
  /// Microseconds from the webhook to the terminal status.
  histogram to_terminal;
};

/// The figures of each provider, by name.
using deployment_figures = std::map<std::string, provider_figures>;

/// A deployment heaven accepted: its provider, when its webhook left
/// (steady_clock nanoseconds).
struct accepted_deployment {
  std::string provider;
  int64_t sent_ns = 0;
};

/// Waits up to `wait_s` seconds until every deployment of `accepted` (by
/// GitHub id) has had a terminal status at `github`; returns the figures
/// per provider and sets `unfinished` to the number that had none.
deployment_figures
settle(const github_stand_in& github,
       const std::map<int64_t, accepted_deployment>& accepted, double wait_s,
       uint64_t& unfinished);

} // namespace heaven::loadtest
