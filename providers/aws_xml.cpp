#include "providers/aws_xml.hpp"

#include <algorithm>

#include <pugixml.hpp>

#include "base/validate.hpp"

namespace heaven {

namespace {

eb_environment read_environment(pugi::xml_node node) {
  eb_environment env;
  env.found = static_cast<bool>(node);
  env.id = node.child_value("EnvironmentId");
  env.status = node.child_value("Status");
  env.health = node.child_value("Health");
  env.version_label = node.child_value("VersionLabel");
  env.cname = node.child_value("CNAME");
  return env;
}

} // namespace

aws_error parse_aws_error(const std::string& body) {
  pugi::xml_document doc;
  if (body.empty() || !doc.load_string(body.c_str()))
    return {};
  auto err = doc.child("ErrorResponse").child("Error");
  if (!err)
    err = doc.child("Response").child("Errors").child("Error");
  if (!err)
    err = doc.child("Error");
  return {err.child_value("Code"), err.child_value("Message")};
}

std::string aws_failure_reason(const http_response& res) {
  if (res.status == 0)
    return res.error.empty() ? "no answer" : res.error;
  auto err = parse_aws_error(res.body);
  if (err.code.empty())
    return "HTTP " + std::to_string(res.status);
  auto text = err.code;
  if (!err.message.empty())
    text += ": " + err.message;
  return truncate_description(text, 500);
}

eb_environment parse_environments(const std::string& body,
                                  const std::string& id) {
  pugi::xml_document doc;
  doc.load_string(body.c_str());
  auto list = doc.child("DescribeEnvironmentsResponse")
                .child("DescribeEnvironmentsResult")
                .child("Environments");
  eb_environment fallback;
  for (auto member : list.children("member")) {
    auto env = read_environment(member);
    if (!id.empty() && env.id == id)
      return env;
    if (id.empty() && env.status != "Terminated")
      return env;
    if (!fallback.found)
      fallback = env;
  }
  return fallback;
}

eb_environment parse_updated_environment(const std::string& body) {
  pugi::xml_document doc;
  doc.load_string(body.c_str());
  return read_environment(
    doc.child("UpdateEnvironmentResponse").child("UpdateEnvironmentResult"));
}

std::vector<eb_event> parse_events(const std::string& body) {
  pugi::xml_document doc;
  doc.load_string(body.c_str());
  auto list = doc.child("DescribeEventsResponse")
                .child("DescribeEventsResult")
                .child("Events");
  std::vector<eb_event> events;
  for (auto member : list.children("member"))
    events.push_back({member.child_value("EventDate"),
                      member.child_value("Severity"),
                      member.child_value("Message")});
  // AWS lists the newest first; ISO 8601 dates of one format sort as text.
  std::reverse(events.begin(), events.end());
  std::stable_sort(events.begin(), events.end(),
                   [](const eb_event& a, const eb_event& b) {
                     return a.date < b.date;
                   });
  return events;
}

} // namespace heaven
