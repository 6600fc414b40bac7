#include "actors/ssh_session.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include <caf/send.hpp>
#include <libssh2.h>
#include <spdlog/spdlog.h>

#include "base/metrics.hpp"
#include "base/ssh_key.hpp"
#include "messages/atoms.hpp"
#include "messages/errors.hpp"

namespace heaven::ssh_detail {

namespace {

/// "No deadline".
constexpr auto no_deadline = clock_type::time_point::max();

/// How long closing a channel or the session may take before heaven lets
/// go of it.
constexpr auto short_wait = std::chrono::seconds(2);

/// How long a command stopped right after its start may take to print its
/// pid line (a loaded host can take seconds to start a session's shell).
constexpr auto pid_wait = std::chrono::seconds(10);

/// libssh2_init, once per process.
void init_libssh2() {
  static std::once_flag flag;
  std::call_once(flag, [] { libssh2_init(0); });
}

/// What ended waiting on a command or a libssh2 call.
enum class ended {
  /// It completed.
  done,
  /// The deadline passed.
  deadline,
  /// The cancel switch tripped.
  cancelled,
  /// libssh2 or the socket failed; `session::failure_` says why.
  failed,
};

} // namespace

/// One SSH connection to one host, used only by its worker's thread.
class session {
public:
  session(ssh_options opts, line_sink sink, std::shared_ptr<cancel_switch> sw)
    : opts_(std::move(opts)), sink_(std::move(sink)), switch_(std::move(sw)),
      key_problem_(private_key_problem(opts_.private_key)),
      where_(opts_.host + ":" + std::to_string(opts_.port)),
      label_(opts_.label.empty() ? opts_.host : opts_.label),
      output_(
        [this](stream source, std::string_view text) { emit(source, text); }) {
    init_libssh2();
  }

  session(const session&) = delete;
  session& operator=(const session&) = delete;

  ~session() {
    close();
  }

  /// Runs `cmd` (connecting first if needed) and says how it ended.
  ssh_result run(const ssh_command& cmd) {
    if (switch_->tripped)
      return failed("cancelled");
    if (!key_problem_.empty())
      return failed(key_problem_);
    if (ssh_ == nullptr) {
      if (auto err = connect()) {
        close();
        if (switch_->tripped)
          return failed("cancelled");
        metrics::ssh_sessions().add({"failed"});
        spdlog::warn("ssh {}: {}", where_, describe(err));
        return failed(describe(err));
      }
      metrics::ssh_sessions().add({"opened"});
    }
    return execute(cmd);
  }

  /// Drops the session and its socket now.
  void close() {
    if (ssh_ != nullptr) {
      auto deadline = clock_type::now() + short_wait;
      call(
        [&] {
          return libssh2_session_disconnect(ssh_, "heaven closed the session");
        },
        deadline, false);
      libssh2_session_free(ssh_);
      ssh_ = nullptr;
    }
    if (sock_ >= 0) {
      ::close(sock_);
      sock_ = -1;
    }
  }

private:
  // -- helpers ---------------------------------------------------------------

  static ssh_result failed(std::string why) {
    ssh_result result;
    result.error = std::move(why);
    return result;
  }

  /// libssh2's last error message.
  std::string last_error() const {
    char* msg = nullptr;
    int len = 0;
    if (ssh_ == nullptr)
      return "no session";
    libssh2_session_last_error(ssh_, &msg, &len, 0);
    return msg != nullptr && len > 0
             ? std::string(msg, static_cast<size_t>(len))
             : std::string{"unknown error"};
  }

