/// heaven's error codes: one enum carried in caf::error, rendered for logs
/// and GitHub status descriptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "messages/types.hpp"

namespace heaven {

/// What went wrong. The code says which kind of failure it was; the words
/// for the user travel in the error's context (one string).
enum class ec : uint8_t {
  /// Not an error (CAF reserves code 0 for "no error").
  none = 0,
  /// A child process could not be started: no such command, no working
  /// directory, no pipe, or its scope has ended.
  cannot_start,
  /// A deployment's checkout could not be made: a directory, a lock, or a
  /// git command failed.
  checkout_failed,
  /// An SSH session could not be opened: resolving the host, connecting,
  /// the handshake, the host key check or signing in failed.
  ssh_failed,
  /// The work was stopped on request.
  cancelled,
  /// The work took longer than it may.
  timed_out,
  /// A request to another service (GitHub, Heroku, AWS) got no answer heaven
  /// can use.
  request_failed,
};

/// The category of heaven's errors in caf::error.
constexpr caf::atom_value ec_category = caf::atom("heaven");

inline constexpr std::string_view ec_words[] = {
  "none",      "cannot_start", "checkout_failed", "ssh_failed",
  "cancelled", "timed_out",    "request_failed"};

/// The name of `code` ("checkout_failed"); "unknown" for a code this heaven
/// does not know.
inline std::string to_string(ec code) {
  auto i = static_cast<std::size_t>(code);
  return i < std::size(ec_words) ? std::string{ec_words[i]} : "unknown";
}

/// An error of heaven's category without words.
inline caf::error make_error(ec code) {
  return {static_cast<uint8_t>(code), ec_category};
}

/// An error of heaven's category saying `text`.
inline caf::error make_error(ec code, std::string text) {
  return {static_cast<uint8_t>(code), ec_category,
          caf::make_message(std::move(text))};
}

/// How heaven's errors read: the words they carry, else the code's name.
/// Registered at start with `add_error_category(ec_category, render_ec)`
/// (the template overload does not compile in CAF 0.17.6), so that
/// actor_system::render reads them the same way.
inline std::string render_ec(uint8_t code, caf::atom_value,
                             const caf::message& context) {
  if (context.match_elements<std::string>())
    return context.get_as<std::string>(0);
  return to_string(static_cast<ec>(code));
}

/// The words of `err` where no actor system is at hand (a runner thread): a
/// heaven error as render_ec reads it, "" for no error.
inline std::string describe(const caf::error& err) {
  if (!err)
    return {};
  if (err.category() == ec_category)
    return render_ec(err.code(), err.category(), err.context());
  return caf::to_string(err);
}

} // namespace heaven
