#include "base/pages.hpp"

#include <regex>
#include <string>

#include <boost/test/unit_test.hpp>

using namespace heaven;
using namespace heaven::pages;

namespace {

/// 2026-11-27T12:00:00Z.
constexpr int64_t noon = 1795780800000;

bool has(const std::string& page, std::string_view part) {
  return page.find(part) != std::string::npos;
}

#define CHECK_HAS(page, part)                                                  \
  BOOST_TEST(has(page, part), "the page lacks: " << (part))
#define CHECK_LACKS(page, part)                                                \
  BOOST_TEST(!has(page, part), "the page has: " << (part))

/// Before `b` in `page` (both present).
bool before(const std::string& page, std::string_view a, std::string_view b) {
  auto x = page.find(a);
  auto y = page.find(b);
  return x != std::string::npos && y != std::string::npos && x < y;
}

/// Nothing the Content-Security-Policy would block: every <script> loads
/// a file, no <style>, no style="", no on...= handlers.
void check_nothing_inline(const std::string& page) {
  static const std::regex script{"<script(?![^>]*\\ssrc=)"};
  static const std::regex handler{"\\son[a-z]+\\s*="};
  BOOST_TEST(!std::regex_search(page, script));
  BOOST_TEST(!std::regex_search(page, handler));
  CHECK_LACKS(page, "<style");
  CHECK_LACKS(page, "style=");
  CHECK_LACKS(page, "javascript:");
}

deployment_row row(int64_t id, deploy_state state) {
  deployment_row r;
  r.id = id;
  r.github_id = 9000 + id;
  r.repo = "octo/app";
  r.app = "app";
  r.environment = "production";
  r.ref = "main";
  r.sha = "abcdef1234567890abcdef1234567890abcdef12";
  r.task = "deploy";
  r.provider = "shell";
  r.actor = "hubot";
  r.state = state;
  r.created_at = "2026-11-27T12:00:00Z";
  if (terminal(state))
    r.finished_at = "2026-11-27T12:00:12.500Z";
  return r;
}

const viewer signed_in{"mona", "c5rf"};
const viewer reader{"", ""};
const links to{"https://github.example/"};

std::string no_redact(std::string_view text) {
  return std::string{text};
}

deployment_detail detail_of(deploy_state state) {
  deployment_detail d;
  d.found = true;
  d.row = row(7, state);
  d.row.description = "Deployed";
  d.request.payload_json
    = R"({"config":{"provider":"shell","api_token":"t"},"name":"app"})";
  d.statuses = {{"queued", "Queued", noon, noon, "delivered"},
                {"in_progress", "Deploying", noon + 1000, 0, ""},
                {"success", "Deployed", noon + 12000, 0, ""}};
  d.current_sha = "0000000111111122222223333333444444455555";
  return d;
}

} // namespace

BOOST_AUTO_TEST_SUITE(pages_text)

