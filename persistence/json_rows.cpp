#include "persistence/json_rows.hpp"

#include "persistence/json_text.hpp"

namespace parley::persistence {

std::string json_rows(const std::vector<nlohmann::json>& rows) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i)
      out += ',';
    append_json(out, rows[i]);
  }
  out += ']';
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
      append_json(out, *it);
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
  return out;
}

} // namespace parley::persistence
