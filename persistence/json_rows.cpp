#include "persistence/json_rows.hpp"

#include <string_view>

namespace parley::persistence {

namespace {

void replace_escaped_nul(std::string& json) {
  constexpr std::string_view nul = "\\u0000";
  size_t pos = 0;
  while ((pos = json.find(nul, pos)) != std::string::npos) {
    // "\\u0000" (an escaped backslash followed by text) is not a NUL.
    size_t backslashes = 0;
    for (size_t i = pos; i > 0 && json[i - 1] == '\\'; --i)
      ++backslashes;
    if (backslashes % 2 == 0)
      json.replace(pos, nul.size(), "\\ufffd");
    pos += nul.size();
  }
}

} // namespace

std::string json_rows(const std::vector<nlohmann::json>& rows) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    out += rows[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  out += ']';
  if (out.find("\\u0000") != std::string::npos)
    replace_escaped_nul(out);
  return out;
}

std::string json_rows(const std::vector<nlohmann::json>& rows,
                      std::initializer_list<std::string_view> keys,
                      const std::function<std::string(size_t)>& extra) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    out += '{';
    bool first = true;
    for (auto k : keys) {
      auto it = rows[i].find(k);
      if (it == rows[i].end())
        continue;
      if (!first)
        out += ',';
      first = false;
      out += '"';
      out += k;
      out += "\":";
      out += it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    if (extra) {
      auto more = extra(i);
      if (!more.empty()) {
        if (!first)
          out += ',';
        out += more;
      }
    }
    out += '}';
  }
  out += ']';
  if (out.find("\\u0000") != std::string::npos)
    replace_escaped_nul(out);
  return out;
}

} // namespace parley::persistence
