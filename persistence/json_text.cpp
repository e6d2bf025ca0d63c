#include "persistence/json_text.hpp"

#include <charconv>

namespace parley::persistence {

namespace {

constexpr std::string_view replacement = "\xef\xbf\xbd"; // U+FFFD

/// Length of the valid UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, no surrogates,
/// nothing above U+10FFFF), or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto in = [&](size_t k, unsigned lo, unsigned hi) {
    return k < s.size() && byte(k) >= lo && byte(k) <= hi;
  };
  unsigned lead = byte(i);
  if (lead >= 0xC2 && lead <= 0xDF)
    return in(i + 1, 0x80, 0xBF) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned lo = lead == 0xE0 ? 0xA0 : 0x80;
    unsigned hi = lead == 0xED ? 0x9F : 0xBF;
    return in(i + 1, lo, hi) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned lo = lead == 0xF0 ? 0x90 : 0x80;
    unsigned hi = lead == 0xF4 ? 0x8F : 0xBF;
    return in(i + 1, lo, hi) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

bool plain(unsigned char c) {
  return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

template <class Int>
void append_integer(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec; // 24 characters hold every 64-bit integer
  out.append(buf, end);
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;
    while (run < s.size() && plain(static_cast<unsigned char>(s[run])))
      ++run;
    out.append(s.data() + i, run - i);
    if (run == s.size())
      break;
    i = run;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (auto n = utf8_sequence(s, i)) {
        out.append(s.data() + i, n);
        i += n;
      } else {
        out += replacement;
        ++i;
      }
      continue;
    }
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case 0:
      out += replacement;
      break;
    default: {
      constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
    }
    ++i;
  }
  out += '"';
}

void append_json(std::string& out, const nlohmann::json& v) {
  using t = nlohmann::json::value_t;
  switch (v.type()) {
  case t::null:
    out += "null";
    return;
  case t::boolean:
    out += v.get<bool>() ? "true" : "false";
    return;
  case t::number_integer:
    append_integer(out, v.get<int64_t>());
    return;
  case t::number_unsigned:
    append_integer(out, v.get<uint64_t>());
    return;
  case t::string:
    append_json_string(out, v.get_ref<const std::string&>());
    return;
  case t::array: {
    out += '[';
    bool first = true;
    for (const auto& e : v) {
      if (!first)
        out += ',';
      first = false;
      append_json(out, e);
    }
    out += ']';
    return;
  }
  case t::object: {
    out += '{';
    bool first = true;
    for (const auto& [key, e] : v.get_ref<const nlohmann::json::object_t&>()) {
      if (!first)
        out += ',';
      first = false;
      append_json_string(out, key);
      out += ':';
      append_json(out, e);
    }
    out += '}';
    return;
  }
  default: // floats (shortest round-trip form), binary, discarded: rare, nlohmann's way
    out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

} // namespace parley::persistence
