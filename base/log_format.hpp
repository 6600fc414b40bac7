/// How heaven's own log lines are made safe and shaped: the secrets'
/// redaction (shared with the deployment logs), the deployment a line is
/// about, and the JSON form of a line (HEAVEN_LOG_FORMAT=json).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heaven {

/// Teaches every redactor (heaven's own log and the deployment logs) a
/// secret that appeared after start-up, such as a GitHub App installation
/// token: from now on it is redacted like the configured ones. Thread-safe;
/// the newest 1000 are kept.
void learn_secret(std::string secret);

/// Replaces every configured secret, and every learnt one (learn_secret),
/// in a text with "[redacted]". Secrets shorter than 6 characters are
/// ignored: they would mangle ordinary text.
class redactor {
public:
  redactor() = default;
  explicit redactor(std::vector<std::string> secrets);

  /// `text` with every occurrence of a secret replaced by "[redacted]";
  /// overlapping secrets leave no fragment of either behind.
  std::string operator()(std::string_view text) const;

private:
  std::vector<std::string> secrets_;
};

/// The deployment heaven's lines are about on this thread just now; the
/// JSON log writes its fields. A zero `deployment` or an empty string is
/// unknown.
struct log_context {
  int64_t deployment = 0;
  std::string repository;
  std::string environment;
};

/// The context set on this thread, or nullptr.
const log_context* current_log_context();

/// Sets `context` as this thread's for its lifetime (it must outlive the
/// scope), then restores the one before. An actor sets it at the start of a
/// handler: CAF runs one handler of one actor at a time on a thread.
class log_scope {
public:
  explicit log_scope(const log_context& context);
  ~log_scope();

  log_scope(const log_scope&) = delete;
  log_scope& operator=(const log_scope&) = delete;

private:
  const log_context* previous_;
};

/// One line of the JSON log, without its line break:
/// {"time":"2026-12-05T16:00:00.123Z","level":"info","message":"...",
/// "deployment":42,"repository":"octo/app","environment":"production"},
/// the last three only when `context` knows them. Control characters are
/// escaped, invalid UTF-8 is replaced by U+FFFD. Nothing is redacted here.
std::string json_log_line(std::chrono::system_clock::time_point time,
                          std::string_view level, std::string_view message,
                          const log_context* context);

} // namespace heaven
