#include "tools/loadtest_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/text.hpp"

namespace heaven::loadtest {

namespace {

double ms(uint64_t us) {
  return static_cast<double>(us) / 1000.0;
}

std::string fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string html_escape(std::string_view s) {
  return replace_chars(
    s, {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}});
}

std::string describe(const run_description& d) {
  std::string out = d.target + " (" + d.event + ", "
                    + (d.local ? "a heaven of its own" : "the given target")
                    + "): ";
  if (d.rate > 0)
    out += "open loop at " + fixed(d.rate, 0) + "/s";
  else
    out += "closed loop";
  out += " for " + fixed(d.duration_s, 1) + " s over "
         + std::to_string(d.connections) + " connections";
  return out;
}

// -- SVG ----------------------------------------------------------------------

struct series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;
};

/// A round step that cuts `span` into about `parts` pieces.
double nice_step(double span, int parts) {
  if (span <= 0)
    return 1;
  double raw = span / parts;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag)
      return m * mag;
  return 10 * mag;
}

/// A line chart: `x_ticks` (value, label) or, when empty, round ticks.
std::string svg_chart(const std::string& title, const std::string& x_label,
                      const std::string& y_label,
                      const std::vector<series>& lines,
                      std::vector<std::pair<double, std::string>> x_ticks) {
  constexpr double w = 860, h = 320, left = 70, right = 150, top = 30,
                   bottom = 50;
  double x_min = 0, x_max = 1, y_max = 0;
  bool first = true;
  for (auto& s : lines)
    for (auto& [x, y] : s.points) {
      x_min = first ? x : std::min(x_min, x);
      x_max = first ? x : std::max(x_max, x);
      y_max = std::max(y_max, y);
      first = false;
    }
  if (x_max <= x_min)
    x_max = x_min + 1;
  double y_step = nice_step(y_max > 0 ? y_max : 1, 5);
  double y_top = std::ceil((y_max > 0 ? y_max : 1) / y_step) * y_step;
  auto px = [&](double x) {
    return left + (x - x_min) / (x_max - x_min) * (w - left - right);
  };
  auto py = [&](double y) {
    return h - bottom - y / y_top * (h - top - bottom);
  };
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\""
                    + fixed(w, 0) + "\" height=\"" + fixed(h, 0)
                    + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out += "<text x=\"" + fixed(left, 0) + "\" y=\"18\" font-weight=\"bold\">"
         + html_escape(title) + "</text>\n";
  for (double y = 0; y <= y_top + y_step / 2; y += y_step) {
    out += "<line x1=\"" + fixed(left) + "\" x2=\"" + fixed(w - right)
           + "\" y1=\"" + fixed(py(y)) + "\" y2=\"" + fixed(py(y))
           + "\" stroke=\"#ddd\"/>";
    out += "<text x=\"" + fixed(left - 6) + "\" y=\"" + fixed(py(y) + 4)
           + "\" text-anchor=\"end\">" + fixed(y, y_step < 1 ? 2 : 0)
           + "</text>\n";
  }
  if (x_ticks.empty()) {
    double step = nice_step(x_max - x_min, 8);
    for (double x = std::ceil(x_min / step) * step; x <= x_max; x += step)
      x_ticks.emplace_back(x, fixed(x, step < 1 ? 1 : 0));
  }
  for (auto& [x, label] : x_ticks) {
    out += "<line x1=\"" + fixed(px(x)) + "\" x2=\"" + fixed(px(x)) + "\" y1=\""
           + fixed(top) + "\" y2=\"" + fixed(h - bottom)
           + "\" stroke=\"#eee\"/>";
    out += "<text x=\"" + fixed(px(x)) + "\" y=\"" + fixed(h - bottom + 16)
           + "\" text-anchor=\"middle\">" + html_escape(label) + "</text>\n";
  }
  out += "<text x=\"" + fixed((left + w - right) / 2) + "\" y=\""
         + fixed(h - 10) + "\" text-anchor=\"middle\">" + html_escape(x_label)
         + "</text>\n";
  out += "<text transform=\"translate(16," + fixed((top + h - bottom) / 2)
         + ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(y_label)
         + "</text>\n";
  out += "<rect x=\"" + fixed(left) + "\" y=\"" + fixed(top) + "\" width=\""
         + fixed(w - left - right) + "\" height=\"" + fixed(h - top - bottom)
         + "\" fill=\"none\" stroke=\"#888\"/>\n";
  int row = 0;
  for (auto& s : lines) {
    out += "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"" + s.color
           + "\" points=\"";
    for (auto& [x, y] : s.points)
      out += fixed(px(x), 1) + "," + fixed(py(y), 1) + " ";
    out += "\"/>\n";
    double ly = top + 14 + 18 * row++;
    out += "<line x1=\"" + fixed(w - right + 12) + "\" x2=\""
           + fixed(w - right + 32) + "\" y1=\"" + fixed(ly - 4) + "\" y2=\""
           + fixed(ly - 4) + "\" stroke-width=\"3\" stroke=\"" + s.color
           + "\"/><text x=\"" + fixed(w - right + 38) + "\" y=\"" + fixed(ly)
           + "\">" + html_escape(s.name) + "</text>\n";
  }
  out += "</svg>\n";
  return out;
}

