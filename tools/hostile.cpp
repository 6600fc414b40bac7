// heaven_hostile: hostile webhook input against the real `heaven serve`.
// Starts heaven with a GitHub stand-in, measures its memory idle, sends
// signed mutations of GitHub-shaped `deployment`, `status`,
// `deployment_status` and `ping` events (names past GitHub's limits, NULs
// and other control characters, broken UTF-8, deep nesting, wrong types,
// huge fields and arrays up to the 25 MB body limit and past it,
// form-encoded bodies, bad signatures, redeliveries), checks that every
// answer is the one the README promises (status code and, for refusals, the
// exact message or its prefix), then lets heaven settle and measures its
// memory again. Exit status 0 only when every answer was right and heaven's
// RSS after the run is within the allowed growth over idle (64 MB).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "base/webhook.hpp"
#include "tools/support/heaven_process.hpp"
#include "tools/support/http_stub.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using heaven::test::e2e_webhook_secret;

namespace {

constexpr std::size_t mb = 1024 * 1024;
/// heaven's body limit (README: 413 over 25 MB).
constexpr std::size_t body_limit = 25 * mb;

struct options {
  int events = 20000;
  int senders = 4;
  /// How many of the events are big (16 KB to 24 MB, and past 25 MB).
  int huge = 200;
  unsigned seed = 1;
  int settle_s = 10;
  long allowed_growth_mb = 64;
  bool keep = false;
};

void usage() {
  std::cout
    << "usage: heaven_hostile [--events N] [--senders C] [--huge H]\n"
       "                      [--seed S] [--settle SECONDS]\n"
       "                      [--allowed-growth MB] [--keep]\n"
       "  N  events to send (default 20000)\n"
       "  C  concurrent senders, each on its own keep-alive connection (4)\n"
       "  H  how many of the N are big: 16 KB up to 24 MB, and past the 25 MB\n"
       "     limit (200)\n"
       "  S  seed of the mutations (1): the same seed sends the same events\n"
       "  --settle          seconds to wait after the last answer before "
       "measuring (10)\n"
       "  --allowed-growth  RSS after the run may exceed idle by this (64)\n"
       "  --keep            keep the temp dir (heaven's data and stderr)\n";
}

std::optional<options> parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    }
    if (a == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc)
      return std::nullopt;
    std::string v = argv[++i];
    try {
      if (a == "--events")
        o.events = std::stoi(v);
      else if (a == "--senders")
        o.senders = std::stoi(v);
      else if (a == "--huge")
        o.huge = std::stoi(v);
      else if (a == "--seed")
        o.seed = static_cast<unsigned>(std::stoul(v));
      else if (a == "--settle")
        o.settle_s = std::stoi(v);
      else if (a == "--allowed-growth")
        o.allowed_growth_mb = std::stol(v);
      else
        return std::nullopt;
    } catch (std::exception&) {
      return std::nullopt;
    }
  }
  if (o.events < 1 || o.senders < 1 || o.huge < 0 || o.huge > o.events)
    return std::nullopt;
  return o;
}

// ---- the events ------------------------------------------------------------

constexpr auto sha = "a10867b14bb761a232cd80139fbd4c0d33264240";

json repository() {
  return {{"id", 186853002},
          {"name", "Hello-World"},
          {"full_name", "Codertocat/Hello-World"},
          {"private", false},
          {"owner", {{"login", "Codertocat"}, {"id", 21031067}}},
          {"html_url", "https://github.com/Codertocat/Hello-World"},
          {"clone_url", "https://github.com/Codertocat/Hello-World.git"},
          {"default_branch", "main"}};
}

