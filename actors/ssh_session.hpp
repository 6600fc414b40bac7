/// One SSH connection to one host (see actors/ssh.hpp), used only by its
/// worker's thread. libssh2 stays inside ssh_session.cpp. Private to
/// actors/ssh*.cpp.
#pragma once

#include <memory>

#include <caf/actor.hpp>

#include "actors/ssh.hpp"
#include "actors/ssh_io.hpp"

namespace heaven::ssh_detail {

class session;

/// A session to `opts.host`, connecting on its first command, sending each
/// output line to `sink`; waits end early once `sw` trips.
std::shared_ptr<session> make_session(ssh_options opts, line_sink sink,
                                      std::shared_ptr<cancel_switch> sw);

/// Runs `cmd` (connecting first if needed) and says how it ended.
ssh_result run_command(session& s, const ssh_command& cmd);

/// Drops the session and its socket now.
void close_session(session& s);

} // namespace heaven::ssh_detail
