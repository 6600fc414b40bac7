#include "base/sigv4.hpp"

#include <algorithm>
#include <array>
#include <ctime>
#include <map>
#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>

#include "base/text.hpp"
#include "base/validate.hpp"

namespace heaven::sigv4 {

namespace {

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

/// Overwrites `s` before it is freed: it holds key material.
void wipe(std::string& s) {
  if (!s.empty())
    OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return lower(c); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(),
                       [](char x, char y) { return lower(x) == lower(y); });
}

/// Removes "." and ".." segments and empty segments (repeated slashes), the
/// way AWS does (RFC 3986 section 5.2.4 plus slash collapsing). A trailing
/// slash stays when something is left before it.
std::string normalized_path(std::string_view path) {
  std::vector<std::string_view> kept;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    auto segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!kept.empty())
        kept.pop_back();
    } else if (!segment.empty() && segment != ".") {
      kept.push_back(segment);
    }
    start = end + 1;
  }
  std::string out = "/";
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (i > 0)
      out += '/';
    out += kept[i];
  }
  if (!kept.empty() && path.back() == '/')
    out += '/';
  return out;
}

std::string canonical_uri(std::string_view path, bool normalize) {
  if (path.empty())
    return "/";
  if (normalize)
    return percent_encode(normalized_path(path), true);
  return percent_encode(path, true);
}