/// GitHub's `deployment` object with hubot-deploy's payload. The provider
/// is one heaven does not know: an accepted deployment ends at once with
/// `error` and runs nothing.
json deployment_object(int64_t id) {
  return {{"url",
           "https://api.github.com/repos/Codertocat/Hello-World/deployments/"
             + std::to_string(id)},
          {"id", id},
          {"sha", sha},
          {"ref", "main"},
          {"task", "deploy"},
          {"payload",
           {{"name", "hello-world"},
            {"robotName", "hubot"},
            {"notify",
             {{"room", "ops"},
              {"user", "U024BE7LH"},
              {"user_name", "codertocat"},
              {"adapter", "slack"}}},
            {"config",
             {{"provider", "hostile-none"},
              {"deploy_script", "script/deploy"},
              {"heroku_name", "hello-world"},
              {"production_url", "https://hello.example.com"}}},
            {"aws", {{"region", "eu-west-1"}}}}},
          {"environment", "production"},
          {"description", "Deploying main to production"},
          {"creator", {{"login", "Codertocat"}, {"id", 21031067}}},
          {"created_at", "2019-05-15T15:20:53Z"}};
}

json deployment_event(int64_t id) {
  return {{"action", "created"},
          {"deployment", deployment_object(id)},
          {"repository", repository()},
          {"sender", {{"login", "Codertocat"}, {"id", 21031067}}}};
}

json deployment_status_event(int64_t id) {
  return {{"action", "created"},
          {"deployment_status",
           {{"id", id * 10},
            {"state", "success"},
            {"description", "Deployed."},
            {"log_url", "https://heaven.example.test/deployments/1/log"},
            {"target_url", "https://heaven.example.test/deployments/1/log"},
            {"environment_url", "https://hello.example.com"},
            {"creator", {{"login", "heaven-bot"}}}}},
          {"deployment", deployment_object(id)},
          {"repository", repository()},
          {"sender", {{"login", "heaven-bot"}}}};
}

json status_event(int64_t id) {
  return {{"id", id},
          {"sha", sha},
          {"name", "Codertocat/Hello-World"},
          {"context", "ci"},
          {"state", "pending"},
          {"description", "Build queued"},
          {"branches",
           json::array({{{"name", "main"}, {"commit", {{"sha", sha}}}}})},
          {"commit",
           {{"sha", sha}, {"author", {{"login", "Codertocat"}, {"id", 1}}}}},
          {"repository", repository()},
          {"sender", {{"login", "Codertocat"}, {"id", 21031067}}}};
}

json ping_event() {
  return {{"zen", "Keep it logically awesome."},
          {"hook_id", 31},
          {"repository", repository()}};
}

/// How heaven bounds a field (README, "What heaven does").
enum class rule {
  text,      // characters, control characters refused
  bytes,     // bytes (refs), control characters refused
  login,     // GitHub login
  full_name, // owner/name
  repo_name, // repository name
  tree,      // anything under payload.config/aws: control characters only
  chat,      // payload.notify.*: text, and a number is fine
};

struct field {
  std::vector<std::string> path;
  rule kind;
  std::size_t limit;
};

std::string dotted(const std::vector<std::string>& path) {
  std::string out;
  for (auto& p : path) {
    if (p.size() > 0 && p[0] >= '0' && p[0] <= '9') {
      out += "[" + p + "]";
      continue;
    }
    if (!out.empty())
      out += '.';
    out += p;
  }
  return out;
}

json& at_path(json& doc, const std::vector<std::string>& path) {
  json* cur = &doc;
  for (auto& p : path)
    cur = cur->is_array() ? &(*cur)[std::stoul(p)] : &(*cur)[p];
  return *cur;
}

