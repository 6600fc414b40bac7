#include "tools/loadtest_events.hpp"

#include <array>
#include <cstdio>
#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "base/text.hpp"

namespace heaven::loadtest {

namespace {

constexpr std::array<std::string_view, 4> kinds = {
  "deployment", "deployment_status", "status", "ping"};

/// The repository every event names, cloned from `clone_url`: one heaven
/// has not heard of, so that it is active (not disabled) on a fresh heaven.
std::string repository_json(std::string_view clone_url) {
  return std::string{R"("repository":{"id":1,"name":"app",)"
                     R"("full_name":"loadtest/app",)"
                     R"("html_url":"https://github.com/loadtest/app",)"
                     R"("clone_url":")"}
         + std::string{clone_url}
         + R"(","default_branch":"main","owner":{"login":"loadtest"}},)"
           R"("sender":{"login":"loadtest"}})";
}

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  int len = std::snprintf(buf, sizeof(buf), "%llu",
                          static_cast<unsigned long long>(n));
  out.append(buf, static_cast<std::size_t>(len));
}

/// `deployment` as a deployment or deployment_status event carries it,
/// with `payload` (JSON).
void append_deployment(std::string& out, uint64_t id, std::string_view sha,
                       std::string_view payload = "{}") {
  out += R"("deployment":{"id":)";
  append_number(out, id);
  out += R"(,"url":"https://api.github.com/repos/loadtest/app/deployments/)";
  append_number(out, id);
  out += R"(","sha":")";
  out += sha;
  out += R"(","ref":"main","task":"deploy","environment":"production",)"
         R"("description":"heaven loadtest","creator":{"login":"loadtest"},)"
         R"("payload":)";
  out += payload;
  out += "},";
}

} // namespace

std::optional<event_choice> parse_event_choice(std::string_view text) {
  for (std::size_t i = 0; i < kinds.size(); ++i)
    if (text == kinds[i])
      return static_cast<event_choice>(i);
  if (text == "mix")
    return event_choice::mix;
  return std::nullopt;
}

/// One keyed HMAC-SHA256 context, re-initialised for each body (cheaper
/// than keying a fresh one each time).
struct request_maker::impl {
  std::string host;
  std::string path;
  event_choice choice;
  uint64_t run_id;
  uint64_t id_base;
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  std::string body;
  std::string repo_json = repository_json(
    "https://github.com/loadtest/app.git");
  std::optional<deploy_plan> plan;

  std::string provider_of(uint64_t n) const {
    if (!plan || plan->providers.empty())
      return {};
    // In a mix, every fourth request is a deployment.
    auto k = choice == event_choice::mix ? n / kinds.size() : n;
    return plan->providers[k % plan->providers.size()];
  }

  /// A deployment's payload: under a plan, its provider's config and an
  /// app of its own (deployments of one app would wait for each other).
  std::string payload_of(uint64_t n) const {
    auto provider = provider_of(n);
    if (provider.empty())
      return "{}";
    std::string app = "app-" + std::to_string(n);
    std::string config = R"({"provider":")" + provider + R"(")";
    if (provider == "shell")
      config += R"(,"deploy_script":"script/deploy")";
    if (provider == "heroku")
      config += R"(,"heroku_name":"loadtest-)" + app + R"(")";
    return R"({"name":")" + app + R"(","config":)" + config + "}}";
  }

  std::string_view kind_of(uint64_t n) const {
    if (choice == event_choice::mix)
      return kinds[n % kinds.size()];
    return kinds[static_cast<std::size_t>(choice)];
  }

