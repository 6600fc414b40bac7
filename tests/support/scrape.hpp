/// Reading a /metrics scrape (Prometheus text format) in tests.
#pragma once

#include <cstddef>
#include <map>
#include <string>

namespace heaven::test {

/// The samples of a scrape: "name{labels}" -> value ("name" when it has no
/// labels). Comment lines are skipped.
inline std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    auto line = text.substr(pos, end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    if (line.empty() || line[0] == '#')
      continue;
    auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

} // namespace heaven::test