/// The fields of each event type heaven reads and bounds.
std::vector<field> fields_of(const std::string& type) {
  std::vector<field> common = {
    {{"repository", "full_name"}, rule::full_name, 140},
    {{"repository", "name"}, rule::repo_name, 100},
    {{"repository", "clone_url"}, rule::text, 2048},
    {{"repository", "html_url"}, rule::text, 2048},
    {{"repository", "default_branch"}, rule::bytes, 255},
    {{"sender", "login"}, rule::login, 39},
  };
  std::vector<field> deployment = {
    {{"deployment", "sha"}, rule::text, 64},
    {{"deployment", "ref"}, rule::bytes, 255},
    {{"deployment", "environment"}, rule::text, 255},
    {{"deployment", "task"}, rule::text, 255},
    {{"deployment", "description"}, rule::text, 1024},
    {{"deployment", "creator", "login"}, rule::login, 39},
    {{"deployment", "payload", "name"}, rule::text, 255},
    {{"deployment", "payload", "notify", "room"}, rule::chat, 255},
    {{"deployment", "payload", "notify", "user"}, rule::chat, 255},
    {{"deployment", "payload", "notify", "user_name"}, rule::chat, 255},
    {{"deployment", "payload", "notify", "adapter"}, rule::tree, 0},
    {{"deployment", "payload", "config", "provider"}, rule::text, 255},
    {{"deployment", "payload", "config", "production_url"}, rule::text, 2048},
    {{"deployment", "payload", "config", "deploy_script"}, rule::tree, 0},
    {{"deployment", "payload", "config", "heroku_name"}, rule::tree, 0},
    {{"deployment", "payload", "aws", "region"}, rule::tree, 0},
  };
  std::vector<field> out = common;
  if (type == "deployment" || type == "deployment_status")
    out.insert(out.end(), deployment.begin(), deployment.end());
  if (type == "deployment_status") {
    std::vector<field> more = {
      {{"deployment_status", "state"}, rule::text, 32},
      {{"deployment_status", "description"}, rule::text, 140},
      {{"deployment_status", "log_url"}, rule::text, 2048},
      {{"deployment_status", "target_url"}, rule::text, 2048},
      {{"deployment_status", "environment_url"}, rule::text, 2048},
    };
    out.insert(out.end(), more.begin(), more.end());
  }
  if (type == "status") {
    std::vector<field> more = {
      {{"sha"}, rule::text, 64},
      {{"state"}, rule::text, 32},
      {{"commit", "author", "login"}, rule::login, 39},
      {{"branches", "0", "name"}, rule::bytes, 255},
    };
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

/// One request to send and the answer it must get.
struct shot {
  std::string type;
  std::string delivery;
  std::string body;
  std::string content_type = "application/json";
  /// nullopt: signed with the secret; "" : no signature header.
  std::optional<std::string> signature;
  int status = 201;
  /// For refusals: the whole `error` message, or (when `prefix`) how it
  /// starts.
  std::string error;
  bool prefix = false;
};

/// One probe: its category (for the tally) and one or two shots (a
/// redelivery is the same event twice).
struct probe {
  std::string category;
  std::vector<shot> shots;
};

std::string longer_than(const std::string& path, std::size_t limit,
                        const char* unit = "characters") {
  return path + " is longer than " + std::to_string(limit) + " " + unit;
}

/// The control characters a mutation puts in (UTF-8).
const std::vector<std::string> controls = {
  std::string{"\0", 1}, "\n",       "\r",   "\t",  "\x1b", "\x7f",
  "\xc2\x85",           "\xc2\x9b", "\x01", "\x1f"};

/// A string of `n` characters, some of them two or three bytes long.
std::string chars(std::size_t n, std::mt19937& rng) {
  static const std::vector<std::string> alphabet = {"a", "Z", "0", "-",
                                                    "é", "ß", "€", "日"};
  std::string out;
  out.reserve(n * 2);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (std::size_t i = 0; i < n; ++i)
    out += alphabet[pick(rng)];
  return out;
}

std::string url_encode(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
        || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// The base event of `type` for probe number `n`.
json base_event(const std::string& type, int64_t n) {
  if (type == "deployment")
    return deployment_event(n);
  if (type == "deployment_status")
    return deployment_status_event(n);
  if (type == "status")
    return status_event(n);
  return ping_event();
}

/// A field mutation of a small event: a value past the field's limit, a
/// control character, a value at the limit (accepted), or a wrong type.
probe field_probe(std::mt19937& rng, int64_t n, std::size_t huge_size) {
  static const std::vector<std::string> types = {"deployment", "status",
                                                 "deployment_status"};
  auto type = types[rng() % types.size()];
  auto doc = base_event(type, n);
  auto fields = fields_of(type);
  auto f = fields[rng() % fields.size()];
  auto path = dotted(f.path);
  auto& slot = at_path(doc, f.path);
  shot s;
  s.type = type;
  s.status = 400;
  std::string category;
  auto mode = huge_size > 0 ? 0u : static_cast<unsigned>(rng() % 4);
  if (mode == 0) {
    // Too long (or huge).
    category = huge_size > 0 ? "huge field" : "field past its limit";
    auto size = huge_size > 0 ? huge_size : f.limit + 1;
    switch (f.kind) {
      case rule::text:
      case rule::chat:
        slot = huge_size > 0 ? std::string(size, 'x') : chars(size, rng);
        s.error = longer_than(path, f.limit);
        break;
      case rule::bytes:
        slot = std::string(size, 'r');
        s.error = longer_than(path, f.limit, "bytes");
        break;
      case rule::login:
        slot = std::string(std::max<std::size_t>(size, 40), 'a');
        s.error = longer_than(path, 39);
        break;
      case rule::repo_name:
        slot = std::string(std::max<std::size_t>(size, 101), 'n');
        s.error = longer_than(path, 100);
        break;
      case rule::full_name:
        if (huge_size > 0) {
          slot = "octo/" + std::string(size, 'n');
          s.error = longer_than(path, 140);
        } else if (rng() % 2 == 0) {
          slot = std::string(40, 'o') + "/app";
          s.error = path + " has an owner longer than 39 characters";
        } else {
          slot = "octo/" + std::string(101, 'n');
          s.error = path + " has a name longer than 100 characters";
        }
        break;
      case rule::tree:
        // No bound but the body's: accepted.
        slot = std::string(std::max<std::size_t>(size, 4096), 'y');
        s.status = 201;
        break;
    }
  } else if (mode == 1) {
    category = "control character";
    std::string value = slot.is_string() ? slot.get<std::string>() : "x";
    auto at = rng() % (value.size() + 1);
    value.insert(at, controls[rng() % controls.size()]);
    slot = value;
    s.error = path + " contains a control character";
  } else if (mode == 2) {
    category = "field at its limit";
    s.status = 201;
    switch (f.kind) {
      case rule::text:
      case rule::chat:
        slot = chars(f.limit, rng);
        break;
      case rule::bytes:
        slot = std::string(f.limit, 'r');
        break;
      case rule::login:
        slot = rng() % 2 ? std::string(39, 'a')
                         : std::string(34, 'b') + "[bot]";
        break;
      case rule::repo_name:
        slot = std::string(100, 'n');
        break;
      case rule::full_name:
        slot = std::string(39, 'o') + "/" + std::string(100, 'n');
        break;
      case rule::tree:
        slot = chars(300, rng);
        break;
    }
  } else {
    category = "wrong type";
    slot = json::array({1});
    switch (f.kind) {
      case rule::chat:
        s.error = "field " + path + " must be a string or an integer";
        break;
      case rule::tree:
        s.status = 201;
        break;
      default:
        s.error = "field " + path + " must be a string";
    }
  }
  s.body = doc.dump();
  return {category, {s}};
}

/// Broken or odd bodies and headers.
probe odd_probe(std::mt19937& rng, int64_t n) {
  static const std::vector<std::string> types = {"deployment", "status",
                                                 "deployment_status", "ping"};
  auto type = types[rng() % types.size()];
  auto doc = base_event(type, n);
  auto text = doc.dump();
  shot s;
  s.type = type;
  s.status = 400;
  switch (rng() % 16) {
    case 0: {
      auto cut = rng() % text.size();
      s.body = text.substr(0, cut);
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"truncated JSON", {s}};
    }
    case 1: {
      // Raw bytes that are not UTF-8, inside a string.
      static const std::vector<std::string> bad = {
        "\xff",     "\xc0\x80",         "\xed\xa0\x80",
        "\xe2\x82", "\xf4\x90\x80\x80", "\x80"};
      auto at = text.find("Hello-World");
      s.body = text.substr(0, at) + bad[rng() % bad.size()] + text.substr(at);
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"broken UTF-8", {s}};
    }
    case 2: {
      // An escaped lone surrogate.
      auto at = text.find("Hello-World");
      s.body = text.substr(0, at) + "\\ud800" + text.substr(at);
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"lone surrogate", {s}};
    }
    case 3: {
      // Nesting deeper than any parser should follow.
      auto depth = 1025 + rng() % 5000;
      s.body = "{\"deep\":" + std::string(depth, '[') + std::string(depth, ']')
               + "," + text.substr(1);
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"deep nesting", {s}};
    }
    case 4:
      s.body = rng() % 2 ? "[" + text + "]" : "\"" + std::to_string(n) + "\"";
      s.error = "not a JSON object";
      return {"not an object", {s}};
    case 5:
      s.signature = "sha256=" + heaven::hmac_sha256_hex("not the secret", text);
      s.body = text;
      s.status = 401;
      s.error = "invalid signature";
      return {"bad signature", {s}};
    case 6:
      s.signature = rng() % 2 ? "" : "sha1=0123456789abcdef";
      s.body = text;
      s.status = 401;
      s.error = "invalid signature";
      return {"no signature", {s}};
    case 7:
      s.type = "push";
      s.body = text;
      s.status = 422;
      s.error = "unsupported event push";
      return {"unsupported event", {s}};
    case 8:
      s.body = text;
      s.delivery = "h-" + std::to_string(n) + "-" + std::string(260, 'd');
      s.error = "header X-GitHub-Delivery is longer than 255 characters";
      return {"long delivery id", {s}};
    case 9: {
      // The form content type GitHub offers.
      s.content_type = "application/x-www-form-urlencoded";
      if (rng() % 2) {
        s.body = "payload=" + url_encode(text);
        s.status = 201;
        return {"form-encoded", {s}};
      }
      s.body = "payload=" + url_encode(text).substr(0, 40) + "%zz";
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"form-encoded, broken", {s}};
    }
    case 10: {
      if (type == "ping") {
        doc["repository"]["full_name"] = std::string{"octo/app\0x", 10};
        s.error = "repository.full_name contains a control character";
      } else if (type == "status") {
        doc.erase("sha");
        s.error = "missing field sha";
      } else {
        doc["deployment"].erase("environment");
        s.error = "missing field deployment.environment";
      }
      s.body = doc.dump();
      return {"missing or bad field", {s}};
    }
    case 11: {
      // A redelivery: accepted once, then recognised.
      s.body = text;
      s.status = 201;
      auto again = s;
      again.status = 200;
      return {"redelivery", {s, again}};
    }
    case 12: {
      if (type != "deployment" && type != "deployment_status")
        break;
      // The payload as a JSON string, hiding a NUL in the config.
      auto payload = doc["deployment"]["payload"];
      payload["config"]["deploy_script"] = std::string{"script/\0x", 9};
      doc["deployment"]["payload"] = payload.dump();
      s.body = doc.dump();
      s.error = "deployment.payload.config.deploy_script contains a control "
                "character";
      return {"payload string with a NUL", {s}};
    }
    case 13: {
      if (type != "deployment" && type != "deployment_status")
        break;
      doc["deployment"]["payload"]["config"][std::string{"bad\x1bkey"}] = 1;
      s.body = doc.dump();
      s.error = "a key of deployment.payload.config contains a control "
                "character";
      return {"control character in a key", {s}};
    }
    case 14: {
      if (type != "status")
        break;
      json branches = json::array();
      for (int i = 0; i < 11 + static_cast<int>(rng() % 50); ++i)
        branches.push_back({{"name", "b" + std::to_string(i)}});
      doc["branches"] = branches;
      s.body = doc.dump();
      s.error = "branches has more than 10 entries";
      return {"too many branches", {s}};
    }
    default:
      break;
  }
  // Plain: GitHub's own event, accepted.
  s.body = text;
  s.status = 201;
  return {"plain event", {s}};
}

