// A heaven that is about to be killed, for the tests of leftovers: it
// opens deployment <id>'s scope in <data dir> and runs <script> in it, as
// heaven runs a deploy script, then waits for its SIGKILL.
//
//   heaven_scope_helper <data dir> <id> on|off <cwd> <script>
//
// "on" lets scopes be cgroups where the machine allows it, "off" forces the
// fallback.

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <unistd.h>

#include <caf/actor.hpp>

#include "actors/children.hpp"
#include "actors/process.hpp"
#include "actors/scope.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: heaven_scope_helper DATA_DIR ID on|off CWD SCRIPT\n";
    return 2;
  }
  heaven::start_reaper();
  heaven::process_scopes scopes{argv[1], std::string{argv[3]} == "on"};
  heaven::process_spec spec;
  spec.argv = {"/bin/sh", "-c", argv[5]};
  auto path = std::getenv("PATH");
  spec.env = {{"PATH", path ? path : "/usr/bin:/bin"}};
  spec.cwd = argv[4];
  spec.scope = scopes.open(std::stoll(argv[2]));
  // The script's parent thread waits for it, as heaven's runner threads do.
  std::thread{[spec] {
    heaven::run_process(spec, std::function<void(heaven::log_line)>{},
                        heaven::process_watcher{});
  }}.detach();
  for (;;)
    ::pause();
}
