#include "tools/support/http_call.hpp"

#include <algorithm>
#include <cctype>
#include <mutex>

#include <curl/curl.h>

namespace heaven::test {

namespace {

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& headers = *static_cast<string_pairs*>(user);
  std::string_view line{data, size * count};
  // A new status line starts a new response (redirect, 100 Continue): only
  // the last response's headers are kept.
  if (line.substr(0, 5) == "HTTP/") {
    headers.clear();
    return size * count;
  }
  auto colon = line.find(':');
  if (colon == line.npos)
    return size * count;
  std::string name{line.substr(0, colon)};
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  auto value = line.substr(colon + 1);
  auto first = value.find_first_not_of(" \t");
  auto last = value.find_last_not_of(" \t\r\n");
  value = first == value.npos ? std::string_view{}
                              : value.substr(first, last - first + 1);
  headers.emplace_back(std::move(name), std::string{value});
  return size * count;
}

} // namespace

http_response http_call(const std::string& method, const std::string& url,
                        const string_pairs& headers, const std::string& body,
                        long timeout_ms) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  http_response result;
  auto* curl = curl_easy_init();
  if (curl == nullptr) {
    result.error = "curl_easy_init failed";
    return result;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* list = nullptr;
  for (auto& [name, value] : headers)
    list = curl_slist_append(list, (name + ": " + value).c_str());
  // Tests compare recorded headers exactly; no 100-continue dance.
  list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &result.headers);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method == "GET" && body.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty() || method != "DELETE") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(body.size()));
    }
  }
  auto rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    result.status = static_cast<int>(status);
  } else {
    result.status = 0;
    result.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    result.headers.clear();
    result.body.clear();
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return result;
}

std::vector<std::string> headers_of(const http_response& res,
                                    const std::string& name) {
  std::vector<std::string> out;
  for (auto& [k, v] : res.headers)
    if (k == name)
      out.push_back(v);
  return out;
}

} // namespace heaven::test