/// A huge probe: a field, an array, nesting or a whole body of about `size`.
probe huge_probe(std::mt19937& rng, int64_t n, std::size_t size) {
  switch (rng() % 6) {
    case 0:
      return field_probe(rng, n, size);
    case 1: {
      // Past the body limit.
      shot s;
      s.type = "deployment";
      s.body = deployment_event(n).dump();
      s.body.insert(1, "\"pad\":\"" + std::string(body_limit + rng() % mb, 'p')
                         + "\",");
      s.status = 413;
      s.error = "body too large";
      return {"body past 25 MB", {s}};
    }
    case 2: {
      // A huge array heaven walks (config) or never reads (payload root).
      auto doc = deployment_event(n);
      json big = json::array();
      auto count = std::min<std::size_t>(size / 4, 2 * mb);
      bool poisoned = rng() % 2 == 0;
      for (std::size_t i = 0; i < count; ++i)
        big.push_back("h");
      shot s;
      s.type = "deployment";
      if (poisoned)
        big.back() = std::string{"h\0", 2};
      doc["deployment"]["payload"]["config"]["hosts"] = std::move(big);
      s.body = doc.dump();
      if (poisoned) {
        s.status = 400;
        s.error = "deployment.payload.config.hosts[" + std::to_string(count - 1)
                  + "] contains a control character";
      }
      return {poisoned ? "huge array, NUL at the end" : "huge array", {s}};
    }
    case 3: {
      shot s;
      s.type = "status";
      auto doc = status_event(n);
      json branches = json::array();
      auto count = std::min<std::size_t>(size / 16, 2 * mb);
      for (std::size_t i = 0; i < count; ++i)
        branches.push_back({{"name", "b"}});
      doc["branches"] = std::move(branches);
      s.body = doc.dump();
      s.status = 400;
      s.error = "branches has more than 10 entries";
      return {"huge branches array", {s}};
    }
    case 4: {
      shot s;
      s.type = "deployment_status";
      auto depth = size / 2;
      s.body = "{\"deep\":" + std::string(depth, '[') + std::string(depth, ']')
               + "," + deployment_status_event(n).dump().substr(1);
      s.status = 400;
      s.error = "malformed JSON: ";
      s.prefix = true;
      return {"huge nesting", {s}};
    }
    default: {
      // A big field heaven never reads: accepted and stored. Kept to 4 MB so
      // the data directory stays small.
      shot s;
      s.type = "deployment";
      auto doc = deployment_event(n);
      doc["deployment"]["payload"]["changelog"] = std::string(
        std::min(size, 4 * mb), 'c');
      s.body = doc.dump();
      return {"big unread field", {s}};
    }
  }
}

