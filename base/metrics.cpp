#include "base/metrics.hpp"

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include <sys/resource.h>
#include <unistd.h>

namespace heaven::metrics {

namespace {

/// A number as Prometheus reads it: integers without a point, others in
/// their shortest exact form.
void number(std::string& out, double v) {
  if (v < 1e15 && v > -1e15
      && v == static_cast<double>(static_cast<int64_t>(v))) {
    out += std::to_string(static_cast<int64_t>(v));
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc{} ? end : buf);
}

void escape_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void header(std::string& out, const family_info& info, const char* type) {
  out += "# HELP " + info.name + " " + info.help + "\n";
  out += "# TYPE " + info.name + " " + type + "\n";
}

/// `{a="x",b="y"}` (and `extra`, e.g. `le="0.5"`), or "" without labels.
void labels(std::string& out, const std::vector<std::string>& names,
            const std::vector<std::string>& values,
            std::string_view extra = {}) {
  if (names.empty() && extra.empty())
    return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0)
      out += ',';
    out += names[i] + "=\"";
    escape_value(out, values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty())
      out += ',';
    out += extra;
  }
  out += '}';
}

std::vector<std::string> key(const family_info& info,
                             std::initializer_list<std::string_view> values) {
  if (values.size() != info.labels.size())
    throw std::invalid_argument(info.name + " takes "
                                + std::to_string(info.labels.size())
                                + " label value(s)");
  return {values.begin(), values.end()};
}

} // namespace

counter::counter(family_info info) : info_(std::move(info)) {
}

void counter::add(std::initializer_list<std::string_view> values, double by) {
  auto k = key(info_, values);
  std::lock_guard<std::mutex> guard{mtx_};
  values_[std::move(k)] += by;
}

double counter::value(std::initializer_list<std::string_view> values) const {
  auto k = key(info_, values);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = values_.find(k);
  return i == values_.end() ? 0 : i->second;
}

void counter::render(std::string& out) const {
  header(out, info_, "counter");
  std::lock_guard<std::mutex> guard{mtx_};
  // A counter without labels is there from the start, at 0.
  if (info_.labels.empty() && values_.empty()) {
    out += info_.name + " 0\n";
    return;
  }
  for (auto& [values, v] : values_) {
    out += info_.name;
    labels(out, info_.labels, values);
    out += ' ';
    number(out, v);
    out += '\n';
  }
}

gauge::gauge(family_info info) : info_(std::move(info)) {
}

void gauge::set(double v) {
  std::lock_guard<std::mutex> guard{mtx_};
  value_ = v;
}

void gauge::add(double by) {
  std::lock_guard<std::mutex> guard{mtx_};
  value_ += by;
}

double gauge::value() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return value_;
}

void gauge::render(std::string& out) const {
  header(out, info_, "gauge");
  out += info_.name + " ";
  number(out, value());
  out += '\n';
}

histogram::histogram(family_info info, std::vector<double> bounds)
  : info_(std::move(info)), bounds_(std::move(bounds)) {
}

void histogram::observe(std::initializer_list<std::string_view> values,
                        double v) {
  auto k = key(info_, values);
  std::lock_guard<std::mutex> guard{mtx_};
  auto& s = series_[std::move(k)];
  if (s.buckets.empty())
    s.buckets.resize(bounds_.size());
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    if (v <= bounds_[i]) {
      ++s.buckets[i];
      break;
    }
  ++s.count;
  s.sum += v;
}

uint64_t
histogram::count(std::initializer_list<std::string_view> values) const {
  auto k = key(info_, values);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = series_.find(k);
  return i == series_.end() ? 0 : i->second.count;
}

double histogram::sum(std::initializer_list<std::string_view> values) const {
  auto k = key(info_, values);
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = series_.find(k);
  return i == series_.end() ? 0 : i->second.sum;
}

void histogram::render(std::string& out) const {
  header(out, info_, "histogram");
  std::lock_guard<std::mutex> guard{mtx_};
  auto one = [&](const std::vector<std::string>& values, const series& s) {
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += s.buckets.empty() ? 0 : s.buckets[i];
      std::string le = "le=\"";
      number(le, bounds_[i]);
      le += '"';
      out += info_.name + "_bucket";
      labels(out, info_.labels, values, le);
      out += " " + std::to_string(cumulative) + "\n";
    }
    out += info_.name + "_bucket";
    labels(out, info_.labels, values, "le=\"+Inf\"");
    out += " " + std::to_string(s.count) + "\n";
    out += info_.name + "_sum";
    labels(out, info_.labels, values);
    out += ' ';
    number(out, s.sum);
    out += '\n';
    out += info_.name + "_count";
    labels(out, info_.labels, values);
    out += " " + std::to_string(s.count) + "\n";
  };
  // One without labels is there from the start, empty.
  if (info_.labels.empty() && series_.empty())
    one({}, series{});
  for (auto& [values, s] : series_)
    one(values, s);
}

namespace {

/// Seconds, from a second to an hour: deployments.
const std::vector<double> deployment_bounds = {1,   5,   10,   30,   60,  120,
                                               300, 600, 1200, 1800, 3600};
/// Seconds, from 100 us to 5 s: one commit to disk.
const std::vector<double> commit_bounds = {0.0001, 0.00025, 0.0005, 0.001,
                                           0.0025, 0.005,   0.01,   0.025,
                                           0.05,   0.1,     0.5,    1,
                                           5};

} // namespace

counter& webhooks() {
  static counter c{{"heaven_webhooks_total",
                    "Webhook requests to /events answered, by event and HTTP "
                    "status.",
                    {"event", "code"}}};
  return c;
}

