#pragma once
// Nesting limits for JSON from outside. nlohmann's copies, comparisons and dumps recurse, so a
// body of a million '[' would overflow the stack long after parsing succeeded: every JSON that
// arrives over the network is measured first, without recursion.
#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

namespace parley::domain {

/// Bracket depth of a JSON text exceeds `limit` (brackets inside strings ignored). A linear byte
/// scan, meant to run before parsing.
bool json_text_nests_deeper_than(std::string_view text, size_t limit);

/// The same for a parsed document (iterative).
bool json_tree_nests_deeper_than(const nlohmann::json& root, size_t limit);

} // namespace parley::domain
