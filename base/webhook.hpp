/// Parsing GitHub webhook deliveries (simdjson stays inside webhook.cpp and
/// webhook_json.cpp). The envelope (signature, form encoding) is checked by
/// base/delivery.hpp, included here for the callers that need both.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/delivery.hpp"
#include "messages/types.hpp"

namespace heaven {

/// Parses a `deployment` event. On success returns the request; otherwise
/// a message naming what is wrong ("malformed JSON: ...",
/// "missing field deployment.sha", "deployment.environment is longer than
/// 255 characters", "... contains a control character"). `deployment.payload`
/// may be an object or a JSON string holding an object. Every name the event
/// carries is held to the bounds in `limits` (validate.hpp) and may hold no
/// control character; so may no key or string under the payload's `config`,
/// `aws` and `notify`. The parsers below apply the same rules to the fields
/// they read.
std::variant<deployment_request, std::string>
parse_deployment(std::string_view body);

/// Parses a `status` event (a commit status changed). On success returns the
/// event; otherwise a message naming what is wrong, as parse_deployment does.
/// Required: `sha`, `state`, `repository.full_name`,
/// `repository.default_branch`. `branches` may be missing (no branches); the
/// author is `commit.author.login` (`commit.author` may be null), else
/// `sender.login`, else "".
std::variant<commit_status_event, std::string>
parse_commit_status(std::string_view body);

/// Parses a `deployment_status` event into what chat rooms are told. On
/// success returns the notice (with `changes` empty); otherwise a message
/// naming what is wrong, as parse_deployment does. Required:
/// `deployment_status.state`, `deployment.id`, `deployment.sha`,
/// `deployment.ref`, `deployment.environment`, `repository.full_name`; the
/// others fall back as documented on deployment_notice. `deployment.payload`
/// may be an object or a JSON string holding an object; its `notify.user`,
/// `notify.user_name` and `notify.room` may be strings or integers (some chat
/// adapters use numeric ids).
std::variant<deployment_notice, std::string>
parse_deployment_status(std::string_view body);

/// `repository.full_name` of any event, or "" when the body has none (an
/// organization's `ping`) or is not the JSON it should be.
std::string repository_full_name(std::string_view body);

/// The `installation.id` of an event a GitHub App receives (0 when it names
/// none, or `body` is not JSON).
int64_t installation_id(std::string_view body);

/// Checks that `body` is one well-formed JSON object; returns "" when it is,
/// else what is wrong.
std::string check_json_object(std::string_view body);

} // namespace heaven
