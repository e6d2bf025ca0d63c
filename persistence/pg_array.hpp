#pragma once
// Id arrays for batch statements (`WHERE id = ANY($n::uuid[])`): an index condition whatever plan
// PostgreSQL has cached, where a join to the batch alone may let a generic plan walk the table.
#include <string>
#include <type_traits>

namespace parley::persistence {

/// A PostgreSQL array literal of numbers or of strings that need no quoting (UUIDs, ids).
template <class Range>
std::string pg_array(const Range& items) {
  std::string out = "{";
  for (const auto& x : items) {
    if (out.size() > 1)
      out += ',';
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(x)>>)
      out += std::to_string(x);
    else
      out += x;
  }
  return out + "}";
}

} // namespace parley::persistence
