#include "actors/log_book.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace heaven {

namespace {

/// Secrets shorter than this are not redacted: they would mangle ordinary
/// text and are not worth protecting by substitution.
constexpr std::size_t min_secret_size = 6;

} // namespace

log_book::log_book(std::string dir, std::vector<std::string> secrets)
  : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  for (auto& s : secrets)
    if (s.size() >= min_secret_size)
      secrets_.push_back(std::move(s));
}

log_book::~log_book() {
  std::lock_guard guard{mtx_};
  for (auto& kvp : open_)
    std::fclose(kvp.second);
}

void log_book::open(int64_t id) {
  std::lock_guard guard{mtx_};
  if (open_.count(id))
    return;
  if (auto f = std::fopen(path(id).c_str(), "ae"))
    open_.emplace(id, f);
}

void log_book::append(int64_t id, stream source, std::string_view text) {
  auto line = redact(text);
  std::lock_guard guard{mtx_};
  auto i = open_.find(id);
  if (i == open_.end())
    return;
  if (source == stream::heaven)
    std::fputs("heaven: ", i->second);
  std::fwrite(line.data(), 1, line.size(), i->second);
  std::fputc('\n', i->second);
  // Readers follow the file live: make each line visible at once.
  std::fflush(i->second);
}

void log_book::close(int64_t id) {
  std::lock_guard guard{mtx_};
  auto i = open_.find(id);
  if (i == open_.end())
    return;
  std::fclose(i->second);
  open_.erase(i);
}

bool log_book::live(int64_t id) const {
  std::lock_guard guard{mtx_};
  return open_.count(id) > 0;
}

std::string log_book::path(int64_t id) const {
  return dir_ + "/" + std::to_string(id) + ".log";
}

std::string log_book::redact(std::string_view text) const {
  // Mark what any secret covers in the original text, then replace each
  // marked run once: overlapping secrets leave no fragment of either behind,
  // and a secret that looks like "[redacted]" cannot match its own
  // replacement (which looped forever when replacing in place).
  std::vector<bool> hidden;
  for (auto& s : secrets_) {
    for (auto pos = text.find(s); pos != text.npos;
         pos = text.find(s, pos + 1)) {
      if (hidden.empty())
        hidden.resize(text.size(), false);
      std::fill_n(hidden.begin() + static_cast<std::ptrdiff_t>(pos),
                  s.size(), true);
    }
  }
  if (hidden.empty())
    return std::string{text};
  std::string result;
  result.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (!hidden[i]) {
      result += text[i++];
      continue;
    }
    result += "[redacted]";
    while (i < text.size() && hidden[i])
      ++i;
  }
  return result;
}

std::string log_token(std::string_view key, int64_t id) {
  auto msg = "log:" + std::to_string(id);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md,
       &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string result;
  for (unsigned i = 0; i < 16 && i < len; ++i) {
    result += hex[md[i] >> 4];
    result += hex[md[i] & 0xF];
  }
  return result;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace heaven
