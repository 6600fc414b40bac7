#include "actors/ssh.hpp"

#include <memory>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/ssh_session.hpp"
#include "messages/atoms.hpp"

namespace heaven {

namespace {

using namespace ssh_detail;

/// The worker: a detached actor that owns the session and blocks in it.
ssh_actor::behavior_type ssh_worker(ssh_actor::pointer self, ssh_options opts,
                                    line_sink sink,
                                    std::shared_ptr<cancel_switch> sw) {
  // The session's lines are logged in these handlers, on this thread.
  auto about = std::make_shared<const log_context>(opts.about);
  auto s = make_session(std::move(opts), std::move(sink), std::move(sw));
  return {
    [s, about](ssh_command& cmd) -> ssh_result {
      log_scope in{*about};
      return run_command(*s, cmd);
    },
    [s, about](cancel_atom) {
      log_scope in{*about};
      close_session(*s);
    },
  };
}

/// The front: answers on the scheduler without blocking; hands commands to
/// the worker and trips the cancel switch the worker's poll() watches.
ssh_actor::behavior_type ssh_front(ssh_actor::pointer self, ssh_options opts,
                                   line_sink sink) {
  auto sw = std::make_shared<cancel_switch>();
  auto worker = self->spawn<caf::detached + caf::linked>(
    ssh_worker, std::move(opts), std::move(sink), sw);
  // When the last handle is gone, a command in flight stops at once.
  self->attach_functor([sw] { sw->trip(); });
  return {
    [self, worker](ssh_command& cmd) {
      return self->delegate(worker, std::move(cmd));
    },
    [self, worker, sw](cancel_atom) {
      sw->trip();
      self->send(worker, cancel_atom::value);
    },
  };
}

} // namespace

ssh_actor spawn_ssh(caf::actor_system& sys, ssh_options opts, line_sink sink) {
  return sys.spawn(ssh_front, std::move(opts), std::move(sink));
}

} // namespace heaven
