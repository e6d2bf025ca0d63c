#pragma once
// JSON text to nlohmann::json without nlohmann's own parser. Its lexer reads a character at a
// time and was most of the ~15 % of the server's CPU that parsing a webhook cost; simdjson
// (Debian libsimdjson-dev) scans the text with SIMD instructions and only the tree is built the
// nlohmann way. The result equals what nlohmann::json::parse gives for the same text (numbers
// keep nlohmann's kinds: unsigned for non-negative integers, except that "-0" is the unsigned 0
// here and the signed one there - equal, and written alike; the last of duplicate keys wins).
#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace parley::domain {

/// The document of `text`, or nullopt when simdjson refuses it: invalid JSON, nesting deeper than
/// `max_depth` brackets (so a document returned needs no separate depth check; simdjson counts the
/// values of the innermost container as a level, so it may refuse at the limit too), and what
/// simdjson does not represent (integers beyond 64 bits, a byte-order mark). Callers fall back to
/// their depth check and nlohmann::json::parse, so behaviour at those edges stays nlohmann's. Uses
/// a parser per thread (its buffers are reused between calls).
std::optional<nlohmann::json> parse_json_fast(std::string_view text, size_t max_depth);

} // namespace parley::domain
