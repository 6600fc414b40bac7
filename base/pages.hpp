/// heaven's web pages, rendered on the server: Deployments, one deployment,
/// Locks and Repositories, plus the one stylesheet and script they share.
/// Plain functions from the store's rows to HTML (no actors, no sockets), so
/// they are tested as text. Every value from outside is escaped; the pages
/// load nothing but /ui/assets/heaven.{css,js} (the ingress sends a
/// Content-Security-Policy of 'self'), read well without JavaScript, and use
/// it only for the live parts (the running deployments' rows, the log).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "messages/types.hpp"

namespace heaven::pages {

/// Who looks at a page.
struct viewer {
  /// The signed-in person's GitHub login ("" when reading with the API
  /// token).
  std::string login;
  /// The session's CSRF token, put into every form ("" without a session:
  /// then no page shows a button that changes something).
  std::string csrf;
};

/// Where links to GitHub go: OCTOKIT_WEB_ENDPOINT, e.g.
/// "https://github.com/" (with or without the trailing '/').
struct links {
  std::string github_web = "https://github.com/";
};

/// The Deployments page (`GET /ui/deployments`).
struct list_view {
  /// The deployments shown, newest first.
  std::vector<deployment_row> rows;
  /// The filter they were read with (shown in the filter form).
  deployment_filter filter;
  /// The `before` of the next (older) page; 0 when there is none.
  int64_t next_before = 0;
};

/// One line of a deployment's log as its page shows it.
struct log_line_view {
  /// 1-based line number (the `#L<n>` anchor).
  uint64_t number = 0;
  /// When it was written (Unix ms), 0 when unknown.
  int64_t time_ms = 0;
  /// The line as written (may hold ANSI escapes; no '\n').
  std::string text;
};

/// A deployment's log as its page shows it.
struct log_view {
  std::vector<log_line_view> lines;
  /// Lines before the first shown were left out (the log is long).
  bool truncated = false;
  /// Byte offset just past the last line shown: where following starts.
  uint64_t end_offset = 0;
  /// While the log is written: the URL that streams it (the log link with
  /// its token; the script adds `&from=<end_offset>`). "" once it ended.
  std::string follow_url;
  /// The whole log as plain text (the log link; "" when there is none).
  std::string raw_url;
};

/// Something to say at the top of a page after an action ("" for nothing),
/// e.g. "Unlocked octo/app production.".
using notice = std::string;

std::string deployments_page(const viewer& who, const links& to,
                             const list_view& view, const notice& said = {});

/// `redact` replaces secrets in a text (the log book's redactor): applied to
/// the payload's config, after every key that looks secret (token, secret,
/// password, key, credential, auth, private) has its value replaced by
/// "[redacted]".
std::string
deployment_page(const viewer& who, const links& to, const deployment_detail& d,
                const log_view& log,
                const std::function<std::string(std::string_view)>& redact,
                const notice& said = {});

std::string locks_page(const viewer& who, const std::vector<env_lock>& locks,
                       const notice& said = {});

std::string repositories_page(const viewer& who,
                              const std::vector<repository_record>& repos,
                              const notice& said = {});

/// Does `task` deploy code ("deploy" or "deploy:<name>", not a chat-ops
/// lock or unlock)? Only such a deployment may be deployed again or rolled
/// back to.
bool is_deploy_task(const std::string& task);

/// A page that only says what went wrong (403, 404, 502...).
std::string error_page(int status, std::string_view message);

/// The stylesheet (`GET /ui/assets/heaven.css`) and the script (`GET
/// /ui/assets/heaven.js`).
std::string_view stylesheet();
std::string_view script();

/// How long a deployment took: finished_at - created_at (ISO-8601 UTC) as
/// "12 s", "3 min 4 s" or "2 h 5 min"; "–" while it runs (finished_at "")
/// or when either time is not one.
std::string duration_text(std::string_view created_at,
                          std::string_view finished_at);

/// `text` with & < > " ' escaped for HTML text and attribute values.
std::string escape(std::string_view text);

/// One log line as HTML: escaped, its ANSI SGR colours (30-37, 90-97, 40-47,
/// 1 bold, 0/39/49 reset) as `<span class="...">`, other escapes dropped.
std::string ansi_to_html(std::string_view line);

/// The payload's `config` as indented JSON with secrets redacted (see
/// deployment_page); "" when the payload has no config object.
std::string
redacted_config(std::string_view payload_json,
                const std::function<std::string(std::string_view)>& redact);

} // namespace heaven::pages
