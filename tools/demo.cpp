#include "tools/demo.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <caf/actor.hpp>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "actors/process.hpp"
#include "base/log_book.hpp"
#include "base/webhook.hpp"

namespace fs = std::filesystem;

namespace heaven {

namespace {

/// Runs git with `args` in `dir`; returns its stdout's first line, or
/// nullopt (after printing why) when it fails.
std::optional<std::string> git(const std::string& dir,
                               std::vector<std::string> args) {
  // Output goes to a file: the demo runs outside any actor.
  auto capture = dir + "/../.git-demo-out";
  process_spec spec;
  spec.cwd = dir;
  spec.env = current_environment();
  spec.argv = {"sh",
               "-c",
               "\"$@\" > '" + capture + "' 2>&1",
               "git",
               "git",
               "-c",
               "user.name=heaven demo",
               "-c",
               "user.email=demo@heaven.invalid"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  auto res = run_process(spec, line_sink{}, process_watcher{});
  std::ifstream in{capture};
  std::string first;
  std::getline(in, first);
  std::string rest{std::istreambuf_iterator<char>(in), {}};
  fs::remove(capture);
  if (res.code != 0) {
    std::cerr << "demo: git " << args[0] << " failed: " << first << rest
              << res.error << "\n";
    return std::nullopt;
  }
  return first;
}

size_t print_chunk(char* data, size_t size, size_t n, void*) {
  std::cout.write(data, static_cast<std::streamsize>(size * n));
  std::cout.flush();
  return size * n;
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

long http(const std::string& method, const std::string& url,
          const std::vector<std::string>& headers, const std::string& body,
          std::string* out, bool stream) {
  auto curl = curl_easy_init();
  curl_slist* list = nullptr;
  for (auto& h : headers)
    list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, long(body.size()));
  }
  if (stream) {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, print_chunk);
  } else {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
  }
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return status;
}

std::string random_guid() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%08x%04x", rd(),
                rd() & 0xFFFF, (rd() & 0x0FFF) | 0x4000,
                (rd() & 0x3FFF) | 0x8000, rd(), rd() & 0xFFFF);
  return buf;
}

} // namespace

bool run_demo(const settings& cfg, uint16_t port) {
  auto repo = fs::absolute(cfg.data_dir + "/demo/example").lexically_normal();
  auto source = fs::path{HEAVEN_SOURCE_DIR} / "conf/example";
  bool fresh = !fs::exists(repo / ".git");
  fs::create_directories(repo);
  fs::copy(source, repo,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  auto stamp = std::to_string(
    std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
  std::ofstream{repo / "VERSION", std::ios::trunc} << stamp << "\n";
  if (fresh && !git(repo, {"init", "--quiet", "--initial-branch=main"}))
    return false;
  if (!git(repo, {"add", "--all"})
      || !git(repo, {"commit", "--quiet", "--allow-empty", "-m",
                     "Example release " + stamp}))
    return false;
  auto sha = git(repo, {"rev-parse", "HEAD"});
  if (!sha)
    return false;
  auto github_id = static_cast<int64_t>(std::time(nullptr));
  nlohmann::json event = {
    {"action", "created"},
    {"deployment",
     {{"id", github_id},
      {"sha", *sha},
      {"ref", "main"},
      {"task", "deploy"},
      {"environment", "demo"},
      {"description", "heaven's bundled example"},
      {"creator", {{"login", "heaven-demo"}}},
      {"payload",
       {{"name", "example"},
        {"notify", {{"room", "ops"}, {"user", "heaven-demo"}}},
        {"config",
         {{"provider", "shell"}, {"deploy_script", "script/deploy"}}}}}}},
    {"repository",
     {{"name", "example"},
      {"full_name", "heaven-demo/example"},
      {"clone_url", "file://" + repo.string()}}},
    {"sender", {{"login", "heaven-demo"}}},
  };
  auto body = event.dump();
  auto base = "http://127.0.0.1:" + std::to_string(port);
  std::cout << "\nDemo: deploying " << sha->substr(0, 7) << " of "
            << repo.string() << " with a signed deployment event...\n";
  std::string answer;
  auto status = http("POST", base + "/events",
                     {"Content-Type: application/json",
                      "X-GitHub-Event: deployment",
                      "X-GitHub-Delivery: " + random_guid(),
                      "X-Hub-Signature-256: sha256="
                        + hmac_sha256_hex(cfg.webhook_secret, body)},
                     body, &answer, false);
  std::cout << "POST /events answered " << status << " " << answer << "\n";
  if (status != 201)
    return false;
  // Find heaven's id for the event, then follow its live log.
  const std::string bearer = "Authorization: Bearer " + cfg.api_token;
  int64_t id = 0;
  for (int i = 0; i < 100 && id == 0; ++i) {
    std::string list;
    http("GET", base + "/deployments?limit=20", {bearer}, "", &list, false);
    auto parsed = nlohmann::json::parse(list, nullptr, false);
    if (parsed.is_array())
      for (auto& d : parsed)
        if (d.value("github_id", int64_t{0}) == github_id)
          id = d.value("id", int64_t{0});
    if (id == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (id == 0) {
    std::cerr << "demo: the deployment did not show up in /deployments\n";
    return false;
  }
  std::ifstream key_file{cfg.data_dir + "/log.key"};
  std::string key;
  std::getline(key_file, key);
  auto url = base + "/deployments/" + std::to_string(id)
             + "/log?token=" + log_token(key, id);
  std::cout << "Live log (" << cfg.public_url << "/deployments/" << id
            << "/log?token=...):\n\n";
  http("GET", url, {}, "", nullptr, true);
  std::string list;
  http("GET", base + "/deployments?limit=20", {bearer}, "", &list, false);
  auto parsed = nlohmann::json::parse(list, nullptr, false);
  if (parsed.is_array())
    for (auto& d : parsed)
      if (d.value("id", int64_t{0}) == id)
        std::cout << "\nDeployment " << id
                  << " ended: " << d.value("state", std::string{}) << "\n";
  return true;
}

} // namespace heaven
