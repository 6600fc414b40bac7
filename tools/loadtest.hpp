/// `heaven loadtest`: the load-test harness operators run against any
/// heaven (or, without --target, against a heaven of its own).
#pragma once

#include <string>
#include <vector>

namespace heaven::loadtest {

/// The usage text of `heaven loadtest`.
std::string usage_text();

/// Runs `heaven loadtest` with `args` (the words after "loadtest");
/// `self` is the heaven binary (started as the local target). Returns the
/// exit status: 0 done as asked, 1 not (target down, rate not reached,
/// requests unanswered), 2 for usage errors.
int loadtest_command(const std::vector<std::string>& args,
                     const std::string& self);

} // namespace heaven::loadtest
