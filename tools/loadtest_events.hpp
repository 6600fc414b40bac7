/// The requests of `heaven loadtest`: real GitHub events of each kind,
/// each with its own X-GitHub-Delivery and deployment id, signed as GitHub
/// signs them (X-Hub-Signature-256: HMAC-SHA256 of the body under the
/// webhook's secret).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace heaven::loadtest {

/// What `--event` may name: one kind, or `mix` (each kind in turn).
enum class event_choice { deployment, deployment_status, status, ping, mix };

/// The choice `text` names, or nullopt.
std::optional<event_choice> parse_event_choice(std::string_view text);

/// What `deployment` events carry for --github-stand-in: a provider each
/// (in turn), and the repository the shell provider checks out.
struct deploy_plan {
  std::vector<std::string> providers;
  std::string clone_url;
  std::string sha;
};

/// Builds request after request, ready to write to a socket.
class request_maker {
public:
  /// Requests to `path` on `host_header` ("host:port") of events `choice`,
  /// signed with `secret`. `run_id` (any number) keeps the delivery and
  /// deployment ids of one run apart from another's.
  request_maker(std::string host_header, std::string path, event_choice choice,
                std::string secret, uint64_t run_id);
  ~request_maker();
  request_maker(const request_maker&) = delete;
  request_maker& operator=(const request_maker&) = delete;

  /// Appends the `n`th request (0, 1, ...) to `out`.
  void append(uint64_t n, std::string& out);

  /// The event name of the `n`th request.
  std::string_view event_of(uint64_t n) const;

  /// Deployments from now on carry `plan` in their payload.
  void set_deploy_plan(deploy_plan plan);

  /// The deployment id of the `n`th request (GitHub's, in its body).
  int64_t deployment_id(uint64_t n) const;

  /// The provider of the `n`th request's deployment ("" without a plan).
  std::string provider_of(uint64_t n) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace heaven::loadtest
