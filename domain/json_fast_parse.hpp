#pragma once
// JSON text to nlohmann::json without nlohmann's own parser. Its lexer reads a character at a
// time and was most of the ~15 % of the server's CPU that parsing a webhook cost; simdjson
// (Debian libsimdjson-dev) scans the text with SIMD instructions and only the tree is built the
// nlohmann way. The result equals what nlohmann::json::parse gives for the same text (numbers
// keep nlohmann's kinds: unsigned for non-negative integers, except that "-0" is the unsigned 0
// here and the signed one there - equal, and written alike; the last of duplicate keys wins).
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace parley::domain {

/// The document of `text`, or nullopt when simdjson refuses it (invalid JSON, but also what
/// simdjson does not represent: integers beyond 64 bits, a byte-order mark, nesting deeper than
/// 1024). Callers fall back to nlohmann::json::parse, so behaviour at those edges stays
/// nlohmann's. Uses a parser per thread (its buffers are reused between calls).
std::optional<nlohmann::json> parse_json_fast(std::string_view text);

} // namespace parley::domain