BOOST_AUTO_TEST_CASE(escape_covers_the_five_characters) {
  BOOST_TEST(escape(R"(<a href="x">'&'</a>)")
             == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  BOOST_TEST(escape("plain text") == "plain text");
  BOOST_TEST(escape("") == "");
}

BOOST_AUTO_TEST_CASE(ansi_colours_bold_and_resets_become_balanced_spans) {
  BOOST_TEST(ansi_to_html("\x1b[31mred\x1b[0m plain")
             == R"(<span class="ansi-fg-1">red</span> plain)");
  BOOST_TEST(ansi_to_html("\x1b[1;91mX\x1b[22mY\x1b[39mZ")
             == R"(<span class="ansi-bold ansi-fg-9">X</span>)"
                R"(<span class="ansi-fg-9">Y</span>Z)");
  BOOST_TEST(ansi_to_html("\x1b[42;30mok\x1b[49mfg")
             == R"(<span class="ansi-fg-0 ansi-bg-2">ok</span>)"
                R"(<span class="ansi-fg-0">fg</span>)");
  BOOST_TEST(ansi_to_html("\x1b[31mA\x1b[32mB")
             == R"(<span class="ansi-fg-1">A</span>)"
                R"(<span class="ansi-fg-2">B</span>)");
  // ESC[m resets; a colour never written opens no span.
  BOOST_TEST(ansi_to_html("\x1b[1mA\x1b[mB")
             == R"(<span class="ansi-bold">A</span>B)");
  BOOST_TEST(ansi_to_html("\x1b[31m\x1b[0m") == "");
  BOOST_TEST(ansi_to_html("\x1b[97mwhite")
             == R"(<span class="ansi-fg-15">white</span>)");
  // Unbalanced: the open span is closed.
  BOOST_TEST(ansi_to_html("\x1b[32mgreen")
             == R"(<span class="ansi-fg-2">green</span>)");
  // 256 colours and true colour are not shown; their numbers are skipped.
  BOOST_TEST(ansi_to_html("\x1b[38;5;1mX") == "X");
  BOOST_TEST(ansi_to_html("\x1b[38;2;1;2;3;1mX")
             == R"(<span class="ansi-bold">X</span>)");
}

BOOST_AUTO_TEST_CASE(ansi_text_is_escaped_and_other_escapes_are_dropped) {
  BOOST_TEST(ansi_to_html("\x1b[33m<b>&</b>")
             == R"(<span class="ansi-fg-3">&lt;b&gt;&amp;&lt;/b&gt;</span>)");
  BOOST_TEST(ansi_to_html("a\x1b[2Kb\x1b[?25lc\x1b]0;title\x07"
                          "d\x1b]8;;http://x\x1b\\e\x1b(Bf\x1b=g")
             == "abcdefg");
  BOOST_TEST(ansi_to_html("a\rb\x01"
                          "c\td\x7f")
             == "abc\td");
  // An escape cut off at the end of the line is dropped.
  BOOST_TEST(ansi_to_html("ab\x1b[3") == "ab");
  BOOST_TEST(ansi_to_html("ab\x1b]0;t") == "ab");
  BOOST_TEST(ansi_to_html("ab\x1b") == "ab");
  // UTF-8 stays; invalid bytes become U+FFFD; C1 controls are dropped.
  BOOST_TEST(ansi_to_html("caf\xc3\xa9 \xe2\x9c\x93")
             == "caf\xc3\xa9 \xe2\x9c\x93");
  BOOST_TEST(ansi_to_html("a\xff"
                          "b")
             == "a\xef\xbf\xbd"
                "b");
  BOOST_TEST(ansi_to_html("a\xe2\x82") == "a\xef\xbf\xbd");
  // A surrogate's bytes: three replacements, as browsers' decoders do.
  BOOST_TEST(ansi_to_html("a\xed\xa0\x80")
             == "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  BOOST_TEST(ansi_to_html("a\xc2\x9b"
                          "b")
             == "ab");
}

BOOST_AUTO_TEST_CASE(redacted_config_hides_secret_keys_and_values) {
  auto secret = [](std::string_view text) {
    std::string out{text};
    for (auto at = out.find("s3cr3t"); at != std::string::npos;
         at = out.find("s3cr3t"))
      out.replace(at, 6, "[secret]");
    return out;
  };
  auto payload = R"({"config":{"provider":"shell","API_TOKEN":"t1",)"
                 R"("nested":{"db_password":"p","host":"h",)"
                 R"("Authorization":{"user":"u"}},)"
                 R"("list":[{"private_key":"k"},"plain"],)"
                 R"("note":"uses s3cr3t"},"other":1})";
  BOOST_TEST(redacted_config(payload, secret)
             == "{\n"
                "  \"API_TOKEN\": \"[redacted]\",\n"
                "  \"list\": [\n"
                "    {\n"
                "      \"private_key\": \"[redacted]\"\n"
                "    },\n"
                "    \"plain\"\n"
                "  ],\n"
                "  \"nested\": {\n"
                "    \"Authorization\": \"[redacted]\",\n"
                "    \"db_password\": \"[redacted]\",\n"
                "    \"host\": \"h\"\n"
                "  },\n"
                "  \"note\": \"uses [secret]\",\n"
                "  \"provider\": \"shell\"\n"
                "}");
  BOOST_TEST(redacted_config(R"({"config":{}})", secret) == "{}");
  BOOST_TEST(redacted_config("{}", secret) == "");
  BOOST_TEST(redacted_config(R"({"config":"x"})", secret) == "");
  BOOST_TEST(redacted_config("not json", secret) == "");
  BOOST_TEST(redacted_config("", secret) == "");
}

