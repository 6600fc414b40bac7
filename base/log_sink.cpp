#include "base/log_sink.hpp"

#include <optional>
#include <string_view>

#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"

namespace heaven {

namespace {

std::string_view view(spdlog::string_view_t text) {
  return {text.data(), text.size()};
}

/// One JSON object per line: json_log_line of the message (redacted by the
/// sink before) and of this thread's log context (redacted here).
class json_formatter final : public spdlog::formatter {
public:
  explicit json_formatter(std::shared_ptr<const redactor> redact)
    : redact_(std::move(redact)) {
  }

  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    // Runs on the thread that logs (heaven's loggers are synchronous), so
    // the context is that of the actor whose handler logs.
    std::optional<log_context> context;
    if (auto current = current_log_context())
      context = log_context{current->deployment,
                            (*redact_)(current->repository),
                            (*redact_)(current->environment)};
    auto line = json_log_line(msg.time,
                              view(spdlog::level::to_string_view(msg.level)),
                              view(msg.payload), context ? &*context : nullptr);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>(redact_);
  }

private:
  std::shared_ptr<const redactor> redact_;
};

class redacting final : public spdlog::sinks::sink {
public:
  redacting(std::shared_ptr<spdlog::sinks::sink> out,
            std::shared_ptr<const redactor> redact, bool json)
    : out_(std::move(out)), redact_(std::move(redact)), json_(json) {
    if (json_)
      out_->set_formatter(std::make_unique<json_formatter>(redact_));
  }

  void log(const spdlog::details::log_msg& msg) override {
    auto text = (*redact_)(view(msg.payload));
    auto copy = msg;
    copy.payload = spdlog::string_view_t{text.data(), text.size()};
    out_->log(copy);
  }

  void flush() override {
    out_->flush();
  }

  void set_pattern(const std::string& pattern) override {
    if (!json_)
      out_->set_pattern(pattern);
  }

  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    if (!json_)
      out_->set_formatter(std::move(formatter));
  }

private:
  std::shared_ptr<spdlog::sinks::sink> out_;
  std::shared_ptr<const redactor> redact_;
  bool json_;
};

} // namespace

std::shared_ptr<spdlog::sinks::sink>
redacting_sink(std::shared_ptr<spdlog::sinks::sink> out,
               std::vector<std::string> secrets, bool json) {
  return std::make_shared<redacting>(
    std::move(out), std::make_shared<const redactor>(std::move(secrets)), json);
}

void use_stderr_log(const std::string& format,
                    std::vector<std::string> secrets) {
  bool json = format == "json";
  // Colours only in text, and only on a terminal (spdlog's colour sink
  // checks); JSON is plain.
  std::shared_ptr<spdlog::sinks::sink> out;
  if (json)
    out = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  else
    out = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(
    "heaven", redacting_sink(std::move(out), std::move(secrets), json));
  spdlog::set_default_logger(std::move(logger));
}

} // namespace heaven