  /// Waits until the socket is ready the way libssh2 needs it (checking
  /// at least every 200 ms), the deadline passes or (when `cancellable`)
  /// the cancel switch trips.
  ended wait_socket(clock_type::time_point deadline, bool cancellable) {
    std::array<pollfd, 2> fds{};
    short events = POLLIN;
    if (ssh_ != nullptr) {
      auto dirs = libssh2_session_block_directions(ssh_);
      events = 0;
      if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        events |= POLLIN;
      if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        events |= POLLOUT;
      if (events == 0)
        events = POLLIN;
    }
    fds[0] = pollfd{sock_, events, 0};
    fds[1] = pollfd{switch_->fd, POLLIN, 0};
    for (;;) {
      if (cancellable && switch_->tripped)
        return ended::cancelled;
      auto ms = poll_timeout(deadline, 200);
      if (!ms)
        return ended::deadline;
      auto rc = ::poll(fds.data(), cancellable ? 2 : 1, *ms);
      if (rc < 0 && errno == EINTR)
        continue;
      if (cancellable && switch_->tripped)
        return ended::cancelled;
      // Ready, or a quiet 200 ms: let libssh2 try again either way.
      return ended::done;
    }
  }

  /// Calls `fn` (a libssh2 call answering an int) until it no longer
  /// answers EAGAIN. Sets `rc` to its answer.
  template <class F>
  ended call(F fn, clock_type::time_point deadline, bool cancellable,
             int* rc = nullptr) {
    for (;;) {
      auto x = fn();
      if (x != LIBSSH2_ERROR_EAGAIN) {
        if (rc != nullptr)
          *rc = x;
        if (x < 0) {
          failure_ = last_error();
          return ended::failed;
        }
        return ended::done;
      }
      auto why = wait_socket(deadline, cancellable);
      if (why != ended::done)
        return why;
    }
  }

  /// Opens a session channel (waiting while libssh2 answers EAGAIN).
  ended open_channel(LIBSSH2_CHANNEL** out, clock_type::time_point deadline,
                     bool cancellable) {
    for (;;) {
      *out = libssh2_channel_open_session(ssh_);
      if (*out != nullptr)
        return ended::done;
      if (libssh2_session_last_errno(ssh_) != LIBSSH2_ERROR_EAGAIN) {
        failure_ = last_error();
        return ended::failed;
      }
      auto why = wait_socket(deadline, cancellable);
      if (why != ended::done)
        return why;
    }
  }

  // -- connecting
  // --------------------------------------------------------------

  /// Connects, verifies the host key and signs in; or says why not
  /// (ec::ssh_failed, ec::timed_out, ec::cancelled).
  caf::error connect() {
    auto fail = [](std::string why) {
      return make_error(ec::ssh_failed, std::move(why));
    };
    auto deadline = clock_type::now()
                    + std::chrono::milliseconds(opts_.connect_timeout_ms);
    auto timed_out = make_error(
      ec::timed_out, "connecting to " + where_ + " timed out after "
                       + std::to_string(opts_.connect_timeout_ms) + " ms");
    if (opts_.known_hosts.empty())
      return fail("no known_hosts file is configured for " + where_
                  + ": heaven verifies every host key");
    std::string why;
    sock_ = connect_tcp(opts_.host, opts_.port, opts_.connect_timeout_ms,
                        deadline, *switch_, why);
    if (sock_ < 0)
      return why == "cancelled" ? make_error(ec::cancelled, why) : fail(why);
    ssh_ = libssh2_session_init();
    if (ssh_ == nullptr)
      return fail("cannot start an SSH session to " + where_);
    libssh2_session_set_blocking(ssh_, 0);
    // Known hosts: read first, so the server is asked for a key type the
    // file knows (else an ed25519 entry is NOTFOUND against an ECDSA key).
    std::unique_ptr<LIBSSH2_KNOWNHOSTS, decltype(&libssh2_knownhost_free)>
      known{libssh2_knownhost_init(ssh_), libssh2_knownhost_free};
    if (!known
        || libssh2_knownhost_readfile(known.get(), opts_.known_hosts.c_str(),
                                      LIBSSH2_KNOWNHOST_FILE_OPENSSH)
             < 0)
      return fail("cannot read the known_hosts file " + opts_.known_hosts
                  + " (for " + where_ + ")");
    prefer_known_key_types(known.get());
    // The error of a step that did not end well; `failed` says why it
    // failed (after the step, which sets failure_).
    auto unless_done = [&](ended e, auto failed) -> caf::error {
      switch (e) {
        case ended::done:
          return {};
        case ended::deadline:
          return timed_out;
        case ended::cancelled:
          return make_error(ec::cancelled, "cancelled");
        case ended::failed:
          break;
      }
      return fail(failed());
    };
    auto handshake = call(
      [&] { return libssh2_session_handshake(ssh_, sock_); }, deadline, true);
    if (auto err = unless_done(handshake, [&] {
          return "SSH handshake with " + where_ + " failed: " + failure_;
        }))
      return err;
    if (auto why = verify_host_key(known.get()); !why.empty())
      return fail(why);
    auto signed_in = call(
      [&] {
        return libssh2_userauth_publickey_frommemory(
          ssh_, opts_.user.data(), opts_.user.size(), nullptr, 0,
          opts_.private_key.data(), opts_.private_key.size(), "");
      },
      deadline, true);
    if (auto err = unless_done(signed_in, [&] {
          return "cannot sign in as " + opts_.user + " to " + where_
                 + " with the deploy key: " + failure_;
        }))
      return err;
    spdlog::info("ssh {}: signed in as {}", where_, opts_.user);
    return {};
  }

