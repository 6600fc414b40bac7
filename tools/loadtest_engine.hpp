/// The request engine of `heaven loadtest`: one thread, epoll, a pool of
/// keep-alive HTTP/1.1 connections (non-blocking sockets), each with at
/// most one request in flight.
///
/// Open loop (a rate): request i is due at t0 + i/rate, and its latency
/// counts from then, however late a free connection let it leave: no
/// coordinated omission (as wrk2 and vegeta measure). Closed loop (no
/// rate): every connection sends its next request as soon as the previous
/// one is answered, and latency counts from the send.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tools/loadtest_histogram.hpp"

namespace heaven::loadtest {

class request_maker;

/// A host (numeric address or name) and port to send to.
struct endpoint {
  std::string host;
  uint16_t port = 0;
};

struct run_options {
  /// Numeric address or name of the target, its port.
  std::string host;
  uint16_t port = 0;
  /// Further targets (several instances of one service): connection i
  /// goes to target i % (1 + more_targets.size()), the first being
  /// host:port, so the connections are spread round-robin.
  std::vector<endpoint> more_targets;
  /// Requests per second; 0 for a closed loop.
  double rate = 0;
  double duration_s = 10;
  /// Connections, and so the most requests in flight.
  int connections = 64;
  /// How long, after the last request was due, answers are awaited.
  double timeout_s = 10;
  /// A progress line on stderr once a second.
  bool progress = false;
  /// Whether stderr is a terminal (the line is rewritten in place).
  bool progress_tty = false;
  /// When set, called with each answer: the request's number, when it was
  /// sent (steady_clock nanoseconds), the status code.
  std::function<void(uint64_t n, int64_t sent_ns, int status)> on_answer;
};

/// What happened in one second of the run (counted from t0).
struct second_figures {
  uint64_t sent = 0;
  uint64_t answered = 0;
  uint64_t errors = 0;
  /// Latencies of the answers that arrived in that second.
  histogram latency;
};

struct run_results {
  /// Requests written (or attempted) to a connection.
  uint64_t sent = 0;
  /// Open loop: requests that were due but never left (no connection got
  /// free before the end).
  uint64_t unsent = 0;
  uint64_t answered = 0;
  /// Requests sent and never answered (connection reset or closed, bad
  /// response, no answer before the end).
  uint64_t errors = 0;
  /// Connection attempts that failed.
  uint64_t connect_errors = 0;
  /// The first failure, for the message.
  std::string first_error;
  /// Answers by status code.
  std::map<int, uint64_t> answers;
  /// Latency of every answer, microseconds.
  histogram latency;
  std::vector<second_figures> seconds;
  /// Seconds from t0 to the last send (or the asked duration, if later).
  double send_seconds = 0;
  /// Seconds from t0 to the end of the run.
  double elapsed_seconds = 0;
  /// Requests sent per second of `send_seconds`.
  double achieved_rate = 0;
  /// Stopped by SIGINT/SIGTERM.
  bool interrupted = false;
};

/// Runs the load as `opts` asks, requests from `maker`. Throws
/// std::runtime_error when no connection to the target can be opened.
run_results run_load(const run_options& opts, request_maker& maker);

} // namespace heaven::loadtest
