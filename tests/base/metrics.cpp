// Tests for heaven's metrics: counting and Prometheus' text format.

#include <boost/test/unit_test.hpp>

#include <string>

#include "base/metrics.hpp"

using namespace heaven::metrics;

BOOST_AUTO_TEST_SUITE(metrics_format)

BOOST_AUTO_TEST_CASE(counters_render_one_line_per_label_set) {
  counter c{{"test_things_total", "Things.", {"kind", "code"}}};
  std::string out;
  c.render(out);
  // No sample yet: only what it is.
  BOOST_TEST(out
             == "# HELP test_things_total Things.\n"
                "# TYPE test_things_total counter\n");
  c.add({"a", "201"});
  c.add({"a", "201"});
  c.add({"q\"x\\y\nz", "500"}, 0.5);
  BOOST_TEST(c.value({"a", "201"}) == 2);
  BOOST_TEST(c.value({"b", "201"}) == 0);
  out.clear();
  c.render(out);
  BOOST_TEST(out
               == "# HELP test_things_total Things.\n"
                  "# TYPE test_things_total counter\n"
                  "test_things_total{kind=\"a\",code=\"201\"} 2\n"
                  "test_things_total{kind=\"q\\\"x\\\\y\\nz\",code=\"500\"} "
                  "0.5\n",
             out);
  // Label values must match the family.
  BOOST_CHECK_THROW(c.add({"a"}), std::invalid_argument);
  // Without labels it is there at 0.
  counter plain{{"test_plain_total", "Plain.", {}}};
  out.clear();
  plain.render(out);
  BOOST_TEST(out
             == "# HELP test_plain_total Plain.\n"
                "# TYPE test_plain_total counter\n"
                "test_plain_total 0\n");
}

BOOST_AUTO_TEST_CASE(histograms_have_cumulative_buckets) {
  histogram h{{"test_seconds", "Time.", {"p"}}, {0.125, 1, 10}};
  h.observe({"x"}, 0.0625);
  h.observe({"x"}, 0.125); // on a bound: in it
  h.observe({"x"}, 5);
  h.observe({"x"}, 50);
  BOOST_TEST(h.count({"x"}) == 4u);
  BOOST_TEST(h.sum({"x"}) == 55.1875);
  std::string out;
  h.render(out);
  BOOST_TEST(out
               == "# HELP test_seconds Time.\n"
                  "# TYPE test_seconds histogram\n"
                  "test_seconds_bucket{p=\"x\",le=\"0.125\"} 2\n"
                  "test_seconds_bucket{p=\"x\",le=\"1\"} 2\n"
                  "test_seconds_bucket{p=\"x\",le=\"10\"} 3\n"
                  "test_seconds_bucket{p=\"x\",le=\"+Inf\"} 4\n"
                  "test_seconds_sum{p=\"x\"} 55.1875\n"
                  "test_seconds_count{p=\"x\"} 4\n",
             out);
  // One without labels is there, empty, from the start.
  histogram empty{{"test_empty_seconds", "Nothing.", {}}, {1}};
  out.clear();
  empty.render(out);
  BOOST_TEST(out
               == "# HELP test_empty_seconds Nothing.\n"
                  "# TYPE test_empty_seconds histogram\n"
                  "test_empty_seconds_bucket{le=\"1\"} 0\n"
                  "test_empty_seconds_bucket{le=\"+Inf\"} 0\n"
                  "test_empty_seconds_sum 0\n"
                  "test_empty_seconds_count 0\n",
             out);
}

BOOST_AUTO_TEST_CASE(outsiders_choose_no_label_values) {
  BOOST_TEST(webhook_event_label("deployment") == "deployment");
  BOOST_TEST(webhook_event_label("deployment_status") == "deployment_status");
  BOOST_TEST(webhook_event_label("status") == "status");
  BOOST_TEST(webhook_event_label("ping") == "ping");
  BOOST_TEST(webhook_event_label("push") == "other");
  BOOST_TEST(webhook_event_label("x\"y") == "other");
  BOOST_TEST(webhook_event_label("") == "other");
  BOOST_TEST(status_class(0) == "error");
  BOOST_TEST(status_class(201) == "2xx");
  BOOST_TEST(status_class(404) == "4xx");
  BOOST_TEST(status_class(503) == "5xx");
  BOOST_TEST(status_class(999) == "error");
}

BOOST_AUTO_TEST_CASE(the_scrape_has_heavens_and_the_process_metrics) {
  auto text = render();
  for (auto name :
       {"# TYPE heaven_webhooks_total counter\n",
        "# TYPE heaven_deployment_duration_seconds histogram\n",
        "heaven_deployments_running ", "heaven_deployments_waiting ",
        "heaven_store_requests_total ",
        "# TYPE process_cpu_seconds_total "
        "counter\n",
        "process_resident_memory_bytes ", "process_virtual_memory_bytes ",
        "process_open_fds ", "process_max_fds ", "process_start_time_seconds "})
    BOOST_TEST(text.find(name) != std::string::npos, name);
}

BOOST_AUTO_TEST_SUITE_END()
