/// A blocking HTTP client for tests (libcurl easy).
#pragma once

#include <string>
#include <vector>

#include "messages/types.hpp"

namespace heaven::test {

/// Performs one request and returns the answer (status 0 and `error` on
/// network failure). Header names in the response are lower-cased.
http_response http_call(const std::string& method, const std::string& url,
                        const string_pairs& headers = {},
                        const std::string& body = "", long timeout_ms = 30000);

/// Every value of header `name` (lower-case) in `res`, in order.
std::vector<std::string> headers_of(const http_response& res,
                                    const std::string& name);

} // namespace heaven::test