/// Probe number `n` of the run (deterministic for a seed).
probe make_probe(const options& o, int64_t n) {
  std::mt19937 rng{o.seed * 7919u + static_cast<unsigned>(n)};
  probe p;
  bool huge = o.huge > 0 && n % (o.events / o.huge) == 0
              && n / (o.events / o.huge) < o.huge;
  if (huge) {
    // 16 KB up to 1 MB under the body limit, spread evenly over the
    // orders of magnitude: blocks malloc keeps in its arenas as well as
    // blocks it maps on their own.
    std::uniform_real_distribution<double> exponent(
      std::log(16.0 * 1024), std::log(double(body_limit - mb)));
    p = huge_probe(rng, n, static_cast<std::size_t>(std::exp(exponent(rng))));
  } else if (rng() % 2 == 0) {
    p = field_probe(rng, n, 0);
  } else {
    p = odd_probe(rng, n);
  }
  int k = 0;
  for (auto& s : p.shots)
    if (s.delivery.empty())
      s.delivery = "h-" + std::to_string(n) + (k++ == 0 ? "" : "");
  return p;
}

// ---- sending ---------------------------------------------------------------

size_t on_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

/// A keep-alive connection to heaven.
class sender {
public:
  explicit sender(std::string url) : url_(std::move(url)) {
    easy_ = curl_easy_init();
  }
  ~sender() {
    curl_easy_cleanup(easy_);
  }