BOOST_AUTO_TEST_CASE(durations_read_iso_times_with_milliseconds) {
  BOOST_TEST(duration_text("2026-11-27T12:00:00Z", "2026-11-27T12:00:12Z")
             == "12 s");
  BOOST_TEST(
    duration_text("2026-11-27T12:00:00.900Z", "2026-11-27T12:03:05.100Z")
    == "3 min 4 s");
  BOOST_TEST(duration_text("2026-11-27T12:00:00Z", "2026-11-27T14:05:59Z")
             == "2 h 5 min");
  BOOST_TEST(duration_text("2026-12-31T23:59:50Z", "2027-01-01T00:00:10Z")
             == "20 s");
  BOOST_TEST(duration_text("2028-02-28T23:00:00", "2028-02-29 23:00:00")
             == "24 h 0 min");
  BOOST_TEST(duration_text("2026-11-27T12:00:00Z", "") == "\u2013");
  BOOST_TEST(duration_text("yesterday", "2026-11-27T12:00:00Z") == "\u2013");
  BOOST_TEST(duration_text("2026-11-27T12:00:10Z", "2026-11-27T12:00:00Z")
             == "\u2013");
  BOOST_TEST(duration_text("2026-11-27T12:00:00Z", "2026-11-27T12:00:00+01:00")
             == "\u2013");
}

