/// heaven's Prometheus metrics: one set per process, counted where things
/// happen (the ingress, the receiver, deployments, outboxes, the HTTP
/// client, the store, SSH sessions) and rendered by `GET /metrics` in
/// Prometheus' text format.
///
/// Label values that outsiders choose (an event name in a header) must be
/// mapped to a fixed set before they are counted: every distinct value is a
/// series kept for the life of the process.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace heaven::metrics {

/// What every family has: a name, its help text and its label names.
struct family_info {
  std::string name;
  std::string help;
  std::vector<std::string> labels;
};

/// A counter per combination of label values (given in the order of the
/// family's label names).
class counter {
public:
  explicit counter(family_info info);
  void add(std::initializer_list<std::string_view> values, double by = 1);
  /// The current value (0 for a combination never counted).
  double value(std::initializer_list<std::string_view> values) const;
  void render(std::string& out) const;

private:
  family_info info_;
  mutable std::mutex mtx_;
  std::map<std::vector<std::string>, double> values_;
};

/// A gauge without labels.
class gauge {
public:
  explicit gauge(family_info info);
  void set(double v);
  void add(double by);
  double value() const;
  void render(std::string& out) const;

private:
  family_info info_;
  mutable std::mutex mtx_;
  double value_ = 0;
};

/// A histogram per combination of label values, with fixed upper bounds.
class histogram {
public:
  histogram(family_info info, std::vector<double> bounds);
  void observe(std::initializer_list<std::string_view> values, double v);
  /// Observations so far of a combination, and their sum.
  uint64_t count(std::initializer_list<std::string_view> values) const;
  double sum(std::initializer_list<std::string_view> values) const;
  void render(std::string& out) const;

private:
  struct series {
    std::vector<uint64_t> buckets; // per bound, not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  family_info info_;
  std::vector<double> bounds_;
  mutable std::mutex mtx_;
  std::map<std::vector<std::string>, series> series_;
};

// -- heaven's metrics ---------------------------------------------------------

/// heaven_webhooks_total{event,code}: `/events` requests answered, by
/// event (see webhook_event_label) and HTTP status.
counter& webhooks();
/// heaven_deployments_started_total{provider}
counter& deployments_started();
/// heaven_deployments_ended_total{provider,state}
counter& deployments_ended();
/// heaven_deployment_duration_seconds{provider}: from the start of a
/// deployment's run to its end.
histogram& deployment_duration();
/// heaven_deployments_running, heaven_deployments_waiting
gauge& deployments_running();
gauge& deployments_waiting();
/// heaven_outbox_messages_total{kind,outcome}: messages leaving through an
/// outbox (kind "status" = GitHub statuses, "notice", "chat.<service>",
/// "deploy" = auto-deployments) that were delivered, retried (one per
/// failed attempt) or dropped (given up).
counter& outbox_messages();
/// heaven_http_requests_total{host,code}: requests heaven made, by host
/// and status class ("2xx" ... "5xx", "error" for no answer).
counter& http_requests();
/// heaven_store_commit_duration_seconds: one group commit, from BEGIN to
/// COMMIT on disk.
histogram& store_commit_duration();
/// heaven_store_requests_total: requests the store committed.
counter& store_requests();
/// heaven_ssh_sessions_total{outcome}: SSH sessions opened ("opened") or
/// that could not be ("failed").
counter& ssh_sessions();

/// The event label of a webhook: one of the events heaven knows, else
/// "other" (the header is the sender's to choose).
std::string_view webhook_event_label(std::string_view event);

/// The status class label of an HTTP status ("2xx" ... "5xx"; "error"
/// for 0 or anything else).
std::string_view status_class(int status);

/// Every metric above and the standard process_* metrics (CPU seconds,
/// resident and virtual memory, open and maximum file descriptors, start
/// time), in Prometheus' text format (version 0.0.4).
std::string render();

} // namespace heaven::metrics
