/// heaven's own log (stderr): one spdlog sink for both HEAVEN_LOG_FORMAT
/// values. It redacts the configured secrets from every message, then
/// writes the line through the sink it wraps: as spdlog's usual text, or as
/// one JSON object per line (see json_log_line).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace spdlog::sinks {
class sink;
} // namespace spdlog::sinks

namespace heaven {

/// A sink that replaces `secrets` (as the deployment logs do: see
/// redactor) in each message, and in the log context's repository and
/// environment, then writes it to `out`. With `json`, `out` gets the JSON
/// formatter for good (spdlog's patterns no longer apply); without, it keeps
/// its pattern. `out` must be thread-safe (an _mt sink): it writes each line
/// whole.
std::shared_ptr<spdlog::sinks::sink>
redacting_sink(std::shared_ptr<spdlog::sinks::sink> out,
               std::vector<std::string> secrets, bool json);

/// Makes heaven's default logger (named "heaven") write to stderr through
/// redacting_sink, in `format` ("text": spdlog's coloured lines; "json").
void use_stderr_log(const std::string& format,
                    std::vector<std::string> secrets);

} // namespace heaven
