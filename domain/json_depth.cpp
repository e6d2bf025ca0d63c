#include "domain/json_depth.hpp"

#include <utility>
#include <vector>

namespace parley::domain {

// Bracket depth of a JSON text, ignoring brackets inside strings. A linear byte scan run before
// parsing, so hostile nesting is refused before any recursive work happens on it.
bool json_text_nests_deeper_than(std::string_view text, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (ch == '\\')
        escaped = true;
      else if (ch == '"')
        in_string = false;
      continue;
    }
    switch (ch) {
    case '"':
      in_string = true;
      break;
    case '[':
    case '{':
      if (++depth > limit)
        return true;
      break;
    case ']':
    case '}':
      if (depth > 0)
        --depth;
      break;
    default:
      break;
    }
  }
  return false;
}

// The same limit for a document someone else parsed; iterative, so the check itself is safe.
bool json_tree_nests_deeper_than(const nlohmann::json& root, size_t limit) {
  std::vector<std::pair<const nlohmann::json*, size_t>> stack;
  stack.emplace_back(&root, 1);
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    if (!node->is_structured())
      continue;
    if (depth > limit)
      return true;
    for (const auto& child : *node)
      if (child.is_structured())
        stack.emplace_back(&child, depth + 1);
  }
  return false;
}

} // namespace parley::domain