  /// Asks the server for the host key types `known` has for this host.
  void prefer_known_key_types(LIBSSH2_KNOWNHOSTS* known) {
    std::vector<std::string> types;
    auto name = known_host_name(opts_.host, opts_.port);
    libssh2_knownhost* prev = nullptr;
    libssh2_knownhost* entry = nullptr;
    while (libssh2_knownhost_get(known, &entry, prev) == 0) {
      prev = entry;
      if (entry->name == nullptr
          || (name != entry->name && opts_.host != entry->name))
        continue;
      // The SSH names of each known_hosts key type.
      static const std::map<int, std::vector<const char*>> names = {
        {LIBSSH2_KNOWNHOST_KEY_ED25519, {"ssh-ed25519"}},
        {LIBSSH2_KNOWNHOST_KEY_ECDSA_256, {"ecdsa-sha2-nistp256"}},
        {LIBSSH2_KNOWNHOST_KEY_ECDSA_384, {"ecdsa-sha2-nistp384"}},
        {LIBSSH2_KNOWNHOST_KEY_ECDSA_521, {"ecdsa-sha2-nistp521"}},
        {LIBSSH2_KNOWNHOST_KEY_SSHRSA,
         {"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"}},
      };
      auto i = names.find(entry->typemask & LIBSSH2_KNOWNHOST_KEY_MASK);
      if (i != names.end())
        types.insert(types.end(), i->second.begin(), i->second.end());
    }
    auto methods = host_key_methods(types);
    if (methods.empty())
      return;
    if (libssh2_session_method_pref(ssh_, LIBSSH2_METHOD_HOSTKEY,
                                    methods.c_str())
        != 0)
      spdlog::debug("ssh {}: host key methods {} not supported", where_,
                    methods);
  }

  /// Checks the offered host key against known_hosts; "" or why it fails.
  std::string verify_host_key(LIBSSH2_KNOWNHOSTS* known) {
    size_t len = 0;
    int type = 0;
    auto key = libssh2_session_hostkey(ssh_, &len, &type);
    if (key == nullptr)
      return "the SSH server at " + where_ + " offered no host key";
    int key_mask = 0;
    std::string type_name = "UNKNOWN";
    switch (type) {
      case LIBSSH2_HOSTKEY_TYPE_RSA:
        key_mask = LIBSSH2_KNOWNHOST_KEY_SSHRSA;
        type_name = "RSA";
        break;
      case LIBSSH2_HOSTKEY_TYPE_DSS:
        key_mask = LIBSSH2_KNOWNHOST_KEY_SSHDSS;
        type_name = "DSA";
        break;
      case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        key_mask = LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
        type_name = "ECDSA";
        break;
      case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        key_mask = LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
        type_name = "ECDSA";
        break;
      case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        key_mask = LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
        type_name = "ECDSA";
        break;
      case LIBSSH2_HOSTKEY_TYPE_ED25519:
        key_mask = LIBSSH2_KNOWNHOST_KEY_ED25519;
        type_name = "ED25519";
        break;
      default:
        break;
    }
    auto hash = reinterpret_cast<const unsigned char*>(
      libssh2_hostkey_hash(ssh_, LIBSSH2_HOSTKEY_HASH_SHA256));
    auto fingerprint = host_key_fingerprint(type_name, hash);
    libssh2_knownhost* match = nullptr;
    auto rc = libssh2_knownhost_checkp(
      known, opts_.host.c_str(), opts_.port, key, len,
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_mask,
      &match);
    switch (rc) {
      case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return {};
      case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return "host key of " + where_ + " does not match " + opts_.known_hosts
               + " (" + fingerprint
               + "): the host's key changed or someone is in between";
      case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return "host key of " + where_ + " is not in " + opts_.known_hosts
               + " (" + fingerprint + ")";
      default:
        return "cannot check the host key of " + where_ + " against "
               + opts_.known_hosts + " (" + fingerprint + ")";
    }
  }