/// Query pairs decoded, re-encoded and sorted by name, then value.
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::size_t start = 0;
  while (start < query.size()) {
    auto end = query.find('&', start);
    if (end == std::string_view::npos)
      end = query.size();
    auto item = query.substr(start, end - start);
    if (!item.empty()) {
      auto eq = item.find('=');
      auto name = item.substr(0, eq);
      auto value = eq == std::string_view::npos ? std::string_view{}
                                                : item.substr(eq + 1);
      pairs.emplace_back(percent_encode(percent_decode(name), false),
                         percent_encode(percent_decode(value), false));
    }
    start = end + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (auto& [name, value] : pairs) {
    if (!out.empty())
      out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

/// One line of a header value: trimmed, inner runs of blanks made one space.
std::string collapse_blanks(std::string_view line) {
  std::string out;
  bool pending_space = false;
  for (char c : line) {
    if (is_blank(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space)
      out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

/// A header value as SigV4 signs it. A value folded over several lines
/// becomes its trimmed lines joined with ',' (AWS's get-header-value-multiline
/// case).
std::string canonical_value(std::string_view value) {
  std::string out;
  std::size_t start = 0;
  while (start <= value.size()) {
    auto end = value.find('\n', start);
    if (end == std::string_view::npos)
      end = value.size();
    auto line = collapse_blanks(value.substr(start, end - start));
    if (!line.empty()) {
      if (!out.empty())
        out += ',';
      out += line;
    }
    start = end + 1;
  }
  return out;
}

/// Lower-cased names, in order, each with its values joined by ','.
std::map<std::string, std::string> header_map(const string_pairs& headers) {
  std::map<std::string, std::string> out;
  for (auto& [name, value] : headers) {
    auto [i, fresh] = out.try_emplace(lower(name));
    if (!fresh)
      i->second += ',';
    i->second += canonical_value(value);
  }
  return out;
}

std::string signed_headers(const std::map<std::string, std::string>& map) {
  std::string out;
  for (auto& kvp : map) {
    if (!out.empty())
      out += ';';
    out += kvp.first;
  }
  return out;
}

std::string scope(std::string_view amz_date, std::string_view region,
                  std::string_view service) {
  std::string out{amz_date.substr(0, 8)};
  out += '/';
  out += region;
  out += '/';
  out += service;
  out += "/aws4_request";
  return out;
}

/// HMAC("AWS4" + secret, date) -> region -> service -> "aws4_request".
std::string signing_key(std::string_view secret, std::string_view amz_date,
                        std::string_view region, std::string_view service) {
  std::string key = "AWS4";
  key += secret;
  auto k_date = hmac_sha256(key, amz_date.substr(0, 8));
  auto k_region = hmac_sha256(k_date, region);
  auto k_service = hmac_sha256(k_region, service);
  auto k_signing = hmac_sha256(k_service, "aws4_request");
  wipe(key);
  wipe(k_date);
  wipe(k_region);
  wipe(k_service);
  return k_signing;
}

/// The parts of an absolute http(s) URL that signing needs.
struct url_parts {
  /// The `Host` header value: the host, plus ":port" if it isn't the
  /// scheme's default.
  std::string host;
  std::string path;
  std::string query;
};

url_parts parse_url(std::string_view url) {
  auto colon = url.find("://");
  if (colon == std::string_view::npos)
    throw std::invalid_argument("sigv4: not an absolute URL");
  auto scheme = lower(url.substr(0, colon));
  if (scheme != "http" && scheme != "https")
    throw std::invalid_argument("sigv4: not an http(s) URL");
  auto rest = url.substr(colon + 3);
  if (auto hash = rest.find('#'); hash != std::string_view::npos)
    rest = rest.substr(0, hash);
  auto authority_end = rest.find_first_of("/?");
  auto authority = rest.substr(0, authority_end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos)
    authority = authority.substr(at + 1);
  if (authority.empty())
    throw std::invalid_argument("sigv4: URL without a host");
  // The port follows the last ':' unless that ':' is inside an IPv6 "[...]".
  std::string_view host = authority;
  std::string_view port;
  auto port_colon = authority.rfind(':');
  if (port_colon != std::string_view::npos
      && authority.find(']', port_colon) == std::string_view::npos) {
    host = authority.substr(0, port_colon);
    port = authority.substr(port_colon + 1);
  }
  url_parts out;
  out.host = lower(host);
  auto default_port = scheme == "https" ? "443" : "80";
  if (!port.empty() && port != default_port) {
    out.host += ':';
    out.host += port;
  }
  auto target = authority_end == std::string_view::npos
                  ? std::string_view{}
                  : rest.substr(authority_end);
  auto question = target.find('?');
  auto path = target.substr(0, question);
  out.path.assign(path.empty() ? std::string_view{"/"} : path);
  if (question != std::string_view::npos)
    out.query = std::string{target.substr(question + 1)};
  return out;
}

/// Sets `name` to `value`: drops every header of that name (in any case)
/// and appends the new one.
void set_header(string_pairs& headers, std::string_view name,
                std::string value) {
  std::erase_if(headers, [&](auto& kvp) { return iequals(kvp.first, name); });
  headers.emplace_back(std::string{name}, std::move(value));
}

} // namespace

std::string amz_date(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(
    std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  auto n = std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

std::string canonical_request(const request& req, bool normalize_path) {
  auto headers = header_map(req.headers);
  std::string out = req.method;
  out += '\n';
  out += canonical_uri(req.path, normalize_path);
  out += '\n';
  out += canonical_query(req.query);
  out += '\n';
  for (auto& [name, value] : headers) {
    out += name;
    out += ':';
    out += value;
    out += '\n';
  }
  out += '\n';
  out += signed_headers(headers);
  out += '\n';
  out += req.payload_hash;
  return out;
}

std::string string_to_sign(std::string_view canonical,
                           std::string_view amz_date, std::string_view region,
                           std::string_view service) {
  std::string out{algorithm};
  out += '\n';
  out += amz_date;
  out += '\n';
  out += scope(amz_date, region, service);
  out += '\n';
  out += sha256_hex(canonical);
  return out;
}

std::string authorization(const request& req, const credentials& creds,
                          std::string_view amz_date, std::string_view region,
                          std::string_view service, bool normalize_path) {
  auto sts = string_to_sign(canonical_request(req, normalize_path), amz_date,
                            region, service);
  auto key = signing_key(creds.secret_access_key, amz_date, region, service);
  auto signature = hmac_sha256(key, sts);
  wipe(key);
  std::string out{algorithm};
  out += " Credential=";
  out += creds.access_key_id;
  out += '/';
  out += scope(amz_date, region, service);
  out += ", SignedHeaders=";
  out += signed_headers(header_map(req.headers));
  out += ", Signature=";
  out += to_hex(signature);
  return out;
}

/// Throws std::invalid_argument when `req.url` is not an absolute http(s)
/// URL with a host.
void sign(http_request& req, const credentials& creds, std::string_view region,
          std::string_view service, std::chrono::system_clock::time_point now) {
  auto url = parse_url(req.url);
  auto date = amz_date(now);
  bool s3 = service == "s3";
  auto payload_hash = sha256_hex(req.body);
  // An old signature must not be signed over (re-signing a retried request).
  std::erase_if(req.headers,
                [](auto& kvp) { return iequals(kvp.first, "Authorization"); });
  set_header(req.headers, "Host", url.host);
  set_header(req.headers, "X-Amz-Date", date);
  if (s3)
    set_header(req.headers, "x-amz-content-sha256", payload_hash);
  if (!creds.session_token.empty())
    set_header(req.headers, "X-Amz-Security-Token", creds.session_token);
  request r{req.method, percent_decode(url.path), url.query, req.headers,
            payload_hash};
  req.headers.emplace_back("Authorization",
                           authorization(r, creds, date, region, service, !s3));
}

} // namespace heaven::sigv4
