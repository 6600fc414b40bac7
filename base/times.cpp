#include "base/times.hpp"

#include <charconv>
#include <ctime>

namespace heaven {

std::optional<std::chrono::system_clock::time_point>
parse_time(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS, then optional .fraction, then Z or +hh:mm / -hh:mm.
  auto number = [&](size_t pos, size_t len, int& out) {
    if (pos + len > text.size())
      return false;
    auto first = text.data() + pos;
    auto [ptr, ec] = std::from_chars(first, first + len, out);
    return ec == std::errc{} && ptr == first + len;
  };
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || text[4] != '-' || text[7] != '-'
      || (text[10] != 'T' && text[10] != 't' && text[10] != ' ')
      || text[13] != ':' || text[16] != ':' || !number(0, 4, year)
      || !number(5, 2, month) || !number(8, 2, day) || !number(11, 2, hour)
      || !number(14, 2, minute) || !number(17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59
      || second > 60)
    return std::nullopt;
  size_t pos = 19;
  int millis = 0; // The fraction's first three digits; the rest is dropped.
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    for (int scale = 100;
         pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos) {
      millis += (text[pos] - '0') * scale;
      scale /= 10;
    }
  }
  int offset_minutes = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh, om;
    if (pos + 6 != text.size() || text[pos + 3] != ':'
        || !number(pos + 1, 2, oh) || !number(pos + 4, 2, om))
      return std::nullopt;
    offset_minutes = (text[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size())
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  auto utc = timegm(&tm);
  return std::chrono::system_clock::from_time_t(utc)
         + std::chrono::milliseconds(millis)
         - std::chrono::minutes(offset_minutes);
}

} // namespace heaven
