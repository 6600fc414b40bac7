// The Boost.Test entry point linked into every test binary.
#define BOOST_TEST_MODULE heaven
#include <boost/test/unit_test.hpp>