BOOST_AUTO_TEST_CASE(the_assets_are_there_and_pages_load_only_them) {
  auto css = std::string{stylesheet()};
  auto js = std::string{script()};
  BOOST_TEST(!css.empty());
  BOOST_TEST(!js.empty());
  for (auto part :
       {".state-success", ".state-failure", ".state-running", ".state-queued",
        ".ansi-fg-9", ".ansi-bg-2", ".ansi-bold", "@media"})
    CHECK_HAS(css, part);
  for (auto part :
       {"table#deployments[data-live=\"1\"]", "DOMParser",
        "credentials: 'same-origin'", "getReader", "TextDecoder", "'&from='",
        "data-next-line", "data-ended", "live log disconnected"})
    CHECK_HAS(js, part);
  list_view list;
  list.rows = {row(2, deploy_state::running), row(1, deploy_state::success)};
  list.next_before = 1;
  auto d = detail_of(deploy_state::success);
  log_view log;
  log.lines = {{1, noon, "\x1b[31mred"}};
  log.follow_url = "/log?t=1";
  log.raw_url = "/log?t=1";
  std::vector<env_lock> locks{
    {"octo/app", "production", "mona", "freeze", "2026-11-27T12:00:00Z", 3}};
  std::vector<repository_record> repos{{"octo/app", true, "2026-11-27"}};
  for (auto& who : {signed_in, reader}) {
    for (auto& page :
         {deployments_page(who, to, list, "Done."),
          deployment_page(who, to, d, log, no_redact), locks_page(who, locks),
          repositories_page(who, repos), error_page(404, "Not here.")}) {
      check_nothing_inline(page);
      CHECK_HAS(page, "<!DOCTYPE html>");
      CHECK_HAS(
        page,
        R"(<meta name="viewport" content="width=device-width, initial-scale=1">)");
      CHECK_HAS(page,
                R"(<link rel="stylesheet" href="/ui/assets/heaven.css">)");
      CHECK_HAS(page, R"(<script src="/ui/assets/heaven.js" defer></script>)");
      CHECK_HAS(page, R"(<a href="/ui/deployments">Deployments</a>)");
      CHECK_HAS(page, R"(<a href="/ui/locks">Locks</a>)");
      CHECK_HAS(page, R"(<a href="/ui/repositories">Repositories</a>)");
      CHECK_HAS(page, "<main>");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pages_render)

BOOST_AUTO_TEST_CASE(deployments_list_newest_first_with_links_and_badges) {
  list_view view;
  view.rows = {row(42, deploy_state::running), row(41, deploy_state::success)};
  view.rows[1].ref = "feature/x y";
  auto page = deployments_page(reader, to, view);
  CHECK_HAS(page, R"(<table id="deployments" data-live="1">)");
  CHECK_HAS(
    page,
    R"(<tr id="d42" data-state="running"><td><a class="open" )"
    R"(href="/ui/deployments/42">#42</a></td>)"
    R"(<td><a href="https://github.example/octo/app">octo/app</a></td>)"
    R"(<td>production</td>)"
    R"(<td><a href="https://github.example/octo/app/tree/main">main</a></td>)"
    R"(<td><a class="sha" href="https://github.example/octo/app/commit/)"
    R"(abcdef1234567890abcdef1234567890abcdef12"><code>abcdef1</code></a></td>)"
    R"(<td>hubot</td><td>shell</td>)"
    R"(<td><span class="badge state-running">running</span></td>)"
    R"(<td><time datetime="2026-11-27T12:00:00Z">2026-11-27 12:00:00 UTC</time></td>)"
    "<td>\u2013</td></tr>");
  CHECK_HAS(page, R"(<tr id="d41" data-state="success">)");
  CHECK_HAS(
    page,
    R"(href="https://github.example/octo/app/tree/feature/x%20y">feature/x y</a>)");
  CHECK_HAS(page, R"(<span class="badge state-success">success</span>)");
  CHECK_HAS(page, "<td>12 s</td></tr>");
  BOOST_TEST(before(page, "id=\"d42\"", "id=\"d41\""));
  CHECK_LACKS(page, "rel=\"next\"");
  CHECK_LACKS(page, "class=\"empty\"");
  // Nothing running: the table is not live.
  view.rows = {row(41, deploy_state::failure), row(40, deploy_state::error)};
  page = deployments_page(reader, to, view);
  CHECK_HAS(page, "<table id=\"deployments\">");
  CHECK_LACKS(page, "data-live");
  CHECK_HAS(page, R"(<span class="badge state-failure">failure</span>)");
  view.rows = {row(3, deploy_state::queued)};
  CHECK_HAS(deployments_page(reader, to, view),
            R"(<table id="deployments" data-live="1">)");
  // GitHub's address without its trailing slash works the same.
  CHECK_HAS(deployments_page(reader, links{"https://github.example"}, view),
            R"(<a href="https://github.example/octo/app">octo/app</a>)");
}

BOOST_AUTO_TEST_CASE(the_filter_and_the_next_page_keep_the_filter) {
  list_view view;
  view.rows = {row(60, deploy_state::running)};
  view.filter.repo = "octo/app";
  view.filter.environment = "staging";
  view.filter.state = "running";
  view.next_before = 60;
  auto page = deployments_page(reader, to, view);
  CHECK_HAS(
    page, R"(<a rel="next" href="/ui/deployments?repo=octo%2Fapp&amp;)"
          R"(environment=staging&amp;state=running&amp;before=60">Older</a>)");
  CHECK_HAS(page,
            R"(<form id="filter" method="get" action="/ui/deployments">)");
  CHECK_HAS(page, R"(<input name="repo" value="octo/app")");
  CHECK_HAS(page, R"(<input name="environment" value="staging")");
  CHECK_HAS(page, R"(<option value="">any</option>)");
  CHECK_HAS(page, R"(<option value="running" selected>running</option>)");
  CHECK_HAS(page, R"(<option value="queued">queued</option>)");
  CHECK_HAS(page, "<button>Filter</button>");
  // Only the filter's set values go into the link.
  view.filter = {};
  view.filter.state = "failure";
  page = deployments_page(reader, to, view);
  CHECK_HAS(
    page,
    R"(<a rel="next" href="/ui/deployments?state=failure&amp;before=60">)");
  CHECK_HAS(page, R"(<option value="failure" selected>failure</option>)");
  view.filter = {};
  CHECK_HAS(deployments_page(reader, to, view),
            R"(<a rel="next" href="/ui/deployments?before=60">Older</a>)");
  CHECK_HAS(deployments_page(reader, to, view),
            R"(<option value="" selected>any</option>)");
  // No deployments.
  page = deployments_page(reader, to, list_view{});
  CHECK_HAS(page, R"(<p class="empty">No deployments.</p>)");
  CHECK_LACKS(page, "<table");
  CHECK_LACKS(page, "rel=\"next\"");
}

BOOST_AUTO_TEST_CASE(hostile_values_are_escaped_everywhere) {
  auto evil = row(5, deploy_state::success);
  evil.repo = R"(o"><script>alert(1)</script>)";
  evil.environment = R"(prod"'<x>)";
  evil.ref = R"(a"b<i>)";
  evil.sha = R"(<sha">)";
  evil.actor = "<img src=x onerror=alert(1)>";
  evil.provider = "<b>shell</b>";
  evil.description = "<script>steal()</script>";
  evil.created_at = "<now>";
  list_view view;
  view.rows = {evil};
  view.filter.repo = R"("><script>)";
  view.filter.state = R"("><x>)";
  view.next_before = 5;
  auto page = deployments_page(signed_in, to, view, "<notice>");
  deployment_detail d;
  d.found = true;
  d.row = evil;
  d.request.payload_json = R"({"config":{"x":"</pre><script>1</script>"}})";
  d.statuses = {{"<st>", "<script>status()</script>", noon, 0, ""}};
  log_view log;
  log.lines = {{1, noon, "<script>log()</script>"}};
  log.follow_url = R"(/log?a="><script>)";
  log.raw_url = R"(/raw?a="><script>)";
  log.truncated = true;
  auto detail = deployment_page(signed_in, to, d, log, no_redact, "<said>");
  auto locks = locks_page(signed_in, {{evil.repo, evil.environment, evil.actor,
                                       "<script>why()</script>", "<time>", 5}});
  auto repos = repositories_page(signed_in,
                                 {{evil.repo, false, "<script>seen"}});
  auto error = error_page(403, "<script>no()</script>");
  for (auto& p : {page, detail, locks, repos, error}) {
    CHECK_LACKS(p, "<script>");
    CHECK_LACKS(p, "<img");
    CHECK_LACKS(p, "<b>");
    CHECK_LACKS(p, "<i>");
    CHECK_LACKS(p, "<x>");
    CHECK_LACKS(p, "a\"b");
  }
  CHECK_HAS(page, "&lt;img src=x onerror=alert(1)&gt;");
  CHECK_HAS(page, R"(<input name="repo" value="&quot;&gt;&lt;script&gt;")");
  CHECK_HAS(page, "<p class=\"notice\">&lt;notice&gt;</p>");
  CHECK_HAS(page, "a&quot;b&lt;i&gt;</a>");
  CHECK_HAS(page, "<td>&lt;now&gt;</td>");
  CHECK_HAS(detail, "&lt;script&gt;steal()&lt;/script&gt;");
  CHECK_HAS(detail, "&lt;script&gt;status()&lt;/script&gt;");
  CHECK_HAS(detail,
            "<span class=\"text\">&lt;script&gt;log()&lt;/script&gt;</span>");
  CHECK_HAS(detail, "&lt;/pre&gt;&lt;script&gt;1&lt;/script&gt;");
  CHECK_HAS(detail, R"(data-follow="/log?a=&quot;&gt;&lt;script&gt;")");
  CHECK_HAS(detail, "<p class=\"notice\">&lt;said&gt;</p>");
  CHECK_HAS(locks, "<td>&lt;script&gt;why()&lt;/script&gt;</td>");
  CHECK_HAS(locks, R"(data-environment="prod&quot;&#39;&lt;x&gt;")");
  CHECK_HAS(repos, "&lt;script&gt;seen");
  CHECK_HAS(error, "<p class=\"error\">&lt;script&gt;no()&lt;/script&gt;</p>");
}

