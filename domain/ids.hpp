#pragma once
// Shapes of identifiers Parley hands out.
#include <cctype>
#include <string_view>

namespace parley::domain {

/// True for a canonical UUID (8-4-4-4-12 hex digits, either case). Ids that are not UUIDs cannot
/// name a Parley object, so callers answer "not found" without asking the database.
constexpr bool is_uuid(std::string_view s) {
  if (s.size() != 36)
    return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex)
      return false;
  }
  return true;
}

} // namespace parley::domain
