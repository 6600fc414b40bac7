// The pages' text helpers: escaping, ANSI colours, the redacted config,
// times and durations.
#include "base/pages.hpp"
#include "base/pages_parts.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace heaven::pages {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

/// The colours and boldness of the text written next (-1: the default).
struct sgr {
  bool bold = false;
  int fg = -1;
  int bg = -1;

  std::string classes() const {
    std::string out;
    auto add = [&](const std::string& x) {
      if (!out.empty())
        out += ' ';
      out += x;
    };
    if (bold)
      add("ansi-bold");
    if (fg >= 0)
      add("ansi-fg-" + std::to_string(fg));
    if (bg >= 0)
      add("ansi-bg-" + std::to_string(bg));
    return out;
  }

  /// Applies the parameters of one `ESC [ ... m`.
  void apply(std::string_view params) {
    std::vector<int> ps;
    int value = 0;
    for (char c : params) {
      if (c == ';') {
        ps.push_back(value);
        value = 0;
      } else {
        value = std::min(value * 10 + (c - '0'), 100000);
      }
    }
    ps.push_back(value);
    for (size_t i = 0; i < ps.size(); ++i) {
      int p = ps[i];
      if (p == 0) {
        *this = sgr{};
      } else if (p == 1) {
        bold = true;
      } else if (p == 22) {
        bold = false;
      } else if (p >= 30 && p <= 37) {
        fg = p - 30;
      } else if (p == 39) {
        fg = -1;
      } else if (p >= 40 && p <= 47) {
        bg = p - 40;
      } else if (p == 49) {
        bg = -1;
      } else if (p >= 90 && p <= 97) {
        fg = p - 90 + 8;
      } else if (p >= 100 && p <= 107) {
        bg = p - 100 + 8;
      } else if ((p == 38 || p == 48) && i + 1 < ps.size()) {
        // 256 colours and true colour: not shown, their numbers skipped.
        if (ps[i + 1] == 5)
          i += 2;
        else if (ps[i + 1] == 2)
          i += 4;
      }
    }
  }
};

/// The length of a valid UTF-8 sequence at `s[i]` (>= 0x80), with its code
/// point; 0 and the length of its maximal invalid part when invalid.
std::pair<size_t, uint32_t> utf8_at(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf) {
    n = 2;
    cp = b & 0x1f;
  } else if (b >= 0xe0 && b <= 0xef) {
    n = 3;
    cp = b & 0x0f;
    lo = b == 0xe0 ? 0xa0 : 0x80;
    hi = b == 0xed ? 0x9f : 0xbf;
  } else if (b >= 0xf0 && b <= 0xf4) {
    n = 4;
    cp = b & 0x07;
    lo = b == 0xf0 ? 0x90 : 0x80;
    hi = b == 0xf4 ? 0x8f : 0xbf;
  } else {
    return {0, 1};
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size())
      return {0, k};
    auto c = static_cast<unsigned char>(s[i + k]);
    if (c < lo || c > hi)
      return {0, k};
    lo = 0x80;
    hi = 0xbf;
    cp = (cp << 6) | (c & 0x3f);
  }
  return {n, cp};
}

} // namespace

std::string ansi_to_html(std::string_view line) {
  std::string out;
  std::string run; // text not yet written, in the current state
  sgr state;
  std::string open; // the classes of the open <span>, "" for none
  auto flush = [&] {
    if (run.empty())
      return;
    auto want = state.classes();
    if (want != open) {
      if (!open.empty())
        out += "</span>";
      if (!want.empty())
        out += "<span class=\"" + want + "\">";
      open = want;
    }
    out += escape(run);
    run.clear();
  };
  size_t i = 0;
  const size_t n = line.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c == 0x1b) {
      if (i + 1 < n && line[i + 1] == '[') {
        // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, a final byte.
        size_t j = i + 2;
        while (j < n && line[j] >= 0x30 && line[j] <= 0x3f)
          ++j;
        auto params = line.substr(i + 2, j - i - 2);
        while (j < n && line[j] >= 0x20 && line[j] <= 0x2f)
          ++j;
        if (j >= n)
          break;
        if (line[j] == 'm' && j == i + 2 + params.size()
            && params.find_first_not_of("0123456789;")
                 == std::string_view::npos) {
          flush();
          state.apply(params);
        }
        i = j + 1;
      } else if (i + 1 < n && line[i + 1] == ']') {
        // OSC: up to BEL or ESC backslash.
        size_t j = i + 2;
        while (j < n && line[j] != '\a'
               && !(line[j] == 0x1b && j + 1 < n && line[j + 1] == '\\'))
          ++j;
        i = j >= n ? n : (line[j] == '\a' ? j + 1 : j + 2);
      } else {
        size_t j = i + 1;
        while (j < n && line[j] >= 0x20 && line[j] <= 0x2f)
          ++j;
        i = std::min(j + 1, n);
      }
    } else if (c < 0x80) {
      if ((c >= 0x20 && c != 0x7f) || c == '\t')
        run += static_cast<char>(c);
      ++i;
    } else {
      auto [len, cp] = utf8_at(line, i);
      if (len == 0) {
        run += "\xef\xbf\xbd";
        i += cp;
      } else {
        if (cp > 0x9f)
          run.append(line.substr(i, len));
        i += len;
      }
    }
  }
  flush();
  if (!open.empty())
    out += "</span>";
  return out;
}