  /// Sends `s`; returns the status (0 on a network failure) and body.
  std::pair<int, std::string> send(const shot& s) {
    std::string body;
    curl_slist* headers = nullptr;
    auto add = [&](const std::string& h) {
      headers = curl_slist_append(headers, h.c_str());
    };
    add("Content-Type: " + s.content_type);
    add("X-GitHub-Event: " + s.type);
    add("X-GitHub-Delivery: " + s.delivery);
    auto sig = s.signature
                 ? *s.signature
                 : "sha256="
                     + heaven::hmac_sha256_hex(e2e_webhook_secret, s.body);
    if (!sig.empty())
      add("X-Hub-Signature-256: " + sig);
    add("Expect:");
    curl_easy_reset(easy_);
    curl_easy_setopt(easy_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, s.body.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(s.body.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &body);
    auto rc = curl_easy_perform(easy_);
    long status = 0;
    if (rc == CURLE_OK)
      curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    else if (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR)
      // heaven answers 413 before the body is in and then hangs up: curl
      // may see the answer or only the closed socket.
      curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    return {static_cast<int>(status), body};
  }

private:
  std::string url_;
  CURL* easy_;
};

/// Whether `status`/`body` is the answer `s` must get; else why not.
std::string verdict(const shot& s, int status, const std::string& body) {
  if (s.status == 413 && status == 0)
    return {}; // The hang-up after a 413 can beat the answer to curl.
  if (status != s.status)
    return "expected " + std::to_string(s.status) + ", got "
           + std::to_string(status) + " " + body.substr(0, 300);
  auto doc = json::parse(body, nullptr, false);
  if (s.status == 201)
    return body == "{}" ? "" : "201 with body " + body.substr(0, 300);
  if (s.status == 200)
    return doc.is_object() && doc.value("status", "") == "duplicate"
             ? ""
             : "200 with body " + body.substr(0, 300);
  if (!doc.is_object() || !doc.contains("error") || !doc["error"].is_string())
    return "no error message: " + body.substr(0, 300);
  auto msg = doc["error"].get<std::string>();
  bool ok = s.prefix ? msg.rfind(s.error, 0) == 0 : msg == s.error;
  return ok ? "" : "expected error \"" + s.error + "\", got \"" + msg + "\"";
}

long rss_mb(pid_t pid) {
  return heaven::test::read_proc(pid, false).rss_kb / 1024;
}

} // namespace

