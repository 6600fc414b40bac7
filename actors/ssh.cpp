#include "actors/ssh.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <libssh2.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "messages/atoms.hpp"

namespace heaven {

namespace {

using clock_type = std::chrono::steady_clock;

/// "No deadline".
constexpr auto no_deadline = clock_type::time_point::max();

/// Lines longer than this are cut into pieces (as run_process does).
constexpr size_t max_line = 64 * 1024;

/// The first line every command prints: its shell's pid, which is also its
/// process group (sshd starts each session's command with setsid).
constexpr std::string_view pid_marker = "heaven-ssh-pid=";

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

/// Base64 without padding, as OpenSSH prints fingerprints.
std::string base64_unpadded(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data,
                           static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  return out;
}

// -- cancelling -----------------------------------------------------------------

/// A one-way switch the front actor trips and the worker's poll() sees.
struct cancel_switch {
  std::atomic<bool> tripped{false};
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

  cancel_switch() = default;
  cancel_switch(const cancel_switch&) = delete;
  cancel_switch& operator=(const cancel_switch&) = delete;
  ~cancel_switch() {
    if (fd >= 0)
      ::close(fd);
  }

  /// Trips the switch (once; it stays tripped).
  void trip() {
    if (!tripped.exchange(true) && fd >= 0) {
      uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd, &one, sizeof(one));
    }
  }
};

// -- the session ------------------------------------------------------------------

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

/// One SSH connection to one host, used only by its worker's thread.
class session {
public:
  session(ssh_options opts, caf::actor sink, std::shared_ptr<cancel_switch> sw)
    : opts_(std::move(opts)),
      sink_(std::move(sink)),
      switch_(std::move(sw)),
      key_problem_(private_key_problem(opts_.private_key)),
      where_(opts_.host + ":" + std::to_string(opts_.port)),
      label_(opts_.label.empty() ? opts_.host : opts_.label) {
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
      auto why = connect();
      if (!why.empty()) {
        close();
        if (switch_->tripped)
          return failed("cancelled");
        spdlog::warn("ssh {}: {}", where_, why);
        return failed(why);
      }
    }
    return execute(cmd);
  }

  /// Drops the session and its socket now.
  void close() {
    if (ssh_ != nullptr) {
      auto deadline = clock_type::now() + short_wait;
      call([&] {
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
    return msg != nullptr && len > 0 ? std::string(msg, static_cast<size_t>(len))
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
      auto now = clock_type::now();
      if (now >= deadline)
        return ended::deadline;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - now);
      auto ms = static_cast<int>(std::min<int64_t>(left.count() + 1, 200));
      auto rc = ::poll(fds.data(), cancellable ? 2 : 1, ms);
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

  // -- connecting --------------------------------------------------------------

  /// Connects, verifies the host key and signs in; "" or why not.
  std::string connect() {
    auto deadline = clock_type::now()
                    + std::chrono::milliseconds(opts_.connect_timeout_ms);
    auto timed_out = "connecting to " + where_ + " timed out after "
                     + std::to_string(opts_.connect_timeout_ms) + " ms";
    if (opts_.known_hosts.empty())
      return "no known_hosts file is configured for " + where_
             + ": heaven verifies every host key";
    if (auto why = open_socket(deadline); !why.empty())
      return why;
    ssh_ = libssh2_session_init();
    if (ssh_ == nullptr)
      return "cannot start an SSH session to " + where_;
    libssh2_session_set_blocking(ssh_, 0);
    // Known hosts: read first, so the server is asked for a key type the
    // file knows (else an ed25519 entry is NOTFOUND against an ECDSA key).
    std::unique_ptr<LIBSSH2_KNOWNHOSTS, decltype(&libssh2_knownhost_free)>
      known{libssh2_knownhost_init(ssh_), libssh2_knownhost_free};
    if (!known
        || libssh2_knownhost_readfile(known.get(), opts_.known_hosts.c_str(),
                                      LIBSSH2_KNOWNHOST_FILE_OPENSSH)
             < 0)
      return "cannot read the known_hosts file " + opts_.known_hosts
             + " (for " + where_ + ")";
    prefer_known_key_types(known.get());
    switch (call([&] { return libssh2_session_handshake(ssh_, sock_); },
                 deadline, true)) {
      case ended::done:
        break;
      case ended::deadline:
        return timed_out;
      case ended::cancelled:
        return "cancelled";
      case ended::failed:
        return "SSH handshake with " + where_ + " failed: " + failure_;
    }
    if (auto why = verify_host_key(known.get()); !why.empty())
      return why;
    auto rc = 0;
    switch (call(
      [&] {
        return libssh2_userauth_publickey_frommemory(
          ssh_, opts_.user.data(), opts_.user.size(), nullptr, 0,
          opts_.private_key.data(), opts_.private_key.size(), "");
      },
      deadline, true, &rc)) {
      case ended::done:
        break;
      case ended::deadline:
        return timed_out;
      case ended::cancelled:
        return "cancelled";
      case ended::failed:
        return "cannot sign in as " + opts_.user + " to " + where_
               + " with the deploy key: " + failure_;
    }
    spdlog::info("ssh {}: signed in as {}", where_, opts_.user);
    return {};
  }

  /// Opens a TCP connection to the host (non-blocking, within `deadline`).
  std::string open_socket(clock_type::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    auto port = std::to_string(opts_.port);
    if (auto rc = ::getaddrinfo(opts_.host.c_str(), port.c_str(), &hints,
                                &found);
        rc != 0)
      return "cannot resolve " + opts_.host + ": " + ::gai_strerror(rc);
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard{found,
                                                              ::freeaddrinfo};
    std::string why = "cannot connect to " + where_;
    for (auto ai = found; ai != nullptr; ai = ai->ai_next) {
      auto fd = ::socket(ai->ai_family,
                         ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         ai->ai_protocol);
      if (fd < 0)
        continue;
      sock_ = fd;
      if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return {};
      if (errno != EINPROGRESS) {
        why = "cannot connect to " + where_ + ": " + std::strerror(errno);
        ::close(fd);
        sock_ = -1;
        continue;
      }
      auto waited = wait_connected(deadline);
      if (waited == ended::done) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0)
          return {};
        why = "cannot connect to " + where_ + ": " + std::strerror(err);
      } else if (waited == ended::cancelled) {
        why = "cancelled";
      } else if (waited == ended::failed) {
        why = "cannot connect to " + where_ + ": " + std::strerror(errno);
      } else {
        why = "connecting to " + where_ + " timed out after "
              + std::to_string(opts_.connect_timeout_ms) + " ms";
      }
      ::close(fd);
      sock_ = -1;
      if (waited != ended::done)
        break;
    }
    return why;
  }

  /// Waits until the connecting socket is writable.
  ended wait_connected(clock_type::time_point deadline) {
    std::array<pollfd, 2> fds{pollfd{sock_, POLLOUT, 0},
                              pollfd{switch_->fd, POLLIN, 0}};
    for (;;) {
      if (switch_->tripped)
        return ended::cancelled;
      auto now = clock_type::now();
      if (now >= deadline)
        return ended::deadline;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - now);
      auto rc = ::poll(fds.data(), 2,
                       static_cast<int>(std::min<int64_t>(left.count() + 1,
                                                          1000)));
      if (rc < 0 && errno != EINTR)
        return ended::failed;
      if (rc > 0 && fds[0].revents != 0)
        return ended::done;
    }
  }

