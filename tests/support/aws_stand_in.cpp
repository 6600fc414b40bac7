#include "tests/support/aws_stand_in.hpp"

#include <algorithm>
#include <ctime>
#include <regex>

#include "base/sigv4.hpp"
#include "base/text.hpp"

namespace heaven::test {

namespace {

/// `s` with %XX escapes decoded and '+' read as a space.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(
        std::stoi(std::string{s.substr(i + 1, 2)}, nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

/// The pieces of `s` between the `sep`s (one piece when there is none).
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (auto pos = s.find(sep); pos != std::string::npos;
       pos = s.find(sep, start)) {
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

/// Why the credential scope of an Authorization header does not name
/// `account` and `service`; "" when it does.
std::string scope_problem(const std::smatch& m, const std::string& service,
                          const aws_account& account) {
  if (m[1] != account.key_id)
    return "wrong access key id";
  if (m[3] != account.region)
    return "signed for region " + m[3].str() + ", not " + account.region;
  if (m[4] != service)
    return "signed for service " + m[4].str() + ", not " + service;
  return "";
}

/// The request `r` as the signer saw it, signing the headers `names`.
sigv4::request as_signed(const recorded_request& r,
                         const std::vector<std::string>& names) {
  sigv4::request req;
  req.method = r.method;
  auto question = r.target.find('?');
  req.path = percent_decode(r.target.substr(0, question));
  if (question != std::string::npos)
    req.query = r.target.substr(question + 1);
  for (auto& name : names)
    req.headers.emplace_back(name, r.header(name));
  req.payload_hash = sha256_hex(r.body);
  return req;
}

} // namespace

std::map<std::string, std::string> parse_form(const std::string& body) {
  std::map<std::string, std::string> out;
  for (auto& pair : split(body, '&'))
    if (auto eq = pair.find('='); eq != std::string::npos)
      out[percent_decode(pair.substr(0, eq))] = percent_decode(
        pair.substr(eq + 1));
  return out;
}

std::string signature_problem(const recorded_request& r,
                              const std::string& service,
                              const aws_account& account) {
  static const std::regex shape{
    "AWS4-HMAC-SHA256 Credential=([^/]+)/(\\d{8})/([^/]+)/([^/]+)/"
    "aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}"};
  auto auth = r.header("authorization");
  std::smatch m;
  if (!std::regex_match(auth, m, shape))
    return "malformed Authorization";
  if (auto why = scope_problem(m, service, account); !why.empty())
    return why;
  auto date = r.header("x-amz-date");
  if (date.substr(0, 8) != m[2])
    return "x-amz-date does not match the credential scope";
  auto names = split(m[5].str(), ';');
  auto is_signed = [&](const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  if (!is_signed("host") || !is_signed("x-amz-date"))
    return "host and x-amz-date must be signed";
  auto req = as_signed(r, names);
  if (service == "s3"
      && (!is_signed("x-amz-content-sha256")
          || r.header("x-amz-content-sha256") != req.payload_hash))
    return "x-amz-content-sha256 missing or wrong";
  auto expected = sigv4::authorization(
    req, sigv4::credentials{account.key_id, account.secret, ""}, date,
    account.region, service, service != "s3");
  return expected == auth ? "" : "signature does not match";
}

std::optional<stub_response>
refuse_bad_signature(const recorded_request& r, const std::string& service,
                     const aws_account& account,
                     std::vector<std::string>& rejected) {
  auto why = signature_problem(r, service, account);
  if (why.empty())
    return std::nullopt;
  rejected.push_back(r.method + " " + r.target + ": " + why);
  return service == "s3" ? s3_error(403, "SignatureDoesNotMatch", why)
                         : eb_error(403, "SignatureDoesNotMatch", why);
}

stub_response xml(int status, std::string body) {
  return {status, {{"Content-Type", "text/xml"}}, std::move(body)};
}

stub_response eb_answer(const std::string& action, const std::string& inner) {
  return xml(200, "<" + action + "Response xmlns=\"" + eb_namespace + "\"><"
                    + action + "Result>" + inner + "</" + action
                    + "Result><ResponseMetadata><RequestId>stand-in-1"
                      "</RequestId></ResponseMetadata></"
                    + action + "Response>");
}

stub_response eb_error(int status, const std::string& code,
                       const std::string& message) {
  return xml(status, "<ErrorResponse xmlns=\"" + std::string{eb_namespace}
                       + "\"><Error><Type>Sender</Type><Code>" + code
                       + "</Code><Message>" + message
                       + "</Message></Error><RequestId>stand-in-1"
                         "</RequestId></ErrorResponse>");
}

stub_response s3_error(int status, const std::string& code,
                       const std::string& message) {
  return xml(status, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
                     "<Code>"
                       + code + "</Code><Message>" + message
                       + "</Message><RequestId>stand-in-1</RequestId>"
                         "</Error>");
}

std::string environment_fields(const eb_environment& env) {
  return "<EnvironmentName>" + env.name + "</EnvironmentName><EnvironmentId>"
         + env.id + "</EnvironmentId><ApplicationName>" + env.application
         + "</ApplicationName><VersionLabel>" + env.version
         + "</VersionLabel><Status>" + env.status + "</Status><Health>"
         + env.health + "</Health><CNAME>" + env.cname + "</CNAME>";
}

std::string environment_member(const eb_environment& env) {
  return "<member>" + environment_fields(env) + "</member>";
}

std::string events_xml(const std::vector<eb_event>& events, int polls,
                       const std::string& since, const std::string& application,
                       const std::string& environment) {
  std::string members;
  auto from = since.substr(0, 19);
  for (auto e = events.rbegin(); e != events.rend(); ++e)
    if (e->from_poll <= polls && e->date.substr(0, 19) >= from)
      members += "<member><EventDate>" + e->date + "</EventDate><Message>"
                 + e->message + "</Message><Severity>" + e->severity
                 + "</Severity><ApplicationName>" + application
                 + "</ApplicationName><EnvironmentName>" + environment
                 + "</EnvironmentName></member>";
  return "<Events>" + members + "</Events>";
}

std::string aws_date(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return std::string(buf, n);
}

} // namespace heaven::test
