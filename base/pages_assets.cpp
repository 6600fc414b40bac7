// The pages' one stylesheet and one script (served as
// /ui/assets/heaven.{css,js}; the Content-Security-Policy allows nothing
// inline).
#include "base/pages.hpp"

namespace heaven::pages {

namespace {

constexpr std::string_view css = R"css(
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff;
  --soft: #f6f8fa; --link: #0b5cad; --green: #1a7f37; --red: #cf222e;
  --blue: #0969da; --grey: #6e7781;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; color: var(--fg); background: var(--bg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--link); }
header {
  display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between;
  gap: .5rem 1rem; padding: .6rem 1rem; background: var(--soft); border-bottom: 1px solid var(--line);
}
nav a { margin-right: 1rem; font-weight: 600; text-decoration: none; }
nav a:hover { text-decoration: underline; }
.account { display: flex; align-items: center; gap: .6rem; }
.account form { margin: 0; }
.who { color: var(--muted); }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; word-break: break-word; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
button {
  font: inherit; padding: .25rem .7rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--soft); color: var(--fg); cursor: pointer;
}
button:hover { background: #eaeef2; }
input, select {
  font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--fg); max-width: 100%;
}
.notice { padding: .5rem .8rem; border: 1px solid #9cd6a9; background: #dafbe1; border-radius: 6px; }
.error { color: var(--red); }
.empty { color: var(--muted); }
#filter { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: flex-end; margin-bottom: 1rem; }
#filter label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; vertical-align: middle; }
th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td form { margin: 0; }
tbody tr:hover { background: var(--soft); }
code, pre, #log { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
code { font-size: .9em; }
.badge {
  display: inline-block; padding: 0 .55rem; border-radius: 1rem; font-size: .8rem; font-weight: 600;
  line-height: 1.6; color: #fff; background: var(--grey);
}
.state-success, .state-enabled { background: var(--green); }
.state-failure, .state-error { background: var(--red); }
.state-running, .state-in_progress { background: var(--blue); animation: pulse 2s ease-in-out infinite; }
.state-queued, .state-disabled { background: var(--grey); }
@keyframes pulse { 50% { opacity: .65; } }
@media (prefers-reduced-motion: reduce) { .badge { animation: none; } }
.pages { margin-top: 1rem; }
#summary { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
#summary dt { color: var(--muted); }
#summary dd { margin: 0; word-break: break-word; }
.description { color: var(--muted); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; margin: 1rem 0; }
.actions form { margin: 0; }
#timeline { list-style: none; padding: 0 0 0 1rem; border-left: 2px solid var(--line); margin: 0; }
#timeline li { margin: 0 0 .5rem; }
#timeline time { color: var(--muted); font-size: .85rem; }
#config { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; overflow-x: auto; }
.truncated { color: var(--muted); }
#log {
  background: #0d1117; color: #e6edf3; border-radius: 6px; padding: .5rem 0;
  font-size: 13px; line-height: 1.45; overflow-x: auto;
}
#log .line { display: flex; padding: 0 .8rem 0 0; white-space: pre; }
#log .line:hover { background: #161b22; }
#log .line:target, #log .line.target { background: #3b2e00; }
#log .ln {
  flex: none; width: 4.5em; padding-right: .8em; text-align: right; color: #6e7681; text-decoration: none;
  user-select: none; -webkit-user-select: none;
}
#log .ln:hover { color: #e6edf3; }
#log time { flex: none; color: #8b949e; width: 6.5em; user-select: none; -webkit-user-select: none; }
#log .text { flex: auto; }
.disconnected { color: var(--red); font-size: .85rem; }
.ansi-bold { font-weight: 700; }
.ansi-fg-0 { color: #484f58; } .ansi-fg-1 { color: #ff7b72; } .ansi-fg-2 { color: #3fb950; }
.ansi-fg-3 { color: #d29922; } .ansi-fg-4 { color: #58a6ff; } .ansi-fg-5 { color: #bc8cff; }
.ansi-fg-6 { color: #39c5cf; } .ansi-fg-7 { color: #b1bac4; } .ansi-fg-8 { color: #6e7681; }
.ansi-fg-9 { color: #ffa198; } .ansi-fg-10 { color: #56d364; } .ansi-fg-11 { color: #e3b341; }
.ansi-fg-12 { color: #79c0ff; } .ansi-fg-13 { color: #d2a8ff; } .ansi-fg-14 { color: #56d4dd; }
.ansi-fg-15 { color: #ffffff; }
.ansi-bg-0 { background: #484f58; } .ansi-bg-1 { background: #b62324; } .ansi-bg-2 { background: #196c2e; }
.ansi-bg-3 { background: #845306; } .ansi-bg-4 { background: #0d419d; } .ansi-bg-5 { background: #6e40c9; }
.ansi-bg-6 { background: #1b7c83; } .ansi-bg-7 { background: #b1bac4; } .ansi-bg-8 { background: #6e7681; }
.ansi-bg-9 { background: #da3633; } .ansi-bg-10 { background: #2ea043; } .ansi-bg-11 { background: #bb8009; }
.ansi-bg-12 { background: #1f6feb; } .ansi-bg-13 { background: #8957e5; } .ansi-bg-14 { background: #2b9da3; }
.ansi-bg-15 { background: #f0f6fc; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  main { padding: .6rem; }
  nav a { margin-right: .7rem; }
  #summary { grid-template-columns: 1fr; gap: 0; }
  #summary dd { margin-bottom: .4rem; }
  #log time { display: none; }
  #log .ln { width: 3.5em; }
}
)css";

constexpr std::string_view js = R"js(
// heaven's pages: the live parts (running deployments, the log). Everything
// else works without this script.
(function () {
  'use strict';

  var ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function escapeHtml(s) {
    return s.replace(/[&<>"']/g, function (c) { return ESCAPES[c]; });
  }

  // The same as heaven's ansi_to_html: SGR colours as spans, other escapes
  // and control characters dropped, the output always balanced.
  function ansiToHtml(line) {
    var out = '', run = '', open = '';
    var bold = false, fg = -1, bg = -1;
    function classes() {
      var c = [];
      if (bold) c.push('ansi-bold');
      if (fg >= 0) c.push('ansi-fg-' + fg);
      if (bg >= 0) c.push('ansi-bg-' + bg);
      return c.join(' ');
    }
    function flush() {
      if (!run) return;
      var want = classes();
      if (want !== open) {
        if (open) out += '</span>';
        if (want) out += '<span class="' + want + '">';
        open = want;
      }
      out += escapeHtml(run);
      run = '';
    }
    function apply(params) {
      var ps = params.split(';').map(function (p) { return p === '' ? 0 : Math.min(parseInt(p, 10), 100000); });
      for (var k = 0; k < ps.length; k++) {
        var p = ps[k];
        if (p === 0) { bold = false; fg = -1; bg = -1; }
        else if (p === 1) bold = true;
        else if (p === 22) bold = false;
        else if (p >= 30 && p <= 37) fg = p - 30;
        else if (p === 39) fg = -1;
        else if (p >= 40 && p <= 47) bg = p - 40;
        else if (p === 49) bg = -1;
        else if (p >= 90 && p <= 97) fg = p - 90 + 8;
        else if (p >= 100 && p <= 107) bg = p - 100 + 8;
        else if ((p === 38 || p === 48) && k + 1 < ps.length) {
          if (ps[k + 1] === 5) k += 2;
          else if (ps[k + 1] === 2) k += 4;
        }
      }
    }
    var i = 0, n = line.length;
    while (i < n) {
      var c = line.charCodeAt(i);
      if (c === 0x1b) {
        var next = line.charAt(i + 1), j;
        if (next === '[') {
          j = i + 2;
          while (j < n && line.charCodeAt(j) >= 0x30 && line.charCodeAt(j) <= 0x3f) j++;
          var params = line.slice(i + 2, j);
          while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
          if (j >= n) break;
          if (line.charAt(j) === 'm' && j === i + 2 + params.length && /^[0-9;]*$/.test(params)) {
            flush();
            apply(params);
          }
          i = j + 1;
        } else if (next === ']') {
          j = i + 2;
          while (j < n && line.charAt(j) !== '\x07' && !(line.charCodeAt(j) === 0x1b && line.charAt(j + 1) === '\\')) j++;
          i = j >= n ? n : (line.charAt(j) === '\x07' ? j + 1 : j + 2);
        } else {
          j = i + 1;
          while (j < n && line.charCodeAt(j) >= 0x20 && line.charCodeAt(j) <= 0x2f) j++;
          i = Math.min(j + 1, n);
        }
      } else {
        if ((c >= 0x20 && c !== 0x7f && !(c >= 0x80 && c <= 0x9f)) || c === 9) run += line.charAt(i);
        i++;
      }
    }
    flush();
    if (open) out += '</span>';
    return out;
  }

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function clock(d) {
    return pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }

  // Deployments: while a row is queued or running, the table's body is
  // fetched again every 2 s.
  function liveTable() {
    if (!document.querySelector('table#deployments[data-live="1"]')) return;
    var failures = 0;
    function tick() {
      fetch(location.href, { credentials: 'same-origin' }).then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      }).then(function (html) {
        failures = 0;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('table#deployments');
        var table = document.querySelector('table#deployments');
        if (!fresh || !table || !fresh.tBodies[0] || !table.tBodies[0]) return;
        table.replaceChild(document.importNode(fresh.tBodies[0], true), table.tBodies[0]);
        if (fresh.getAttribute('data-live') === '1') {
          table.setAttribute('data-live', '1');
          setTimeout(tick, 2000);
        } else {
          table.removeAttribute('data-live');
        }
      }).catch(function () {
        if (++failures < 5) setTimeout(tick, 2000);
      });
    }
    setTimeout(tick, 2000);
  }

  function lineAnchor() { return /^#L\d+$/.test(location.hash); }

  // The log: the :target line highlighted and in view.
  function highlight() {
    var old = document.querySelectorAll('#log .line.target');
    for (var k = 0; k < old.length; k++) old[k].classList.remove('target');
    if (!lineAnchor()) return;
    var line = document.getElementById(location.hash.slice(1));
    if (!line) return;
    line.classList.add('target');
    line.scrollIntoView({ block: 'center' });
  }

  // The log of a running deployment: streamed and appended line by line.
  function followLog() {
    var log = document.getElementById('log');
    if (!log) return;
    highlight();
    window.addEventListener('hashchange', highlight);
    var follow = log.getAttribute('data-follow');
    if (!follow) return;
    var from = log.getAttribute('data-from') || '0';
    var next = parseInt(log.getAttribute('data-next-line'), 10) || 1;
    var root = document.scrollingElement || document.documentElement;
    function atEnd() { return window.innerHeight + window.pageYOffset >= root.scrollHeight - 40; }
    // Following the end until the reader scrolls up; back at the end, it
    // follows again.
    var stick = true;
    var lastY = window.pageYOffset;
    window.addEventListener('scroll', function () {
      var y = window.pageYOffset;
      if (atEnd()) stick = true;
      else if (y < lastY) stick = false;
      lastY = y;
    });
    function toEnd() {
      if (!stick || lineAnchor()) return;
      window.scrollTo(0, root.scrollHeight);
    }
    function append(text) {
      if (text.charAt(text.length - 1) === '\r') text = text.slice(0, -1);
      var n = String(next++);
      var div = document.createElement('div');
      div.className = 'line';
      div.id = 'L' + n;
      var a = document.createElement('a');
      a.className = 'ln';
      a.href = '#L' + n;
      a.textContent = n;
      var time = document.createElement('time');
      time.textContent = clock(new Date());
      var span = document.createElement('span');
      span.className = 'text';
      span.innerHTML = ansiToHtml(text);
      div.appendChild(a);
      div.appendChild(time);
      div.appendChild(span);
      log.appendChild(div);
      log.setAttribute('data-next-line', String(next));
    }
    function disconnected() {
      if (document.querySelector('.disconnected')) return;
      var p = document.createElement('p');
      p.className = 'disconnected';
      p.textContent = 'live log disconnected';
      log.parentNode.insertBefore(p, log.nextSibling);
    }
    fetch(follow + '&from=' + encodeURIComponent(from), { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var tail = '';
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            tail += decoder.decode();
            if (tail) append(tail);
            toEnd();
            log.setAttribute('data-ended', '1');
            return;
          }
          tail += decoder.decode(chunk.value, { stream: true });
          var parts = tail.split('\n');
          tail = parts.pop();
          parts.forEach(append);
          if (parts.length) toEnd();
          return pump();
        });
      }
      return pump();
    }).catch(disconnected);
  }

  function start() {
    liveTable();
    followLog();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
)js";

} // namespace

std::string_view stylesheet() {
  return css.substr(1);
}

std::string_view script() {
  return js.substr(1);
}

} // namespace heaven::pages
