// heaven's pages: the frame, Deployments, one deployment, Locks,
// Repositories and the error page.
#include "base/pages.hpp"
#include "base/pages_parts.hpp"
#include "base/text.hpp"

#include <algorithm>

namespace heaven::pages {

namespace detail {

std::string csrf_field(const viewer& who) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + escape(who.csrf)
         + "\">";
}

std::string frame(std::string_view title, const viewer& who, const notice& said,
                  std::string_view body) {
  std::string out
    = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\">\n<title>"
      + escape(title)
      + " \u00b7 heaven</title>\n"
        "<link rel=\"stylesheet\" href=\"/ui/assets/heaven.css\">\n"
        "<script src=\"/ui/assets/heaven.js\" defer></script>\n"
        "</head>\n<body>\n<header>\n<nav>"
        "<a href=\"/ui/deployments\">Deployments</a> "
        "<a href=\"/ui/locks\">Locks</a> "
        "<a href=\"/ui/repositories\">Repositories</a></nav>\n";
  if (!who.login.empty()) {
    out += "<div class=\"account\"><span class=\"who\">" + escape(who.login)
           + "</span>";
    if (!who.csrf.empty())
      out += "<form method=\"post\" action=\"/auth/signout\">" + csrf_field(who)
             + "<button>Sign out</button></form>";
    out += "</div>\n";
  }
  out += "</header>\n<main>\n";
  if (!said.empty())
    out += "<p class=\"notice\">" + escape(said) + "</p>\n";
  out += body;
  out += "</main>\n</body>\n</html>\n";
  return out;
}

} // namespace detail

namespace {

using detail::csrf_field;
using detail::time_html;

std::string badge(std::string_view state) {
  return "<span class=\"badge state-" + escape(state) + "\">" + escape(state)
         + "</span>";
}

std::string github(const links& to, std::string_view path) {
  return join_url(to.github_web.empty() ? "https://github.com/" : to.github_web,
                  path);
}

std::string repo_link(const links& to, const std::string& repo) {
  if (repo.empty())
    return {};
  return "<a href=\"" + escape(github(to, percent_encode(repo, true))) + "\">"
         + escape(repo) + "</a>";
}

std::string ref_link(const links& to, const std::string& repo,
                     const std::string& ref) {
  if (repo.empty() || ref.empty())
    return escape(ref);
  auto url = github(to, percent_encode(repo, true) + "/tree/"
                          + percent_encode(ref, true));
  return "<a href=\"" + escape(url) + "\">" + escape(ref) + "</a>";
}

std::string sha_link(const links& to, const std::string& repo,
                     const std::string& sha) {
  if (repo.empty() || sha.empty())
    return escape(short_sha(sha));
  auto url = github(to, percent_encode(repo, true) + "/commit/"
                          + percent_encode(sha));
  return "<a class=\"sha\" href=\"" + escape(url) + "\"><code>"
         + escape(short_sha(sha)) + "</code></a>";
}

bool live(deploy_state s) {
  return s == deploy_state::queued || s == deploy_state::running;
}

/// `/ui/deployments?...` with the filter's values and `before`.
std::string list_url(const deployment_filter& f, int64_t before) {
  std::string query;
  auto add = [&](const char* name, const std::string& value) {
    if (value.empty())
      return;
    query += query.empty() ? "?" : "&";
    query += name;
    query += "=" + percent_encode(value);
  };
  add("repo", f.repo);
  add("environment", f.environment);
  add("state", f.state);
  add("before", before > 0 ? std::to_string(before) : std::string{});
  return "/ui/deployments" + query;
}

std::string filter_form(const deployment_filter& f) {
  std::string out
    = "<form id=\"filter\" method=\"get\" action=\"/ui/deployments\">\n"
      "<label>Repository <input name=\"repo\" value=\""
      + escape(f.repo)
      + "\" placeholder=\"octo/app\"></label>\n"
        "<label>Environment <input name=\"environment\" value=\""
      + escape(f.environment)
      + "\"></label>\n<label>State <select name=\"state\">";
  out += std::string{"<option value=\"\""}
         + (f.state.empty() ? " selected" : "") + ">any</option>";
  for (auto word : deploy_state_words) {
    out += "<option value=\"" + std::string{word} + "\""
           + (f.state == word ? " selected" : "") + ">" + std::string{word}
           + "</option>";
  }
  out += "</select></label>\n<button>Filter</button>\n</form>\n";
  return out;
}

std::string list_row(const links& to, const deployment_row& r) {
  auto id = std::to_string(r.id);
  auto state = to_string(r.state);
  return "<tr id=\"d" + id + "\" data-state=\"" + state + "\">"
         + "<td><a class=\"open\" href=\"/ui/deployments/" + id + "\">#" + id
         + "</a></td><td>" + repo_link(to, r.repo) + "</td><td>"
         + escape(r.environment) + "</td><td>" + ref_link(to, r.repo, r.ref)
         + "</td><td>" + sha_link(to, r.repo, r.sha) + "</td><td>"
         + escape(r.actor) + "</td><td>" + escape(r.provider) + "</td><td>"
         + badge(state) + "</td><td>" + time_html(r.created_at) + "</td><td>"
         + (terminal(r.state) ? duration_text(r.created_at, r.finished_at)
                              : "\u2013")
         + "</td></tr>\n";
}

} // namespace