  /// The known_hosts name of this host: "host", or "[host]:port" off 22.
  std::string known_name() const {
    return opts_.port == 22
             ? opts_.host
             : "[" + opts_.host + "]:" + std::to_string(opts_.port);
  }

  /// Asks the server for the host key types `known` has for this host.
  void prefer_known_key_types(LIBSSH2_KNOWNHOSTS* known) {
    std::vector<std::string> types;
    auto add = [&](const std::string& x) {
      if (std::find(types.begin(), types.end(), x) == types.end())
        types.push_back(x);
    };
    auto name = known_name();
    libssh2_knownhost* prev = nullptr;
    libssh2_knownhost* entry = nullptr;
    while (libssh2_knownhost_get(known, &entry, prev) == 0) {
      prev = entry;
      if (entry->name == nullptr
          || (name != entry->name && opts_.host != entry->name))
        continue;
      switch (entry->typemask & LIBSSH2_KNOWNHOST_KEY_MASK) {
        case LIBSSH2_KNOWNHOST_KEY_ED25519:
          add("ssh-ed25519");
          break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_256:
          add("ecdsa-sha2-nistp256");
          break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_384:
          add("ecdsa-sha2-nistp384");
          break;
        case LIBSSH2_KNOWNHOST_KEY_ECDSA_521:
          add("ecdsa-sha2-nistp521");
          break;
        case LIBSSH2_KNOWNHOST_KEY_SSHRSA:
          add("rsa-sha2-512");
          add("rsa-sha2-256");
          add("ssh-rsa");
          break;
        default:
          break;
      }
    }
    if (types.empty())
      return;
    // Then every other type, so a host whose key type the file does not
    // know still shows its key (and is refused as not known).
    for (auto x : {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                   "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256",
                   "ssh-rsa"})
      add(x);
    std::string methods;
    for (auto& x : types)
      methods += (methods.empty() ? "" : ",") + x;
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
    auto fingerprint = type_name + " SHA256:"
                       + (hash != nullptr ? base64_unpadded(hash, 32)
                                          : std::string{"?"});
    libssh2_knownhost* match = nullptr;
    auto rc = libssh2_knownhost_checkp(
      known, opts_.host.c_str(), opts_.port, key, len,
      LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_mask,
      &match);
    switch (rc) {
      case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return {};
      case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return "host key of " + where_ + " does not match "
               + opts_.known_hosts + " (" + fingerprint
               + "): the host's key changed or someone is in between";
      case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return "host key of " + where_ + " is not in " + opts_.known_hosts
               + " (" + fingerprint + ")";
      default:
        return "cannot check the host key of " + where_ + " against "
               + opts_.known_hosts + " (" + fingerprint + ")";
    }
  }

  // -- running -------------------------------------------------------------------

