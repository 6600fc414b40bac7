/// Atoms used across heaven's actor interfaces (at most 10 characters each).
#pragma once

#include <caf/atom.hpp>

namespace heaven {

using accept_atom = caf::atom_constant<caf::atom("accept")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using exited_atom = caf::atom_constant<caf::atom("exited")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using log_atom = caf::atom_constant<caf::atom("log")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;
using prepared_atom = caf::atom_constant<caf::atom("prepared")>;
using result_atom = caf::atom_constant<caf::atom("result")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using started_atom = caf::atom_constant<caf::atom("started")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using chunk_atom = caf::atom_constant<caf::atom("chunk")>;
using stream_atom = caf::atom_constant<caf::atom("stream")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using locks_atom = caf::atom_constant<caf::atom("locks")>;
using latest_atom = caf::atom_constant<caf::atom("latest")>;
using claim_atom = caf::atom_constant<caf::atom("claim")>;
using http_done_atom = caf::atom_constant<caf::atom("httpDone")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using outbox_atom = caf::atom_constant<caf::atom("outbox")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using shelve_atom = caf::atom_constant<caf::atom("shelve")>;
using detail_atom = caf::atom_constant<caf::atom("detail")>;
using repos_atom = caf::atom_constant<caf::atom("repos")>;
using unlock_atom = caf::atom_constant<caf::atom("unlock")>;
using switch_atom = caf::atom_constant<caf::atom("switch")>;
using create_atom = caf::atom_constant<caf::atom("create")>;
using swept_atom = caf::atom_constant<caf::atom("swept")>;
using lease_atom = caf::atom_constant<caf::atom("lease")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using secret_atom = caf::atom_constant<caf::atom("secret")>;

} // namespace heaven