/// The rows of a provider's figures: each state in the order GitHub shows
/// them, then "terminal".
std::vector<std::pair<std::string, const histogram*>>
rows_of(const provider_figures& f) {
  std::vector<std::pair<std::string, const histogram*>> rows;
  for (auto* state : {"pending", "queued", "in_progress"})
    if (auto it = f.to_state.find(state); it != f.to_state.end())
      rows.emplace_back(state, &it->second);
  for (auto& [state, h] : f.to_state)
    if (state != "pending" && state != "queued" && state != "in_progress")
      rows.emplace_back(state, &h);
  rows.emplace_back("terminal", &f.to_terminal);
  return rows;
}

constexpr double deploy_percentiles[] = {50, 90, 99};

std::string endings_text(const provider_figures& f) {
  std::string out;
  uint64_t ended = 0;
  for (auto& [state, n] : f.endings) {
    out += (out.empty() ? "" : ", ") + state + " " + std::to_string(n);
    ended += n;
  }
  return std::to_string(f.accepted) + " accepted, " + std::to_string(ended)
         + " ended" + (out.empty() ? "" : " (" + out + ")");
}

} // namespace

std::string summary_text(const run_description& d, const run_results& r,
                         const deployment_figures& deployments) {
  std::string out = "heaven loadtest: " + describe(d) + "\n";
  out += "  sent " + std::to_string(r.sent) + " in " + fixed(r.send_seconds)
         + " s (" + fixed(r.achieved_rate, 1) + "/s";
  if (d.rate > 0)
    out += " of " + fixed(d.rate, 0) + "/s asked";
  out += "), answered " + std::to_string(r.answered) + ", errors "
         + std::to_string(r.errors);
  if (r.unsent > 0)
    out += ", never sent " + std::to_string(r.unsent);
  if (r.connect_errors > 0)
    out += ", failed connects " + std::to_string(r.connect_errors);
  out += "\n\n  status    answers\n";
  for (auto& [status, n] : r.answers) {
    char line[64];
    std::snprintf(line, sizeof(line), "  %6d %10llu\n", status,
                  static_cast<unsigned long long>(n));
    out += line;
  }
  out += std::string{"\n  latency (ms, from when each request "}
         + (d.rate > 0 ? "was due" : "was sent") + ")\n";
  for (auto& p : summary_percentiles) {
    char line[64];
    std::snprintf(line, sizeof(line), "  %-7s %10.2f\n", p.label,
                  ms(r.latency.percentile(p.percent)));
    out += line;
  }
  char line[160];
  std::snprintf(line, sizeof(line), "  %-7s %10.2f\n", "max",
                ms(r.latency.max()));
  out += line;
  if (!deployments.empty())
    out += "\n  deployments: ms from each webhook to the first status of each "
           "state\n";
  for (auto& [provider, f] : deployments) {
    out += "  " + provider + ": " + endings_text(f) + "\n";
    for (auto& [state, h] : rows_of(f)) {
      std::snprintf(line, sizeof(line),
                    "    %-12s %6llu  p50 %9.1f  p90 %9.1f  p99 %9.1f  "
                    "max %9.1f\n",
                    state.c_str(), static_cast<unsigned long long>(h->count()),
                    ms(h->percentile(50)), ms(h->percentile(90)),
                    ms(h->percentile(99)), ms(h->max()));
      out += line;
    }
  }
  return out;
}

std::string summary_json(const run_description& d, const run_results& r,
                         const deployment_figures& deployments) {
  nlohmann::json answers = nlohmann::json::object();
  for (auto& [status, n] : r.answers)
    answers[std::to_string(status)] = n;
  nlohmann::json latency = nlohmann::json::object();
  for (auto& p : summary_percentiles)
    latency[p.key] = ms(r.latency.percentile(p.percent));
  latency["max"] = ms(r.latency.max());
  latency["min"] = ms(r.latency.min());
  latency["mean"] = r.latency.mean() / 1000.0;
  nlohmann::json out = {
    {"target", d.target},
    {"event", d.event},
    {"mode", d.rate > 0 ? "open" : "closed"},
    {"asked_rate", d.rate},
    {"duration_s", d.duration_s},
    {"connections", d.connections},
    {"sent", r.sent},
    {"unsent", r.unsent},
    {"answered", r.answered},
    {"answers", answers},
    {"errors", r.errors},
    {"connect_errors", r.connect_errors},
    {"rate", r.achieved_rate},
    {"send_seconds", r.send_seconds},
    {"elapsed_seconds", r.elapsed_seconds},
    {"latency_ms", latency},
  };
  if (!r.first_error.empty())
    out["first_error"] = r.first_error;
  auto figures = [](const histogram& h) {
    nlohmann::json j = {{"count", h.count()}, {"max", ms(h.max())}};
    for (double p : deploy_percentiles)
      j["p" + fixed(p, 0)] = ms(h.percentile(p));
    return j;
  };
  for (auto& [provider, f] : deployments) {
    nlohmann::json states = nlohmann::json::object();
    for (auto& [state, h] : f.to_state)
      states[state] = figures(h);
    out["deployments"][provider] = {{"accepted", f.accepted},
                                    {"endings", f.endings},
                                    {"to_status_ms", states},
                                    {"to_terminal_ms", figures(f.to_terminal)}};
  }
  return out.dump();
}