counter& deployments_started() {
  static counter c{{"heaven_deployments_started_total",
                    "Deployments that started to run, by provider.",
                    {"provider"}}};
  return c;
}

counter& deployments_ended() {
  static counter c{{"heaven_deployments_ended_total",
                    "Deployments that ended, by provider and terminal state.",
                    {"provider", "state"}}};
  return c;
}

histogram& deployment_duration() {
  static histogram h{{"heaven_deployment_duration_seconds",
                      "Time from the start of a deployment's run to its end.",
                      {"provider"}},
                     deployment_bounds};
  return h;
}

gauge& deployments_running() {
  static gauge g{
    {"heaven_deployments_running", "Deployments running now.", {}}};
  return g;
}

gauge& deployments_waiting() {
  static gauge g{{"heaven_deployments_waiting",
                  "Deployments accepted and waiting for their turn "
                  "(HEAVEN_MAX_RUNNING) in this run.",
                  {}}};
  return g;
}

counter& outbox_messages() {
  static counter c{{"heaven_outbox_messages_total",
                    "Messages leaving through an outbox (status: GitHub "
                    "deployment statuses, notice and chat.*: chat, deploy: "
                    "auto-deployments), by outcome: delivered, retried (one "
                    "per failed attempt), dropped (given up).",
                    {"kind", "outcome"}}};
  return c;
}

counter& http_requests() {
  static counter c{{"heaven_http_requests_total",
                    "HTTP requests heaven made (GitHub, Heroku, AWS, chat), "
                    "by host and status class; error: no answer.",
                    {"host", "code"}}};
  return c;
}

histogram& store_commit_duration() {
  static histogram h{{"heaven_store_commit_duration_seconds",
                      "One group commit of the store, from its first request "
                      "to the commit on disk.",
                      {}},
                     commit_bounds};
  return h;
}

counter& store_requests() {
  static counter c{{"heaven_store_requests_total",
                    "Requests the store committed (in group commits).",
                    {}}};
  return c;
}

counter& ssh_sessions() {
  static counter c{{"heaven_ssh_sessions_total",
                    "SSH sessions heaven opened, or failed to open.",
                    {"outcome"}}};
  return c;
}

std::string_view webhook_event_label(std::string_view event) {
  for (std::string_view known :
       {"deployment", "deployment_status", "status", "ping"})
    if (event == known)
      return known;
  return "other";
}

std::string_view status_class(int status) {
  switch (status / 100) {
    case 1:
      return "1xx";
    case 2:
      return "2xx";
    case 3:
      return "3xx";
    case 4:
      return "4xx";
    case 5:
      return "5xx";
    default:
      return "error";
  }
}

namespace {

/// The standard process metrics, from /proc/self.
void process_metrics(std::string& out) {
  auto gauge_line = [&](const char* name, const char* help, const char* type,
                        double v) {
    out += std::string{"# HELP "} + name + " " + help + "\n";
    out += std::string{"# TYPE "} + name + " " + type + "\n";
    out += std::string{name} + " ";
    number(out, v);
    out += '\n';
  };
  long ticks = sysconf(_SC_CLK_TCK);
  long page = sysconf(_SC_PAGESIZE);
  std::string stat;
  try {
    std::ifstream in{"/proc/self/stat"};
    stat.assign(std::istreambuf_iterator<char>{in}, {});
  } catch (...) {
    stat.clear();
  }
  // The fields after the command (which may hold spaces), from field 3.
  auto close = stat.rfind(')');
  if (close != std::string::npos && ticks > 0) {
    std::istringstream fields{stat.substr(close + 2)};
    std::vector<std::string> f{std::istream_iterator<std::string>{fields}, {}};
    // utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based).
    if (f.size() >= 22) {
      double cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
      gauge_line("process_cpu_seconds_total",
                 "Total user and system CPU time spent in seconds.", "counter",
                 cpu);
      double boot = 0;
      std::ifstream in{"/proc/stat"};
      for (std::string line; std::getline(in, line);)
        if (line.rfind("btime ", 0) == 0)
          boot = std::stod(line.substr(6));
      gauge_line("process_start_time_seconds",
                 "Start time of the process since unix epoch in seconds.",
                 "gauge", boot + std::stod(f[19]) / ticks);
      gauge_line("process_virtual_memory_bytes",
                 "Virtual memory size in bytes.", "gauge", std::stod(f[20]));
      gauge_line("process_resident_memory_bytes",
                 "Resident memory size in bytes.", "gauge",
                 std::stod(f[21]) * page);
    }
  }
  std::error_code ec;
  double fds = 0;
  for (auto i = std::filesystem::directory_iterator{"/proc/self/fd", ec};
       !ec && i != std::filesystem::directory_iterator{}; i.increment(ec))
    ++fds;
  gauge_line("process_open_fds", "Number of open file descriptors.", "gauge",
             fds);
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
    gauge_line("process_max_fds", "Maximum number of open file descriptors.",
               "gauge", static_cast<double>(lim.rlim_cur));
}

} // namespace

std::string render() {
  std::string out;
  webhooks().render(out);
  deployments_started().render(out);
  deployments_ended().render(out);
  deployment_duration().render(out);
  deployments_running().render(out);
  deployments_waiting().render(out);
  outbox_messages().render(out);
  http_requests().render(out);
  store_commit_duration().render(out);
  store_requests().render(out);
  ssh_sessions().render(out);
  process_metrics(out);
  return out;
}

} // namespace heaven::metrics
