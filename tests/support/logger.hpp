/// Swapping spdlog's default logger in tests.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "base/log_format.hpp"

namespace heaven::test {

/// Makes `previous` the default logger again, keeping the test's logger
/// alive until the program ends. spdlog::info() reads the default logger
/// through a raw pointer without a lock, so an actor or curl thread still
/// winding down when a fixture ends may log through the old one: destroying
/// it then was a use after free.
inline void restore_logger(std::shared_ptr<spdlog::logger> previous) {
  static std::mutex mx;
  static std::vector<std::shared_ptr<spdlog::logger>> retired;
  {
    std::lock_guard guard{mx};
    retired.push_back(spdlog::default_logger());
  }
  spdlog::set_default_logger(std::move(previous));
}

/// A sink that adds the logging thread's log context (what the JSON log
/// writes) to each message, as " [deployment=42 repository=octo/app
/// environment=production]" (each part only when known; nothing without a
/// context or when it knows nothing), then passes it on to `out`. Asked while
/// logging: `out` may format later, on another thread.
class context_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit context_sink(std::shared_ptr<spdlog::sinks::sink> out)
    : out_(std::move(out)) {
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text{msg.payload.data(), msg.payload.size()};
    if (auto about = current_log_context()) {
      std::string parts;
      auto add = [&parts](const std::string& part) {
        parts += (parts.empty() ? "" : " ") + part;
      };
      if (about->deployment != 0)
        add("deployment=" + std::to_string(about->deployment));
      if (!about->repository.empty())
        add("repository=" + about->repository);
      if (!about->environment.empty())
        add("environment=" + about->environment);
      if (!parts.empty())
        text += " [" + parts + "]";
    }
    auto copy = msg;
    copy.payload = text;
    out_->log(copy);
  }
  void flush_() override {
    out_->flush();
  }

private:
  std::shared_ptr<spdlog::sinks::sink> out_;
};

/// heaven's log, captured for a test: while it lives, spdlog's default
/// logger writes "<level> <text>" lines (debug and up) into a ring buffer.
/// `with_context` adds the thread's log context to each line (see
/// context_sink).
class captured_log {
public:
  explicit captured_log(std::size_t capacity = 5000, bool with_context = false)
    : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(capacity)),
      previous_(spdlog::default_logger()) {
    sink_->set_pattern("%l %v");
    std::shared_ptr<spdlog::sinks::sink> first = sink_;
    if (with_context)
      first = std::make_shared<context_sink>(sink_);
    auto logger = std::make_shared<spdlog::logger>("test", first);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }

  ~captured_log() {
    restore_logger(previous_);
  }

  captured_log(const captured_log&) = delete;
  captured_log& operator=(const captured_log&) = delete;

  /// Every line so far, without its line break.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (auto& l : sink_->last_formatted()) {
      auto line = l;
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
      out.push_back(std::move(line));
    }
    return out;
  }

  /// Everything logged, one line after another.
  std::string all() const {
    std::string out;
    for (auto& l : lines())
      out += l + "\n";
    return out;
  }

  /// How many lines contain `text`.
  std::size_t containing(const std::string& text) const {
    std::size_t n = 0;
    for (auto& l : lines())
      n += l.find(text) != std::string::npos ? 1 : 0;
    return n;
  }

  /// How many lines are exactly `line`.
  std::size_t exactly(const std::string& line) const {
    auto all = lines();
    return static_cast<std::size_t>(std::count(all.begin(), all.end(), line));
  }

  /// Whether some line contains `text`.
  bool has(const std::string& text) const {
    return containing(text) > 0;
  }

private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

} // namespace heaven::test