namespace {

using json = nlohmann::json;

bool secret_key(std::string key) {
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (auto word : {"token", "secret", "password", "passwd", "key",
                    "credential", "auth", "private"})
    if (key.find(word) != std::string::npos)
      return true;
  return false;
}

void redact_keys(json& value) {
  if (value.is_object()) {
    for (auto& [key, x] : value.items()) {
      if (secret_key(key))
        x = "[redacted]";
      else
        redact_keys(x);
    }
  } else if (value.is_array()) {
    for (auto& x : value)
      redact_keys(x);
  }
}

} // namespace

std::string
redacted_config(std::string_view payload_json,
                const std::function<std::string(std::string_view)>& redact) {
  auto payload = json::parse(payload_json, nullptr, false);
  if (payload.is_discarded() || !payload.is_object())
    return {};
  auto it = payload.find("config");
  if (it == payload.end() || !it->is_object())
    return {};
  json config = *it;
  redact_keys(config);
  auto text = config.dump(2, ' ', false, json::error_handler_t::replace);
  return redact ? redact(text) : text;
}

std::string duration_text(std::string_view created_at,
                          std::string_view finished_at) {
  auto from = detail::iso_ms(created_at);
  auto to = detail::iso_ms(finished_at);
  if (!from || !to || *to < *from)
    return "\u2013";
  auto s = (*to - *from) / 1000;
  if (s < 60)
    return std::to_string(s) + " s";
  if (s < 3600)
    return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
  return std::to_string(s / 3600) + " h " + std::to_string(s / 60 % 60)
         + " min";
}

namespace detail {

namespace {

// Days since 1970-01-01 of a civil date, and back (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::array<int64_t, 3> civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

/// The number of `len` digits at `s[at]`, or -1.
int digits(std::string_view s, size_t at, size_t len) {
  if (at + len > s.size())
    return -1;
  int v = 0;
  for (size_t i = at; i < at + len; ++i) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

} // namespace

std::optional<int64_t> iso_ms(std::string_view iso) {
  // YYYY-MM-DDTHH:MM:SS
  if (iso.size() < 19 || iso[4] != '-' || iso[7] != '-'
      || (iso[10] != 'T' && iso[10] != ' ') || iso[13] != ':' || iso[16] != ':')
    return std::nullopt;
  int y = digits(iso, 0, 4), mo = digits(iso, 5, 2), d = digits(iso, 8, 2);
  int h = digits(iso, 11, 2), mi = digits(iso, 14, 2), s = digits(iso, 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0
      || mi > 59 || s < 0 || s > 60)
    return std::nullopt;
  size_t i = 19;
  int64_t ms = 0;
  if (i < iso.size() && iso[i] == '.') {
    ++i;
    int64_t scale = 100;
    size_t start = i;
    while (i < iso.size() && iso[i] >= '0' && iso[i] <= '9') {
      ms += (iso[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == start)
      return std::nullopt;
  }
  auto rest = iso.substr(i);
  if (!rest.empty() && rest != "Z" && rest != "+00:00")
    return std::nullopt;
  auto days = days_from_civil(y, static_cast<unsigned>(mo),
                              static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + s * 1000 + ms;
}

namespace {

/// "YYYY-MM-DD", "HH:MM:SS" and the milliseconds of `ms`.
struct parts {
  std::string date;
  std::string clock;
  int millis = 0;
};

parts split(int64_t ms) {
  int64_t days = ms >= 0 ? ms / 86400000 : (ms - 86399999) / 86400000;
  int64_t rest = ms - days * 86400000;
  auto [y, m, d] = civil_from_days(days);
  char date[32];
  char clock[32];
  std::snprintf(date, sizeof(date), "%04lld-%02lld-%02lld",
                static_cast<long long>(y), static_cast<long long>(m),
                static_cast<long long>(d));
  std::snprintf(clock, sizeof(clock), "%02lld:%02lld:%02lld",
                static_cast<long long>(rest / 3600000),
                static_cast<long long>(rest / 60000 % 60),
                static_cast<long long>(rest / 1000 % 60));
  return {date, clock, static_cast<int>(rest % 1000)};
}

} // namespace

std::string iso_of_ms(int64_t ms) {
  auto p = split(ms);
  std::string out = p.date + "T" + p.clock;
  if (p.millis != 0) {
    char frac[8];
    std::snprintf(frac, sizeof(frac), ".%03d", p.millis);
    out += frac;
  }
  return out + "Z";
}

std::string time_html_ms(int64_t ms) {
  auto p = split(ms);
  return "<time datetime=\"" + iso_of_ms(ms) + "\">" + p.date + " " + p.clock
         + " UTC</time>";
}

std::string time_html(std::string_view iso) {
  if (iso.empty())
    return "\u2013";
  auto ms = iso_ms(iso);
  if (!ms)
    return escape(iso);
  return time_html_ms(*ms);
}

std::string clock_of_ms(int64_t ms) {
  return ms == 0 ? std::string{} : split(ms).clock;
}

} // namespace detail

} // namespace heaven::pages
