/// What the webhook targets do with a JSON body: every parser heaven runs on
/// a delivery, and the promises their answers keep.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "base/webhook.hpp"
#include "tests/fuzz/fuzz.hpp"

namespace heaven::fuzz {

inline void parse_events(std::string_view body) {
  bool object = check_json_object(body).empty();
  auto d = parse_deployment(body);
  if (auto* req = std::get_if<deployment_request>(&d)) {
    require(object, "parse_deployment took a body that is no JSON object");
    // The payload is stored and parsed again later: it must be an object.
    require(check_json_object(req->payload_json).empty(),
            "deployment payload_json is not a JSON object");
    require(!req->sha.empty() && !req->ref.empty() && !req->environment.empty()
              && !req->repo.empty() && !req->clone_url.empty()
              && !req->task.empty(),
            "parse_deployment left a required field empty");
  } else {
    require(!std::get<std::string>(d).empty(),
            "parse_deployment failed without saying why");
  }
  auto s = parse_commit_status(body);
  if (auto* ev = std::get_if<commit_status_event>(&s)) {
    require(object, "parse_commit_status took a body that is no JSON object");
    require(!ev->sha.empty() && !ev->state.empty() && !ev->repo.empty()
              && !ev->default_branch.empty(),
            "parse_commit_status left a required field empty");
    for (auto& branch : ev->branches)
      require(!branch.empty(), "parse_commit_status kept an empty branch");
  } else {
    require(!std::get<std::string>(s).empty(),
            "parse_commit_status failed without saying why");
  }
  auto n = parse_deployment_status(body);
  if (auto* notice = std::get_if<deployment_notice>(&n)) {
    require(object,
            "parse_deployment_status took a body that is no JSON object");
    require(!notice->state.empty() && !notice->sha.empty()
              && !notice->ref.empty() && !notice->environment.empty()
              && !notice->repo.empty() && !notice->chat_user.empty()
              && !notice->task.empty(),
            "parse_deployment_status left a required field empty");
  } else {
    require(!std::get<std::string>(n).empty(),
            "parse_deployment_status failed without saying why");
  }
  auto repo = repository_full_name(body);
  if (!object)
    require(repo.empty(), "repository_full_name read a broken body");
}

} // namespace heaven::fuzz