  // -- running
  // -------------------------------------------------------------------

  /// Sends a line of stream `source` to the sink.
  void emit(stream source, std::string_view text) {
    if (!sink_)
      return;
    caf::anon_send(sink_, log_atom::value,
                   log_line{source, label_ + " " + std::string{text}});
  }

  /// Reads both streams of `ch` until the remote's EOF (ended::done), the
  /// deadline, a cancel (when `cancellable`), a failure, or - with
  /// `until_pid` - the remote pid is known.
  ended pump(LIBSSH2_CHANNEL* ch, clock_type::time_point deadline,
             bool cancellable, bool until_pid = false) {
    std::vector<char> buf(64 * 1024);
    for (;;) {
      if (cancellable && switch_->tripped)
        return ended::cancelled;
      if (clock_type::now() >= deadline)
        return ended::deadline;
      bool got = false;
      for (int index = 0; index < 2; ++index) {
        auto n = libssh2_channel_read_ex(ch, index, buf.data(), buf.size());
        if (n > 0) {
          output_.feed(index, buf.data(), static_cast<size_t>(n));
          got = true;
        } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
          failure_ = last_error();
          return ended::failed;
        }
      }
      if (until_pid && output_.remote_pid() != 0)
        return ended::done;
      if (got)
        continue;
      if (libssh2_channel_eof(ch))
        return ended::done;
      auto why = wait_socket(deadline, cancellable);
      if (why != ended::done)
        return why;
    }
  }

  /// Closes `ch` and waits until the remote closed it too.
  ended close_channel(LIBSSH2_CHANNEL* ch, clock_type::time_point deadline,
                      bool cancellable) {
    auto why = call([&] { return libssh2_channel_close(ch); }, deadline,
                    cancellable);
    if (why != ended::done)
      return why;
    return call([&] { return libssh2_channel_wait_closed(ch); }, deadline,
                cancellable);
  }

  /// Frees `ch` (closing it first if it is still open).
  void free_channel(LIBSSH2_CHANNEL* ch) {
    auto deadline = clock_type::now() + short_wait;
    if (call([&] { return libssh2_channel_free(ch); }, deadline, false)
        != ended::done) {
      // The session is stuck: drop it, which frees its channels.
      close();
    }
  }

  /// Ends the remote command of `ch`: SIGTERM to its process group, SIGKILL
  /// after the grace period, through a second channel; then closes `ch`.
  void stop_remote(LIBSSH2_CHANNEL* ch) {
    if (output_.remote_pid() == 0)
      pump(ch, clock_type::now() + pid_wait, false, true);
    if (output_.remote_pid() != 0) {
      auto pid = std::to_string(output_.remote_pid());
      auto script = stop_script(output_.remote_pid(), opts_.kill_grace_ms);
      auto deadline = clock_type::now()
                      + std::chrono::milliseconds(opts_.kill_grace_ms)
                      + short_wait;
      LIBSSH2_CHANNEL* killer = nullptr;
      if (open_channel(&killer, deadline, false) == ended::done) {
        auto line = "sh -c '" + script + "'";
        if (call([&] { return libssh2_channel_exec(killer, line.c_str()); },
                 deadline, false)
            == ended::done) {
          drain(killer, deadline);
          close_channel(killer, deadline, false);
        }
        free_channel(killer);
      }
      spdlog::info("ssh {}: stopped remote process group {}", where_, pid);
    }
    if (ssh_ != nullptr)
      close_channel(ch, clock_type::now() + short_wait, false);
  }

