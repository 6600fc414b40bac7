#include "base/notices.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace heaven {

using nlohmann::json;

// The stored form of a notice (an outbox row's body): every field by its
// name; a field that is missing reads as its default.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(commit_summary, sha, author,
                                                author_url, message, url)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(commit_changes, present, url,
                                                total_commits, additions,
                                                deletions, changes, commits,
                                                more)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
  deployment_notice, repo, app, repo_url, deployment_id, status_id, state,
  description, log_url, environment_url, environment, task, ref, sha,
  deployment_description, creator, chat_user, room, changes)

bool records_revision(const deployment_notice& n) {
  return n.state == "success" && n.task == "deploy" && !n.sha.empty();
}

bool compares_with_deployed(const deployment_notice& n) {
  return (n.state == "pending" || n.state == "in_progress") && !n.sha.empty();
}

std::string notice_stream(const deployment_notice& n) {
  return n.repo + "#" + std::to_string(n.deployment_id);
}

json changes_json(const commit_changes& c) {
  return c;
}

json notice_json(const deployment_notice& n) {
  return n;
}

deployment_notice notice_of(const json& j) {
  if (!j.is_object())
    throw std::runtime_error("a notice is not a JSON object");
  for (const char* key : {"repo", "deployment_id", "state"})
    if (!j.contains(key))
      throw std::runtime_error(std::string{"a notice is unreadable: it has no "}
                               + key);
  try {
    return j.get<deployment_notice>();
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string{"a notice is unreadable: "}
                             + e.what());
  }
}

std::string notice_row_body(const deployment_notice& n,
                            const std::string& base) {
  json body = {{"notice", notice_json(n)}, {"base", base}};
  // A description may hold bytes that are not UTF-8: a replacement
  // character beats a notice that cannot be written.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace heaven