int main(int argc, char** argv) {
  auto parsed = parse(argc, argv);
  if (!parsed) {
    usage();
    return 2;
  }
  auto o = *parsed;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto tmp = heaven::test::make_temp_dir("hostile");
  int exit_code = 0;
  {
    heaven::test::http_stub github;
    heaven::test::heaven_server h{
      tmp / "data", github.base_url(), {{"HEAVEN_LOG_LEVEL", "warn"}}};
    // Warm up with a few plain events, so "idle" is heaven after it has
    // done ordinary work, not a process that has never parsed anything.
    {
      sender warm{h.base() + "/events"};
      for (int i = 0; i < 20; ++i)
        for (auto& type : {"deployment", "status", "deployment_status"}) {
          shot s;
          s.type = type;
          s.delivery = "warm-" + std::string{type} + std::to_string(i);
          s.body = base_event(type, 1000000 + i).dump();
          warm.send(s);
        }
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    auto idle = heaven::test::read_proc(h.pid, true);
    std::cout << "heaven (pid " << h.pid << ") idle: RSS " << idle.rss_kb / 1024
              << " MB, " << idle.threads << " threads, " << idle.fds
              << " fds\n";

    std::atomic<int64_t> next{0};
    std::atomic<uint64_t> bytes_sent{0};
    std::atomic<long> peak_rss{0};
    std::mutex mx;
    std::map<std::string, std::pair<int, int>> tally; // category: ok, wrong
    std::vector<std::string> wrong;
    std::atomic<bool> sending{true};
    std::thread sampler{[&] {
      while (sending) {
        auto r = rss_mb(h.pid);
        long prev = peak_rss;
        while (r > prev && !peak_rss.compare_exchange_weak(prev, r)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }};
    auto start = clock_type::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < o.senders; ++t)
      threads.emplace_back([&] {
        sender out{h.base() + "/events"};
        for (;;) {
          auto n = next++;
          if (n >= o.events)
            return;
          auto p = make_probe(o, n);
          for (auto& s : p.shots) {
            bytes_sent += s.body.size();
            auto [status, body] = out.send(s);
            auto why = verdict(s, status, body);
            std::lock_guard guard{mx};
            auto& t = tally[p.category];
            if (why.empty()) {
              ++t.first;
            } else {
              ++t.second;
              if (wrong.size() < 20)
                wrong.push_back(
                  "#" + std::to_string(n) + " " + p.category + " (" + s.type
                  + ", " + std::to_string(s.body.size()) + " bytes): " + why);
            }
          }
        }
      });
    for (auto& t : threads)
      t.join();
    auto seconds
      = std::chrono::duration<double>(clock_type::now() - start).count();
    sending = false;
    sampler.join();
    auto right_after = rss_mb(h.pid);
    int total_ok = 0, total_wrong = 0;
    std::printf("%-32s %8s %8s\n", "category", "right", "wrong");
    for (auto& [category, counts] : tally) {
      std::printf("%-32s %8d %8d\n", category.c_str(), counts.first,
                  counts.second);
      total_ok += counts.first;
      total_wrong += counts.second;
    }
    std::printf("%-32s %8d %8d   (%d events, %.0f MB of bodies, in %.1f s)\n",
                "all", total_ok, total_wrong, o.events,
                static_cast<double>(bytes_sent) / mb, seconds);
    for (auto& w : wrong)
      std::cout << "WRONG " << w << "\n";
    // Let accepted deployments end and heaven go idle, then measure.
    std::this_thread::sleep_for(std::chrono::seconds(o.settle_s));
    auto after = heaven::test::read_proc(h.pid, true);
    long growth = after.rss_kb / 1024 - idle.rss_kb / 1024;
    std::cout << "heaven RSS: idle " << idle.rss_kb / 1024 << " MB, peak "
              << std::max(peak_rss.load(), after.hwm_kb / 1024)
              << " MB, right after the last answer " << right_after << " MB, "
              << o.settle_s << " s later " << after.rss_kb / 1024 << " MB ("
              << (growth >= 0 ? "+" : "") << growth
              << " MB over idle; allowed +" << o.allowed_growth_mb << ")\n";
    std::cout << "heaven threads " << after.threads << ", fds " << after.fds
              << "; GitHub stand-in got " << github.requests().size()
              << " requests\n";
    auto t0 = clock_type::now();
    int rc = h.stop();
    std::cout << "SIGTERM: exit status " << rc << " after "
              << std::chrono::duration<double>(clock_type::now() - t0).count()
              << " s\n";
    if (total_wrong > 0 || growth > o.allowed_growth_mb)
      exit_code = 1;
  }
  if (!o.keep)
    fs::remove_all(tmp);
  else
    std::cout << "kept " << tmp << "\n";
  return exit_code;
}