std::string deployments_page(const viewer& who, const links& to,
                             const list_view& view, const notice& said) {
  std::string body = "<h1>Deployments</h1>\n" + filter_form(view.filter);
  if (view.rows.empty()) {
    body += "<p class=\"empty\">No deployments.</p>\n";
  } else {
    bool any_live = std::any_of(view.rows.begin(), view.rows.end(),
                                [](auto& r) { return live(r.state); });
    body += "<div class=\"scroll\">\n<table id=\"deployments\"";
    if (any_live)
      body += " data-live=\"1\"";
    body += ">\n<thead><tr><th>#</th><th>Repository</th><th>Environment</th>"
            "<th>Ref</th><th>Sha</th><th>Who</th><th>Provider</th>"
            "<th>State</th><th>Started</th><th>Duration</th></tr></thead>\n"
            "<tbody>\n";
    for (auto& r : view.rows)
      body += list_row(to, r);
    body += "</tbody>\n</table>\n</div>\n";
  }
  if (view.next_before > 0)
    body += "<p class=\"pages\"><a rel=\"next\" href=\""
            + escape(list_url(view.filter, view.next_before))
            + "\">Older</a></p>\n";
  return detail::frame("Deployments", who, said, body);
}

bool is_deploy_task(const std::string& task) {
  auto ends = [&](std::string_view tail) {
    return task.size() >= tail.size()
           && task.compare(task.size() - tail.size(), tail.size(), tail) == 0;
  };
  return (task == "deploy" || task.rfind("deploy:", 0) == 0) && !ends(":lock")
         && !ends(":unlock");
}

namespace {

std::string item(std::string_view term, const std::string& html) {
  return "<dt>" + std::string{term} + "</dt><dd>" + html + "</dd>\n";
}

std::string action(const viewer& who, int64_t id, std::string_view what,
                   std::string_view label) {
  return "<form method=\"post\" action=\"/ui/deployments/" + std::to_string(id)
         + "/" + std::string{what} + "\">" + csrf_field(who) + "<button id=\""
         + std::string{what} + "\">" + std::string{label}
         + "</button></form>\n";
}

std::string log_html(const log_view& log) {
  std::string out;
  if (log.truncated) {
    out += "<p class=\"truncated\">Earlier lines are left out: ";
    out += log.raw_url.empty()
             ? std::string{"the whole log is not available"}
             : "<a href=\"" + escape(log.raw_url) + "\">the whole log</a>";
    out += "</p>\n";
  }
  uint64_t next = log.lines.empty() ? 1 : log.lines.back().number + 1;
  out += "<div id=\"log\" data-follow=\"" + escape(log.follow_url)
         + "\" data-from=\"" + std::to_string(log.end_offset)
         + "\" data-next-line=\"" + std::to_string(next) + "\">";
  for (auto& line : log.lines) {
    auto n = std::to_string(line.number);
    out += "<div class=\"line\" id=\"L" + n + "\"><a class=\"ln\" href=\"#L" + n
           + "\">" + n + "</a><time>" + detail::clock_of_ms(line.time_ms)
           + "</time><span class=\"text\">" + ansi_to_html(line.text)
           + "</span></div>\n";
  }
  out += "</div>\n";
  if (!log.raw_url.empty())
    out += "<p><a id=\"raw\" href=\"" + escape(log.raw_url)
           + "\">Raw log</a></p>\n";
  return out;
}

} // namespace