  /// Reads and drops what `ch` prints until its EOF or the deadline.
  void drain(LIBSSH2_CHANNEL* ch, clock_type::time_point deadline) {
    char buf[4096];
    for (;;) {
      bool got = false;
      for (int index = 0; index < 2; ++index) {
        auto n = libssh2_channel_read_ex(ch, index, buf, sizeof(buf));
        if (n > 0)
          got = true;
        else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
          return;
      }
      if (got)
        continue;
      if (libssh2_channel_eof(ch)
          || wait_socket(deadline, false) != ended::done)
        return;
    }
  }

  /// The exit status and signal of the closed channel `ch`.
  ssh_result exit_of(LIBSSH2_CHANNEL* ch) {
    ssh_result result;
    result.exit_code = libssh2_channel_get_exit_status(ch);
    char* signal = nullptr;
    size_t signal_len = 0;
    libssh2_channel_get_exit_signal(ch, &signal, &signal_len, nullptr, nullptr,
                                    nullptr, nullptr);
    if (signal != nullptr) {
      result.exit_signal.assign(signal, signal_len);
      libssh2_free(ssh_, signal);
    }
    if (!result.exit_signal.empty())
      result.exit_code = -1;
    return result;
  }

  /// Runs `cmd` on the connected session.
  ssh_result execute(const ssh_command& cmd) {
    auto deadline = cmd.timeout_ms > 0
                      ? clock_type::now()
                          + std::chrono::milliseconds(cmd.timeout_ms)
                      : no_deadline;
    output_.reset();
    LIBSSH2_CHANNEL* ch = nullptr;
    auto how = open_channel(&ch, deadline, true);
    if (how == ended::done) {
      auto line = std::string{"echo "} + std::string{pid_marker} + "$$\n"
                  + cmd.command;
      how = call([&] { return libssh2_channel_exec(ch, line.c_str()); },
                 deadline, true);
      if (how == ended::failed)
        failure_ = "cannot start the command: " + failure_;
    }
    if (how == ended::done)
      how = pump(ch, deadline, true);
    if (how == ended::done)
      how = close_channel(ch, deadline, true);
    ssh_result result;
    if (how == ended::done) {
      output_.flush();
      result = exit_of(ch);
    } else {
      output_.flush();
      if (ch != nullptr && how != ended::failed)
        stop_remote(ch);
      result = failed(
        how == ended::cancelled ? std::string{"cancelled"}
        : how == ended::deadline
          ? "timed out after " + std::to_string(cmd.timeout_ms) + " ms"
          : "the SSH session to " + where_ + " failed: " + failure_);
    }
    if (ch != nullptr && ssh_ != nullptr)
      free_channel(ch);
    if (how == ended::cancelled || how == ended::failed)
      close();
    if (result.error.empty())
      spdlog::debug("ssh {}: command ended: exit {} signal '{}'", where_,
                    result.exit_code, result.exit_signal);
    else
      spdlog::warn("ssh {}: command ended: {}", where_, result.error);
    return result;
  }

  ssh_options opts_;
  line_sink sink_;
  std::shared_ptr<cancel_switch> switch_;
  /// Why the key cannot work ("" when it may), decided once.
  std::string key_problem_;
  /// "host:port", for messages.
  std::string where_;
  /// The prefix of output lines.
  std::string label_;
  int sock_ = -1;
  LIBSSH2_SESSION* ssh_ = nullptr;
  /// The running command's output lines and remote process group.
  command_output output_;
  /// The last libssh2 failure's message.
  std::string failure_;
};

std::shared_ptr<session> make_session(ssh_options opts, line_sink sink,
                                      std::shared_ptr<cancel_switch> sw) {
  return std::make_shared<session>(std::move(opts), std::move(sink),
                                   std::move(sw));
}

ssh_result run_command(session& s, const ssh_command& cmd) {
  return s.run(cmd);
}

void close_session(session& s) {
  s.close();
}

} // namespace heaven::ssh_detail