BOOST_AUTO_TEST_CASE(forms_only_with_a_csrf_token_and_each_carries_it) {
  list_view view;
  view.rows = {row(1, deploy_state::success)};
  auto d = detail_of(deploy_state::success);
  std::vector<env_lock> locks{
    {"octo/app", "production", "mona", "freeze", "2026-11-27T12:00:00Z", 3}};
  std::vector<repository_record> repos{{"octo/app", true, ""}};
  for (auto& page :
       {deployments_page(reader, to, view),
        deployment_page(reader, to, d, log_view{}, no_redact),
        locks_page(reader, locks), repositories_page(reader, repos)}) {
    CHECK_LACKS(page, "method=\"post\"");
    CHECK_LACKS(page, "name=\"csrf\"");
    CHECK_LACKS(page, "<button class=");
    CHECK_LACKS(page, "class=\"who\"");
  }
  // A signed-in reader: every post form has the token.
  viewer odd{"mona", R"(t"k<)"};
  for (auto& page : {deployments_page(odd, to, view),
                     deployment_page(odd, to, d, log_view{}, no_redact),
                     locks_page(odd, locks), repositories_page(odd, repos)}) {
    CHECK_HAS(page, R"(<span class="who">mona</span>)");
    CHECK_HAS(page, R"(<form method="post" action="/auth/signout">)"
                    R"(<input type="hidden" name="csrf" value="t&quot;k&lt;">)"
                    "<button>Sign out</button></form>");
    size_t forms = 0, fields = 0;
    for (auto at = page.find("method=\"post\""); at != std::string::npos;
         at = page.find("method=\"post\"", at + 1))
      ++forms;
    for (auto at = page.find(R"(name="csrf" value="t&quot;k&lt;")");
         at != std::string::npos;
         at = page.find(R"(name="csrf" value="t&quot;k&lt;")", at + 1))
      ++fields;
    BOOST_TEST(forms >= 1u);
    BOOST_TEST(forms == fields);
  }
}

