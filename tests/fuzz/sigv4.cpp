// Fuzz target: SigV4 signing of a request. The input reads like an HTTP
// request: "METHOD URL", then "Name: value" header lines (a line starting
// with a blank continues the value on a new line), an empty line, and the
// body. It is signed for S3 and for Elastic Beanstalk, and its pieces go
// through canonical_request with and without path normalisation.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "base/sigv4.hpp"
#include "base/text.hpp"
#include "tests/fuzz/fuzz.hpp"

using namespace heaven;
using namespace heaven::fuzz;

namespace {

std::string authorization_of(const http_request& req) {
  std::string out;
  for (auto& [name, value] : req.headers)
    if (name == "Authorization") {
      require(out.empty(), "sign left two Authorization headers");
      out = value;
    }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = text(data, size);
  auto first = take_until(in, '\n');
  http_request req;
  req.method = std::string{take_until(first, ' ')};
  req.url = std::string{first};
  while (!in.empty()) {
    auto line = take_until(in, '\n');
    if (line.empty())
      break;
    if ((line.front() == ' ' || line.front() == '\t') && !req.headers.empty()) {
      req.headers.back().second += '\n';
      req.headers.back().second += line;
      continue;
    }
    auto colon = line.find(':');
    req.headers.emplace_back(std::string{line.substr(0, colon)},
                             colon == std::string_view::npos
                               ? std::string{}
                               : std::string{line.substr(colon + 1)});
  }
  req.body = std::string{in};

  sigv4::credentials creds{"AKIDEXAMPLE",
                           "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  auto now = std::chrono::system_clock::time_point{
    std::chrono::seconds{1440938160}};
  for (auto service : {"s3", "elasticbeanstalk"}) {
    auto signed_once = req;
    try {
      sigv4::sign(signed_once, creds, "us-east-1", service, now);
    } catch (const std::invalid_argument&) {
      continue; // Not an absolute http(s) URL: refused, as documented.
    }
    auto first_signature = authorization_of(signed_once);
    require(!first_signature.empty(), "sign added no Authorization header");
    // A retried request is signed again: the old signature must not count.
    auto signed_twice = signed_once;
    sigv4::sign(signed_twice, creds, "us-east-1", service, now);
    require(authorization_of(signed_twice) == first_signature,
            "signing a signed request again changed its signature");
  }

  // The pieces as a caller could hand them over directly.
  auto qmark = req.url.find('?');
  sigv4::request r{req.method, req.url.substr(0, qmark),
                   qmark == std::string::npos ? std::string{}
                                              : req.url.substr(qmark + 1),
                   req.headers, sha256_hex(req.body)};
  for (bool normalize : {true, false}) {
    auto canonical = sigv4::canonical_request(r, normalize);
    require(!canonical.empty(), "empty canonical request");
    sigv4::authorization(r, creds, "20150830T123600Z", "us-east-1", "service",
                         normalize);
  }
  auto encoded = percent_encode(req.body);
  for (char c : encoded)
    require((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
              || c == '~' || c == '%',
            "percent_encode left a reserved character");
  return 0;
}