std::string html_report(const run_description& d, const run_results& r,
                        const deployment_figures& deployments) {
  std::string out
    = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
      "<title>heaven loadtest</title><style>"
      "body{font-family:sans-serif;margin:2em;color:#222}"
      "table{border-collapse:collapse;margin:1em 0}"
      "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
      "</style></head><body>\n<h1>heaven loadtest</h1>\n<p>"
      + html_escape(describe(d)) + "</p>\n";
  out += "<p>Sent " + std::to_string(r.sent) + " in " + fixed(r.send_seconds)
         + " s (" + fixed(r.achieved_rate, 1) + "/s), answered "
         + std::to_string(r.answered) + ", errors " + std::to_string(r.errors)
         + (r.first_error.empty() ? ""
                                  : " (" + html_escape(r.first_error) + ")")
         + ".</p>\n";
  out += "<table><tr><th>status</th><th>answers</th></tr>\n";
  for (auto& [status, n] : r.answers)
    out += "<tr><td>" + std::to_string(status) + "</td><td>" + std::to_string(n)
           + "</td></tr>\n";
  out += "</table>\n<table><tr><th>latency</th><th>ms</th></tr>\n";
  for (auto& p : summary_percentiles)
    out += "<tr><td>" + std::string{p.label} + "</td><td>"
           + fixed(ms(r.latency.percentile(p.percent))) + "</td></tr>\n";
  out += "<tr><td>max</td><td>" + fixed(ms(r.latency.max()))
         + "</td></tr>\n</table>\n";
  for (auto& [provider, f] : deployments) {
    out += "<h2>" + html_escape(provider) + " deployments</h2>\n<p>"
           + html_escape(endings_text(f))
           + "; ms from each webhook to the first status of each state:</p>\n"
             "<table><tr><th>status</th><th>count</th><th>p50</th>"
             "<th>p90</th><th>p99</th><th>max</th></tr>\n";
    for (auto& [state, h] : rows_of(f))
      out += "<tr><td>" + html_escape(state) + "</td><td>"
             + std::to_string(h->count()) + "</td><td>"
             + fixed(ms(h->percentile(50)), 1) + "</td><td>"
             + fixed(ms(h->percentile(90)), 1) + "</td><td>"
             + fixed(ms(h->percentile(99)), 1) + "</td><td>"
             + fixed(ms(h->max()), 1) + "</td></tr>\n";
    out += "</table>\n";
  }

  // Latency over time: each second's answers.
  series p50{"p50", "#1f77b4", {}}, p99{"p99", "#ff7f0e", {}},
    max{"max", "#d62728", {}}, rate{"answered/s", "#2ca02c", {}},
    sent{"sent/s", "#9467bd", {}};
  // The last second is only part of one: its counts are not a rate.
  auto whole = static_cast<std::size_t>(r.elapsed_seconds);
  for (std::size_t s = 0; s < r.seconds.size(); ++s) {
    auto& f = r.seconds[s];
    double x = static_cast<double>(s);
    if (s < whole) {
      rate.points.emplace_back(x, static_cast<double>(f.answered));
      sent.points.emplace_back(x, static_cast<double>(f.sent));
    }
    if (f.latency.count() == 0)
      continue;
    p50.points.emplace_back(x, ms(f.latency.percentile(50)));
    p99.points.emplace_back(x, ms(f.latency.percentile(99)));
    max.points.emplace_back(x, ms(f.latency.max()));
  }
  out += svg_chart("Latency over time (answers of each second)",
                   "seconds since the start", "ms", {p50, p99, max}, {});
  out += svg_chart("Requests per second", "seconds since the start", "requests",
                   {sent, rate}, {});

  // The distribution: x is log10(1 / (1 - q)), as HdrHistogram plots it.
  series dist{"latency", "#1f77b4", {}};
  double last_x = 5;
  for (int k = 0; k <= 50; ++k) {
    double x = k / 10.0;
    double q = 100.0 * (1.0 - std::pow(10, -x));
    dist.points.emplace_back(x, ms(r.latency.percentile(q)));
    if (r.latency.count() > 0 && 1.0 - q / 100.0 < 1.0 / r.latency.count()) {
      last_x = x;
      break;
    }
  }
  std::vector<std::pair<double, std::string>> ticks;
  const char* labels[] = {"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"};
  for (int k = 0; k <= 5 && k <= last_x; ++k)
    ticks.emplace_back(k, labels[k]);
  out += svg_chart("Latency by percentile", "percentile", "ms", {dist}, ticks);
  out += "</body></html>\n";
  return out;
}

} // namespace heaven::loadtest
