#include "base/notices.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace heaven {

namespace {

using nlohmann::json;

json changes_json(const commit_changes& c) {
  json commits = json::array();
  for (const auto& x : c.commits)
    commits.push_back({{"sha", x.sha},
                       {"author", x.author},
                       {"author_url", x.author_url},
                       {"message", x.message},
                       {"url", x.url}});
  return {{"present", c.present},
          {"url", c.url},
          {"total_commits", c.total_commits},
          {"additions", c.additions},
          {"deletions", c.deletions},
          {"changes", c.changes},
          {"commits", std::move(commits)},
          {"more", c.more}};
}

commit_changes changes_of(const json& j) {
  commit_changes c;
  if (!j.is_object())
    return c;
  c.present = j.value("present", false);
  c.url = j.value("url", "");
  c.total_commits = j.value("total_commits", int64_t{0});
  c.additions = j.value("additions", int64_t{0});
  c.deletions = j.value("deletions", int64_t{0});
  c.changes = j.value("changes", int64_t{0});
  c.more = j.value("more", int64_t{0});
  if (auto i = j.find("commits"); i != j.end() && i->is_array())
    for (const auto& x : *i) {
      commit_summary s;
      s.sha = x.value("sha", "");
      s.author = x.value("author", "");
      s.author_url = x.value("author_url", "");
      s.message = x.value("message", "");
      s.url = x.value("url", "");
      c.commits.push_back(std::move(s));
    }
  return c;
}

} // namespace

bool records_revision(const deployment_notice& n) {
  return n.state == "success" && n.task == "deploy" && !n.sha.empty();
}

std::string notice_stream(const deployment_notice& n) {
  return n.repo + "#" + std::to_string(n.deployment_id);
}

json notice_json(const deployment_notice& n) {
  return {{"repo", n.repo},
          {"app", n.app},
          {"repo_url", n.repo_url},
          {"deployment_id", n.deployment_id},
          {"status_id", n.status_id},
          {"state", n.state},
          {"description", n.description},
          {"log_url", n.log_url},
          {"environment_url", n.environment_url},
          {"environment", n.environment},
          {"task", n.task},
          {"ref", n.ref},
          {"sha", n.sha},
          {"deployment_description", n.deployment_description},
          {"creator", n.creator},
          {"chat_user", n.chat_user},
          {"room", n.room},
          {"changes", changes_json(n.changes)}};
}

deployment_notice notice_of(const json& j) {
  if (!j.is_object())
    throw std::runtime_error("a notice is not a JSON object");
  deployment_notice n;
  try {
    n.repo = j.at("repo").get<std::string>();
    n.deployment_id = j.at("deployment_id").get<int64_t>();
    n.state = j.at("state").get<std::string>();
    n.app = j.value("app", "");
    n.repo_url = j.value("repo_url", "");
    n.status_id = j.value("status_id", int64_t{0});
    n.description = j.value("description", "");
    n.log_url = j.value("log_url", "");
    n.environment_url = j.value("environment_url", "");
    n.environment = j.value("environment", "");
    n.task = j.value("task", "");
    n.ref = j.value("ref", "");
    n.sha = j.value("sha", "");
    n.deployment_description = j.value("deployment_description", "");
    n.creator = j.value("creator", "");
    n.chat_user = j.value("chat_user", "");
    n.room = j.value("room", "");
    if (auto i = j.find("changes"); i != j.end())
      n.changes = changes_of(*i);
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string{"a notice is unreadable: "}
                             + e.what());
  }
  return n;
}

std::string notice_row_body(const deployment_notice& n,
                            const std::string& base) {
  json body = {{"notice", notice_json(n)}, {"base", base}};
  // A description may hold bytes that are not UTF-8: a replacement
  // character beats a notice that cannot be written.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace heaven
