/// What `heaven loadtest` tells at the end: a table on stdout, or one JSON
/// object (--json), and a self-contained HTML report (--report) with the
/// latency over time and the percentile distribution drawn as inline SVG.
#pragma once

#include <string>

#include "tools/loadtest_engine.hpp"
#include "tools/loadtest_github.hpp"

namespace heaven::loadtest {

/// The run as asked, for the headings.
struct run_description {
  std::string target;
  std::string event;
  /// 0 for a closed loop.
  double rate = 0;
  double duration_s = 0;
  int connections = 0;
  /// The target is a heaven `loadtest` started itself.
  bool local = false;
};

/// The percentiles every summary shows, and their JSON keys.
struct percentile_point {
  double percent;
  const char* label;
  const char* key;
};
inline constexpr percentile_point summary_percentiles[] = {
  {50, "p50", "p50"}, {75, "p75", "p75"},      {90, "p90", "p90"},
  {99, "p99", "p99"}, {99.9, "p99.9", "p999"}, {99.99, "p99.99", "p9999"}};

/// The table printed at the end of a run.
std::string summary_text(const run_description& d, const run_results& r,
                         const deployment_figures& deployments = {});

/// The summary as one JSON object (one line).
std::string summary_json(const run_description& d, const run_results& r,
                         const deployment_figures& deployments = {});

/// The HTML report: one page, no scripts, the charts as inline SVG.
std::string html_report(const run_description& d, const run_results& r,
                        const deployment_figures& deployments = {});

} // namespace heaven::loadtest
