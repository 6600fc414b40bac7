#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "base/retry.hpp"

using namespace heaven;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(retry)

BOOST_AUTO_TEST_CASE(a_retry_is_told_in_one_line) {
  BOOST_TEST(retry_line("status success of octo/app deployment 7", "HTTP 503",
                        2, 5, 4000ms)
             == "status success of octo/app deployment 7 failed (HTTP 503), "
                "attempt 2 of 5; trying again in 4000 ms");
  // No limit: no "of M".
  BOOST_TEST(retry_line("recording the end of deployment 3",
                        "store: database or disk is full", 9, 0, 30000ms)
             == "recording the end of deployment 3 failed (store: database "
                "or disk is full), attempt 9; trying again in 30000 ms");
  BOOST_TEST(retry_line("Polling the build", "no answer", 1, 1, 0ms)
             == "Polling the build failed (no answer), attempt 1 of 1; "
                "trying again in 0 ms");
}

BOOST_AUTO_TEST_CASE(jitter_is_on_by_default) {
  retry_policy p;
  BOOST_TEST(p.jitter == 0.2);
  BOOST_TEST(p.jitter == default_jitter);
  p.first_backoff = 1000ms;
  // The random share comes off the full wait: at most 20 % of it.
  p.random = [] { return 0.5; };
  BOOST_TEST(backoff(p, 1).count() == 900);
  BOOST_TEST(backoff(p, 2).count() == 1800);
  p.random = [] { return 0.0; };
  BOOST_TEST(backoff(p, 1).count() == 1000);
}

BOOST_AUTO_TEST_CASE(jittered_waits_stay_between_the_bounds) {
  retry_policy p;
  p.first_backoff = 100ms;
  p.max_backoff = 1000ms;
  // The extremes of the random source, and beyond what it may return.
  for (double r : {0.0, 0.25, 0.999999, 1.0, 1.5, -0.5}) {
    p.random = [r] { return r; };
    for (int failures = 1; failures <= 8; ++failures) {
      p.jitter = 0;
      auto full = backoff(p, failures).count();
      p.jitter = 0.2;
      auto wait = backoff(p, failures).count();
      BOOST_TEST(wait <= full, r << " " << failures);
      BOOST_TEST(wait >= full - full / 5, r << " " << failures);
      BOOST_TEST(wait <= p.max_backoff.count(), r << " " << failures);
    }
  }
  // The full wait itself: doubling up to max_backoff.
  p.jitter = 0;
  std::vector<int64_t> full;
  for (int failures = 1; failures <= 6; ++failures)
    full.push_back(backoff(p, failures).count());
  BOOST_TEST(full == (std::vector<int64_t>{100, 200, 400, 800, 1000, 1000}));
  // Half a share at the cap: 1000 less half of 20 %.
  p.jitter = 0.2;
  p.random = [] { return 0.5; };
  BOOST_TEST(backoff(p, 6).count() == 900);
  // Jitter 1 may take the whole wait, never more.
  p.jitter = 1;
  p.random = [] { return 1.0; };
  BOOST_TEST(backoff(p, 3).count() == 0);
}

BOOST_AUTO_TEST_CASE(the_default_randomness_stays_within_the_bounds) {
  retry_policy p;
  p.first_backoff = 1000ms;
  for (int i = 0; i < 1000; ++i) {
    auto wait = backoff(p, 1).count();
    BOOST_TEST_REQUIRE(wait > 800);
    BOOST_TEST_REQUIRE(wait <= 1000);
  }
}

BOOST_AUTO_TEST_CASE(a_wait_the_server_named_is_never_shortened) {
  retry_policy p;
  p.first_backoff = 100ms;
  p.random = [] { return 1.0; }; // The largest share jitter may take.
  http_response res;
  res.status = 429;
  res.headers = {{"retry-after", "3"}};
  BOOST_TEST(retry_wait(p, 1, res).count() == 3000);
  BOOST_TEST(retry_wait(p, 4, res).count() == 3000);
  // Without one, the jittered backoff.
  res.headers.clear();
  BOOST_TEST(retry_wait(p, 1, res).count() == 80);
}

BOOST_AUTO_TEST_SUITE_END()
