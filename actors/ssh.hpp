/// The SSH actor: one libssh2 session to one host, running commands one
/// after another and streaming their output line by line.
///
/// Each actor does its blocking work on a thread of its own (a detached
/// worker actor) and never on a CAF scheduler thread, so many hosts run in
/// parallel. libssh2 runs in non-blocking mode and both output streams are
/// read together, so a command flooding stderr while stdout is read cannot
/// deadlock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/fwd.hpp>

#include "base/log_format.hpp"
#include "base/ssh_key.hpp"
#include "messages/interfaces.hpp"

namespace heaven {

/// Where and how an SSH actor signs in.
struct ssh_options {
  /// Host name or address.
  std::string host;
  int port = 22;
  /// The remote user.
  std::string user;
  /// The private key's text with real newlines (OpenSSH format or PEM; see
  /// unescape_private_key for Heaven's one-line DEPLOYMENT_PRIVATE_KEY).
  /// ed25519 or ECDSA; never written to disk, never logged.
  std::string private_key;
  /// Path of the known_hosts file the host's key must be in (required: an
  /// unknown or changed host key fails every command).
  std::string known_hosts;
  /// Milliseconds for connecting, the SSH handshake and authentication.
  int64_t connect_timeout_ms = 10000;
  /// Milliseconds a timed-out or cancelled command's remote process group
  /// has between SIGTERM and SIGKILL.
  int64_t kill_grace_ms = 2000;
  /// What each output line is prefixed with ("" means `host`).
  std::string label;
  /// The deployment the commands are for: the log context of the actor's
  /// own lines (see log_scope). Empty when none.
  log_context about;
};

/// Spawns an SSH actor for `opts.host`. It connects on its first command
/// (and again after a cancel-free connection loss), reuses the session for
/// the commands after it, and sends each output line to `sink` as
/// `(log_atom, log_line{stream::out|err, "<label> <line>"})`.
///
/// Each command runs as `echo heaven-ssh-pid=$$` followed by the command
/// on its own line, in the remote user's (POSIX) login shell; that first
/// line is consumed, not forwarded, and tells which remote process group to
/// kill on a timeout or cancel (SIGTERM, then SIGKILL after
/// `kill_grace_ms`, through a second channel: OpenSSH kills nothing itself
/// when a channel without a pty closes).
///
/// Answers: exit_code (and exit_signal, with exit_code -1, when a signal
/// ended it); error "timed out after N ms" when `ssh_command.timeout_ms`
/// passes; error "cancelled" after `cancel_atom`, which closes the channel
/// and the session at once and makes every later command answer
/// "cancelled" too; other errors (connection, host key, authentication)
/// name `host:port`. The actor ends when its last handle is gone; a command
/// in flight then is cancelled.
ssh_actor spawn_ssh(caf::actor_system& sys, ssh_options opts, line_sink sink);

} // namespace heaven