std::string
deployment_page(const viewer& who, const links& to, const deployment_detail& d,
                const log_view& log,
                const std::function<std::string(std::string_view)>& redact,
                const notice& said) {
  if (!d.found)
    return detail::frame("No such deployment", who, said,
                         "<h1>No such deployment</h1>\n"
                         "<p class=\"empty\">There is no such "
                         "deployment.</p>\n");
  auto& r = d.row;
  auto id = std::to_string(r.id);
  auto state = to_string(r.state);
  std::string body = "<h1>" + escape(r.repo) + " #" + id + "</h1>\n";
  if (!r.description.empty())
    body += "<p class=\"description\">" + escape(r.description) + "</p>\n";
  body += "<dl id=\"summary\">\n";
  body += item("Repository", repo_link(to, r.repo));
  body += item("Environment", escape(r.environment));
  body += item("Ref", ref_link(to, r.repo, r.ref));
  body += item("Sha", sha_link(to, r.repo, r.sha));
  body += item("Task", escape(r.task));
  body += item("Provider", escape(r.provider));
  body += item("Who", escape(r.actor));
  body += item("State", badge(state));
  body += item("Created", time_html(r.created_at));
  body += item("Started", time_html(d.started_at));
  body += item("Finished", time_html(r.finished_at));
  body += item("Duration", terminal(r.state)
                             ? duration_text(r.created_at, r.finished_at)
                             : "\u2013");
  body += item("GitHub id", r.github_id != 0 ? std::to_string(r.github_id)
                                             : std::string{"\u2013"});
  body += "</dl>\n";
  if (!who.csrf.empty() && terminal(r.state) && !r.sha.empty()
      && is_deploy_task(r.task)) {
    body += "<div class=\"actions\">\n";
    body += action(who, r.id, "redeploy", "Deploy this sha again");
    if (r.state == deploy_state::success && r.sha != d.current_sha)
      body += action(who, r.id, "rollback", "Roll back to this deployment");
    body += "</div>\n";
  }
  body += "<h2>Statuses</h2>\n";
  if (d.statuses.empty()) {
    body += "<p class=\"empty\">No statuses yet.</p>\n";
  } else {
    body += "<ol id=\"timeline\">\n";
    for (auto& s : d.statuses)
      body += "<li data-state=\"" + escape(s.state) + "\">" + badge(s.state)
              + " <span class=\"description\">" + escape(s.description)
              + "</span> " + detail::time_html_ms(s.queued_ms) + "</li>\n";
    body += "</ol>\n";
  }
  auto config = redacted_config(d.request.payload_json, redact);
  if (!config.empty())
    body += "<h2>Config</h2>\n<pre id=\"config\">" + escape(config)
            + "</pre>\n";
  body += "<h2>Log</h2>\n" + log_html(log);
  return detail::frame(r.repo + " #" + id, who, said, body);
}

std::string locks_page(const viewer& who, const std::vector<env_lock>& locks,
                       const notice& said) {
  std::string body = "<h1>Locks</h1>\n";
  if (locks.empty()) {
    body += "<p class=\"empty\">No environment is locked.</p>\n";
    return detail::frame("Locks", who, said, body);
  }
  body += "<div class=\"scroll\">\n<table id=\"locks\">\n<thead><tr>"
          "<th>Repository</th><th>Environment</th><th>Who</th><th>Since</th>"
          "<th>Why</th>";
  if (!who.csrf.empty())
    body += "<th></th>";
  body += "</tr></thead>\n<tbody>\n";
  for (auto& l : locks) {
    body += "<tr data-repo=\"" + escape(l.repo) + "\" data-environment=\""
            + escape(l.environment) + "\"><td>" + escape(l.repo) + "</td><td>"
            + escape(l.environment) + "</td><td>" + escape(l.actor)
            + "</td><td>" + time_html(l.locked_at) + "</td><td>"
            + escape(l.reason) + "</td>";
    if (!who.csrf.empty())
      body += "<td><form method=\"post\" action=\"/ui/locks/unlock\">"
              "<input type=\"hidden\" name=\"repo\" value=\""
              + escape(l.repo)
              + "\"><input type=\"hidden\" name=\"environment\" value=\""
              + escape(l.environment) + "\">" + csrf_field(who)
              + "<button class=\"unlock\">Unlock</button></form></td>";
    body += "</tr>\n";
  }
  body += "</tbody>\n</table>\n</div>\n";
  return detail::frame("Locks", who, said, body);
}

std::string repositories_page(const viewer& who,
                              const std::vector<repository_record>& repos,
                              const notice& said) {
  std::string body = "<h1>Repositories</h1>\n";
  if (repos.empty()) {
    body += "<p class=\"empty\">No repositories yet.</p>\n";
    return detail::frame("Repositories", who, said, body);
  }
  body += "<div class=\"scroll\">\n<table id=\"repositories\">\n<thead><tr>"
          "<th>Repository</th><th>State</th><th>First seen</th>";
  if (!who.csrf.empty())
    body += "<th></th>";
  body += "</tr></thead>\n<tbody>\n";
  for (auto& r : repos) {
    std::string word = r.active ? "enabled" : "disabled";
    body += "<tr data-repo=\"" + escape(r.repo) + "\" data-active=\""
            + (r.active ? "1" : "0") + "\"><td>" + escape(r.repo) + "</td><td>"
            + badge(word) + "</td><td>" + time_html(r.first_seen) + "</td>";
    if (!who.csrf.empty())
      body += "<td><form method=\"post\" action=\"/ui/repositories/switch\">"
              "<input type=\"hidden\" name=\"repo\" value=\""
              + escape(r.repo)
              + "\"><input type=\"hidden\" name=\"active\" value=\""
              + (r.active ? "0" : "1") + "\">" + csrf_field(who)
              + "<button class=\"switch\">" + (r.active ? "Disable" : "Enable")
              + "</button></form></td>";
    body += "</tr>\n";
  }
  body += "</tbody>\n</table>\n</div>\n";
  return detail::frame("Repositories", who, said, body);
}

std::string error_page(int status, std::string_view message) {
  auto title = "Error " + std::to_string(status);
  return detail::frame(title, viewer{}, {},
                       "<h1>" + title + "</h1>\n<p class=\"error\">"
                         + escape(message) + "</p>\n");
}

} // namespace heaven::pages
