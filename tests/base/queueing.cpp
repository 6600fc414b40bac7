// Tests of base/queueing: how payload.config.queue and .supersede and
// HEAVEN_QUEUE_DEPLOYMENTS decide whether a deployment to a busy app and
// environment waits, and the words of its waiting.
#include <boost/test/unit_test.hpp>

#include <string>

#include "base/queueing.hpp"

using namespace heaven;

namespace {

queue_mode mode(const std::string& payload, bool queue_all) {
  deployment_request req;
  req.payload_json = payload;
  return read_queue_mode(req, queue_all);
}

} // namespace

BOOST_AUTO_TEST_SUITE(queueing_tests)

BOOST_AUTO_TEST_CASE(the_payload_decides_else_the_setting) {
  for (bool all : {false, true}) {
    auto fallback = all ? queue_mode::wait : queue_mode::refuse;
    // Nothing said, or nothing readable: the setting.
    for (auto payload :
         {"", "null", "[1]", "{", "{}", R"({"config":[]})", R"({"config":{}})",
          R"({"config":{"queue":1}})", R"({"config":{"queue":"false"}})",
          R"({"config":{"supersede":"true"}})", R"({"queue":true})"})
      BOOST_TEST((mode(payload, all) == fallback), payload << " " << all);
    BOOST_TEST((mode(R"({"config":{"queue":true}})", all) == queue_mode::wait));
    BOOST_TEST(
      (mode(R"({"config":{"queue":false}})", all) == queue_mode::refuse));
    // supersede implies queue, even against queue: false.
    BOOST_TEST(
      (mode(R"({"config":{"supersede":true}})", all) == queue_mode::supersede));
    BOOST_TEST((mode(R"({"config":{"supersede":true,"queue":false}})", all)
                == queue_mode::supersede));
    BOOST_TEST((mode(R"({"config":{"supersede":false}})", all) == fallback));
  }
}

BOOST_AUTO_TEST_CASE(the_words_name_githubs_ids) {
  BOOST_TEST(waiting_description(1234)
             == "waiting for deployment 1234 to finish");
  BOOST_TEST(superseded_description(1235) == "superseded by deployment 1235");
}

BOOST_AUTO_TEST_SUITE_END()