BOOST_AUTO_TEST_CASE(one_deployment_shows_summary_timeline_config_and_log) {
  auto d = detail_of(deploy_state::success);
  log_view log;
  log.lines = {{9, noon + 2000, "\x1b[32mok\x1b[0m done"}, {10, 0, "<end>"}};
  log.truncated = true;
  log.end_offset = 1234;
  log.raw_url = "/deployments/7/log?token=a&b";
  auto page = deployment_page(reader, to, d, log, no_redact);
  CHECK_HAS(page, "<title>octo/app #7 \u00b7 heaven</title>");
  CHECK_HAS(page, "<h1>octo/app #7</h1>");
  CHECK_HAS(page, "<dl id=\"summary\">");
  CHECK_HAS(
    page,
    R"(<dt>State</dt><dd><span class="badge state-success">success</span></dd>)");
  CHECK_HAS(page, "<dt>Task</dt><dd>deploy</dd>");
  CHECK_HAS(page, "<dt>Who</dt><dd>hubot</dd>");
  CHECK_HAS(page, "<dt>Duration</dt><dd>12 s</dd>");
  CHECK_HAS(page, "<dt>GitHub id</dt><dd>9007</dd>");
  CHECK_HAS(page, "<dt>Started</dt><dd>\u2013</dd>");
  CHECK_HAS(page,
            R"(<dt>Finished</dt><dd><time datetime="2026-11-27T12:00:12.500Z">)"
            "2026-11-27 12:00:12 UTC</time></dd>");
  CHECK_HAS(
    page,
    R"(<dt>Sha</dt><dd><a class="sha" href="https://github.example/octo/app/commit/)");
  CHECK_HAS(page, "<ol id=\"timeline\">");
  CHECK_HAS(
    page,
    R"(<li data-state="in_progress"><span class="badge state-in_progress">)"
    R"(in_progress</span> <span class="description">Deploying</span> )"
    R"(<time datetime="2026-11-27T12:00:01Z">2026-11-27 12:00:01 UTC</time></li>)");
  BOOST_TEST(before(page, R"(<li data-state="queued">)",
                    R"(<li data-state="in_progress">)"));
  BOOST_TEST(before(page, R"(<li data-state="in_progress">)",
                    R"(<li data-state="success">)"));
  CHECK_HAS(page, "<pre id=\"config\">{\n  &quot;api_token&quot;: "
                  "&quot;[redacted]&quot;,\n  &quot;provider&quot;: "
                  "&quot;shell&quot;\n}</pre>");
  CHECK_HAS(
    page,
    R"(<p class="truncated">Earlier lines are left out: )"
    R"(<a href="/deployments/7/log?token=a&amp;b">the whole log</a></p>)");
  CHECK_HAS(
    page,
    R"(<div id="log" data-follow="" data-from="1234" data-next-line="11">)");
  CHECK_HAS(
    page, R"(<div class="line" id="L9"><a class="ln" href="#L9">9</a>)"
          R"(<time>12:00:02</time><span class="text"><span class="ansi-fg-2">)"
          R"(ok</span> done</span></div>)");
  CHECK_HAS(page,
            R"(<div class="line" id="L10"><a class="ln" href="#L10">10</a>)"
            R"(<time></time><span class="text">&lt;end&gt;</span></div>)");
  CHECK_HAS(
    page, R"(<a id="raw" href="/deployments/7/log?token=a&amp;b">Raw log</a>)");
  BOOST_TEST(before(page, "class=\"truncated\"", "id=\"log\""));
  // A running one: followed, not truncated, no config, no duration yet.
  d = detail_of(deploy_state::running);
  d.request.payload_json = "{}";
  d.started_at = "2026-11-27T12:00:01Z";
  log = log_view{};
  log.end_offset = 0;
  log.follow_url = "/deployments/7/log?token=a&follow=1";
  page = deployment_page(reader, to, d, log, no_redact);
  CHECK_HAS(
    page,
    R"(<div id="log" data-follow="/deployments/7/log?token=a&amp;follow=1" )"
    R"(data-from="0" data-next-line="1"></div>)");
  CHECK_HAS(page, "<dt>Duration</dt><dd>\u2013</dd>");
  CHECK_HAS(page,
            R"(<dt>Started</dt><dd><time datetime="2026-11-27T12:00:01Z">)");
  CHECK_LACKS(page, "id=\"config\"");
  CHECK_LACKS(page, "class=\"truncated\"");
  CHECK_LACKS(page, "id=\"raw\"");
  // The config passes through the redactor after the keys.
  d = detail_of(deploy_state::success);
  d.request.payload_json = R"({"config":{"url":"https://u:pw@host"}})";
  page = deployment_page(reader, to, d, log_view{}, [](std::string_view t) {
    auto s = std::string{t};
    auto at = s.find("pw");
    return s.replace(at, 2, "***");
  });
  CHECK_HAS(page, "&quot;https://u:***@host&quot;");
  CHECK_LACKS(page, "pw@");
  // No such deployment.
  page = deployment_page(reader, to, deployment_detail{}, log_view{},
                         no_redact);
  CHECK_HAS(page, "<h1>No such deployment</h1>");
  CHECK_LACKS(page, "id=\"log\"");
}

BOOST_AUTO_TEST_CASE(redeploy_and_rollback_follow_the_rules) {
  const std::string redeploy
    = R"(<form method="post" action="/ui/deployments/7/redeploy">)"
      R"(<input type="hidden" name="csrf" value="c5rf">)"
      R"(<button id="redeploy">Deploy this sha again</button></form>)";
  const std::string rollback
    = R"(<form method="post" action="/ui/deployments/7/rollback">)"
      R"(<input type="hidden" name="csrf" value="c5rf">)"
      R"(<button id="rollback">Roll back to this deployment</button></form>)";
  auto page_of = [](const deployment_detail& d) {
    return deployment_page(signed_in, to, d, log_view{}, no_redact);
  };
  // An ended successful deploy of another sha than the current one.
  auto d = detail_of(deploy_state::success);
  auto page = page_of(d);
  CHECK_HAS(page, redeploy);
  CHECK_HAS(page, rollback);
  // The sha that runs now: nothing to roll back to.
  d.current_sha = d.row.sha;
  page = page_of(d);
  CHECK_HAS(page, redeploy);
  CHECK_LACKS(page, "id=\"rollback\"");
  // A failed one: deploy again, never roll back to it.
  d = detail_of(deploy_state::failure);
  page = page_of(d);
  CHECK_HAS(page, redeploy);
  CHECK_LACKS(page, "id=\"rollback\"");
  d = detail_of(deploy_state::error);
  CHECK_HAS(page_of(d), redeploy);
  // Still running or queued: neither.
  for (auto s : {deploy_state::running, deploy_state::queued}) {
    page = page_of(detail_of(s));
    CHECK_LACKS(page, "id=\"redeploy\"");
    CHECK_LACKS(page, "id=\"rollback\"");
  }
  // No sha: nothing to deploy again.
  d = detail_of(deploy_state::success);
  d.row.sha.clear();
  page = page_of(d);
  CHECK_LACKS(page, "id=\"redeploy\"");
  CHECK_LACKS(page, "id=\"rollback\"");
  // A lock is no deploy: neither to do again nor to roll back to.
  d = detail_of(deploy_state::success);
  for (auto task : {"deploy:lock", "deploy:unlock", "migrate"}) {
    d.row.task = task;
    page = page_of(d);
    CHECK_LACKS(page, "id=\"redeploy\"");
    CHECK_LACKS(page, "id=\"rollback\"");
  }
  d.row.task = "deploy:migrations";
  CHECK_HAS(page_of(d), rollback);
}

BOOST_AUTO_TEST_CASE(locks_list_each_lock_with_its_unlock_form) {
  std::vector<env_lock> locks{{"octo/app", "production", "mona", "freeze",
                               "2026-11-27T12:00:00Z", 3},
                              {"octo/web", "staging", "hubot", "", "", 0}};
  auto page = locks_page(signed_in, locks, "Unlocked octo/api production.");
  CHECK_HAS(page, "<p class=\"notice\">Unlocked octo/api production.</p>");
  CHECK_HAS(page, "<table id=\"locks\">");
  CHECK_HAS(
    page,
    R"(<tr data-repo="octo/app" data-environment="production">)"
    R"(<td>octo/app</td><td>production</td><td>mona</td>)"
    R"(<td><time datetime="2026-11-27T12:00:00Z">2026-11-27 12:00:00 UTC</time></td>)"
    R"(<td>freeze</td><td><form method="post" action="/ui/locks/unlock">)"
    R"(<input type="hidden" name="repo" value="octo/app">)"
    R"(<input type="hidden" name="environment" value="production">)"
    R"(<input type="hidden" name="csrf" value="c5rf">)"
    R"(<button class="unlock">Unlock</button></form></td></tr>)");
  CHECK_HAS(page, R"(<tr data-repo="octo/web" data-environment="staging">)");
  BOOST_TEST(before(page, "data-repo=\"octo/app\"", "data-repo=\"octo/web\""));
  page = locks_page(reader, locks);
  CHECK_HAS(
    page,
    R"(<tr data-repo="octo/app" data-environment="production">)"
    R"(<td>octo/app</td><td>production</td><td>mona</td>)"
    R"(<td><time datetime="2026-11-27T12:00:00Z">2026-11-27 12:00:00 UTC</time></td>)"
    "<td>freeze</td></tr>");
  CHECK_LACKS(page, "<p class=\"notice\">");
  page = locks_page(signed_in, {});
  CHECK_HAS(page, R"(<p class="empty">No environment is locked.</p>)");
  CHECK_LACKS(page, "<table");
}

BOOST_AUTO_TEST_CASE(repositories_list_each_with_its_switch) {
  std::vector<repository_record> repos{
    {"octo/app", true, "2026-11-27T12:00:00Z"},
    {"octo/old", false, "2026-11-27T12:00:00.250Z"}};
  auto page = repositories_page(signed_in, repos);
  CHECK_HAS(page, "<table id=\"repositories\">");
  CHECK_HAS(
    page,
    R"(<tr data-repo="octo/app" data-active="1"><td>octo/app</td>)"
    R"(<td><span class="badge state-enabled">enabled</span></td>)"
    R"(<td><time datetime="2026-11-27T12:00:00Z">2026-11-27 12:00:00 UTC</time></td>)"
    R"(<td><form method="post" action="/ui/repositories/switch">)"
    R"(<input type="hidden" name="repo" value="octo/app">)"
    R"(<input type="hidden" name="active" value="0">)"
    R"(<input type="hidden" name="csrf" value="c5rf">)"
    R"(<button class="switch">Disable</button></form></td></tr>)");
  CHECK_HAS(
    page,
    R"(<tr data-repo="octo/old" data-active="0"><td>octo/old</td>)"
    R"(<td><span class="badge state-disabled">disabled</span></td>)"
    R"(<td><time datetime="2026-11-27T12:00:00.250Z">2026-11-27 12:00:00 UTC</time></td>)"
    R"(<td><form method="post" action="/ui/repositories/switch">)"
    R"(<input type="hidden" name="repo" value="octo/old">)"
    R"(<input type="hidden" name="active" value="1">)"
    R"(<input type="hidden" name="csrf" value="c5rf">)"
    R"(<button class="switch">Enable</button></form></td></tr>)");
  page = repositories_page(reader, repos);
  CHECK_HAS(
    page,
    R"(<tr data-repo="octo/old" data-active="0"><td>octo/old</td>)"
    R"(<td><span class="badge state-disabled">disabled</span></td>)"
    R"(<td><time datetime="2026-11-27T12:00:00.250Z">2026-11-27 12:00:00 UTC</time></td></tr>)");
  CHECK_LACKS(page, "<form method=\"post\"");
}

BOOST_AUTO_TEST_CASE(the_error_page_says_what_went_wrong) {
  auto page = error_page(404, "No such deployment.");
  CHECK_HAS(page, "<title>Error 404 \u00b7 heaven</title>");
  CHECK_HAS(page,
            "<h1>Error 404</h1>\n<p class=\"error\">No such deployment.</p>");
  CHECK_LACKS(page, "class=\"who\"");
}

BOOST_AUTO_TEST_SUITE_END()