  void make_body(uint64_t n, std::string_view kind) {
    body.clear();
    uint64_t id = id_base + n;
    char sha[48];
    std::snprintf(sha, sizeof(sha), "%016llx%024llx",
                  static_cast<unsigned long long>(run_id),
                  static_cast<unsigned long long>(n));
    std::string_view commit = plan ? std::string_view{plan->sha} : sha;
    if (kind == "deployment") {
      body += R"({"action":"created",)";
      append_deployment(body, id, commit, payload_of(n));
    } else if (kind == "deployment_status") {
      body += R"({"action":"created","deployment_status":{"id":)";
      append_number(body, id);
      body += R"(,"state":"success","description":"heaven loadtest",)"
              R"("target_url":"https://ci.example.com/loadtest",)"
              R"("creator":{"login":"loadtest"}},)";
      append_deployment(body, id, sha);
    } else if (kind == "status") {
      body += R"({"id":)";
      append_number(body, id);
      body += R"(,"sha":")";
      body += sha;
      body += R"(","name":"loadtest/app","context":"ci/loadtest",)"
              R"("description":"heaven loadtest","state":"pending",)"
              R"("commit":{"author":{"login":"loadtest"}},)"
              R"("branches":[{"name":"main","commit":{"sha":")";
      body += sha;
      body += R"("}}],)";
    } else {
      body += R"({"zen":"Keep it logically awesome.","hook_id":)";
      append_number(body, id);
      body += ",";
    }
    body += repo_json;
  }

  std::string sign() {
    unsigned char md[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1
        || EVP_MAC_update(ctx,
                          reinterpret_cast<const unsigned char*>(body.data()),
                          body.size())
             != 1
        || EVP_MAC_final(ctx, md, &len, sizeof(md)) != 1)
      throw std::runtime_error("HMAC-SHA256 failed");
    return to_hex(md, len);
  }
};

request_maker::request_maker(std::string host_header, std::string path,
                             event_choice choice, std::string secret,
                             uint64_t run_id)
  : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  d.host = std::move(host_header);
  d.path = std::move(path);
  d.choice = choice;
  d.run_id = run_id;
  // Ids below 2^53 (JSON numbers any reader takes), apart per run.
  d.id_base = (run_id % 9'000'000 + 1'000'000) * 100'000'000;
  d.mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  d.ctx = d.mac ? EVP_MAC_CTX_new(d.mac) : nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                          digest, 0),
                         OSSL_PARAM_construct_end()};
  if (!d.ctx
      || EVP_MAC_init(d.ctx,
                      reinterpret_cast<const unsigned char*>(secret.data()),
                      secret.size(), params)
           != 1)
    throw std::runtime_error("cannot set up HMAC-SHA256");
}

request_maker::~request_maker() {
  EVP_MAC_CTX_free(impl_->ctx);
  EVP_MAC_free(impl_->mac);
}

std::string_view request_maker::event_of(uint64_t n) const {
  return impl_->kind_of(n);
}

void request_maker::set_deploy_plan(deploy_plan plan) {
  impl_->repo_json = repository_json(plan.clone_url);
  impl_->plan = std::move(plan);
}

int64_t request_maker::deployment_id(uint64_t n) const {
  return static_cast<int64_t>(impl_->id_base + n);
}

std::string request_maker::provider_of(uint64_t n) const {
  return impl_->provider_of(n);
}

void request_maker::append(uint64_t n, std::string& out) {
  auto& d = *impl_;
  auto kind = d.kind_of(n);
  d.make_body(n, kind);
  char delivery[48];
  std::snprintf(delivery, sizeof(delivery),
                "%08llx-%04llx-4%03llx-8%03llx-%012llx",
                static_cast<unsigned long long>(d.run_id >> 32),
                static_cast<unsigned long long>((d.run_id >> 16) & 0xFFFF),
                static_cast<unsigned long long>((d.run_id >> 4) & 0xFFF),
                static_cast<unsigned long long>(d.run_id & 0xF),
                static_cast<unsigned long long>(n & 0xFFFFFFFFFFFFULL));
  out += "POST ";
  out += d.path;
  out += " HTTP/1.1\r\nHost: ";
  out += d.host;
  out += "\r\nUser-Agent: heaven-loadtest\r\n"
         "Content-Type: application/json\r\nX-GitHub-Event: ";
  out += kind;
  out += "\r\nX-GitHub-Delivery: ";
  out += delivery;
  out += "\r\nX-Hub-Signature-256: sha256=";
  out += d.sign();
  out += "\r\nContent-Length: ";
  append_number(out, d.body.size());
  out += "\r\n\r\n";
  out += d.body;
}

} // namespace heaven::loadtest