  /// Sends a line of stream `source` to the sink.
  void emit(stream source, std::string_view text) {
    if (!sink_)
      return;
    caf::anon_send(sink_, log_atom::value,
                   log_line{source, label_ + " " + std::string{text}});
  }

  /// Handles a complete stdout/stderr line: the pid marker line (before the
  /// pid is known) is taken, not forwarded.
  void on_line(int index, std::string_view text) {
    if (index == 0 && remote_pid_ == 0
        && text.substr(0, pid_marker.size()) == pid_marker) {
      auto digits = text.substr(pid_marker.size());
      if (!digits.empty() && digits.size() < 10
          && std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; })) {
        remote_pid_ = std::stol(std::string{digits});
        return;
      }
    }
    emit(index == 0 ? stream::out : stream::err, text);
  }

  /// Appends output of stream `index` (0 stdout, 1 stderr) and hands on
  /// each complete line.
  void feed(int index, const char* data, size_t len) {
    auto& buf = pending_[static_cast<size_t>(index)];
    buf.append(data, len);
    size_t start = 0;
    for (;;) {
      auto nl = buf.find('\n', start);
      if (nl == std::string::npos) {
        while (buf.size() - start >= max_line) {
          on_line(index, std::string_view{buf}.substr(start, max_line));
          start += max_line;
        }
        break;
      }
      while (nl - start > max_line) {
        on_line(index, std::string_view{buf}.substr(start, max_line));
        start += max_line;
      }
      on_line(index, std::string_view{buf}.substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
  }

  /// Hands on the partial last line of each stream.
  void flush() {
    for (int i = 0; i < 2; ++i) {
      auto& buf = pending_[static_cast<size_t>(i)];
      if (!buf.empty())
        on_line(i, buf);
      buf.clear();
    }
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
          feed(index, buf.data(), static_cast<size_t>(n));
          got = true;
        } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
          failure_ = last_error();
          return ended::failed;
        }
      }
      if (until_pid && remote_pid_ != 0)
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
    if (remote_pid_ == 0)
      pump(ch, clock_type::now() + pid_wait, false, true);
    if (remote_pid_ != 0) {
      auto pid = std::to_string(remote_pid_);
      auto rounds = std::to_string(std::max<int64_t>(opts_.kill_grace_ms, 0)
                                   / 100);
      auto script = "kill -s TERM -- -" + pid + " 2>/dev/null || exit 0; i=0;"
                    " while [ $i -lt " + rounds + " ] && kill -s 0 -- -" + pid
                    + " 2>/dev/null; do sleep 0.1; i=$((i+1)); done;"
                      " kill -s KILL -- -" + pid + " 2>/dev/null; exit 0";
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
    libssh2_channel_get_exit_signal(ch, &signal, &signal_len, nullptr,
                                    nullptr, nullptr, nullptr);
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
    auto deadline = cmd.timeout_ms > 0 ? clock_type::now()
                                           + std::chrono::milliseconds(
                                             cmd.timeout_ms)
                                       : no_deadline;
    remote_pid_ = 0;
    pending_[0].clear();
    pending_[1].clear();
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
      flush();
      result = exit_of(ch);
    } else {
      flush();
      if (ch != nullptr && how != ended::failed)
        stop_remote(ch);
      result = failed(how == ended::cancelled ? std::string{"cancelled"}
                      : how == ended::deadline
                        ? "timed out after " + std::to_string(cmd.timeout_ms)
                            + " ms"
                        : "the SSH session to " + where_
                            + " failed: " + failure_);
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
  caf::actor sink_;
  std::shared_ptr<cancel_switch> switch_;
  /// Why the key cannot work ("" when it may), decided once.
  std::string key_problem_;
  /// "host:port", for messages.
  std::string where_;
  /// The prefix of output lines.
  std::string label_;
  int sock_ = -1;
  LIBSSH2_SESSION* ssh_ = nullptr;
  /// The running command's remote process group (0: not known yet).
  long remote_pid_ = 0;
  /// The partial lines of stdout and stderr.
  std::array<std::string, 2> pending_;
  /// The last libssh2 failure's message.
  std::string failure_;
};

/// The worker: a detached actor that owns the session and blocks in it.
ssh_actor::behavior_type ssh_worker(ssh_actor::pointer self,
                                    ssh_options opts, caf::actor sink,
                                    std::shared_ptr<cancel_switch> sw) {
  auto s = std::make_shared<session>(std::move(opts), std::move(sink),
                                     std::move(sw));
  return {
    [s](ssh_command& cmd) -> ssh_result { return s->run(cmd); },
    [s](cancel_atom) { s->close(); },
  };
}

/// The front: answers on the scheduler without blocking; hands commands to
/// the worker and trips the cancel switch the worker's poll() watches.
ssh_actor::behavior_type ssh_front(ssh_actor::pointer self, ssh_options opts,
                                   caf::actor sink) {
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

ssh_actor spawn_ssh(caf::actor_system& sys, ssh_options opts,
                    caf::actor sink) {
  return sys.spawn(ssh_front, std::move(opts), std::move(sink));
}

} // namespace heaven
