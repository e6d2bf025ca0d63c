#pragma once
// JSON text to nlohmann::json without nlohmann's own parser. Its lexer reads a character at a
// time and was most of the ~15 % of the server's CPU that parsing a webhook cost; simdjson
// (Debian libsimdjson-dev) scans the text with SIMD instructions and only the tree is built the
// nlohmann way. The result equals what nlohmann::json::parse gives for the same text (numbers
// keep nlohmann's kinds: unsigned for non-negative integers, except that "-0" is the unsigned 0
// here and the signed one there - equal, and written alike; the last of duplicate keys wins).
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace parley::domain {

/// The document of `text`, or nullopt when simdjson refuses it: invalid JSON, nesting deeper than
/// `max_depth` brackets (so a document returned needs no separate depth check; simdjson counts the
/// values of the innermost container as a level, so it may refuse at the limit too), and what
/// simdjson does not represent (integers beyond 64 bits, a byte-order mark). Callers fall back to
/// their depth check and nlohmann::json::parse, so behaviour at those edges stays nlohmann's. Uses
/// a parser per thread (its buffers are reused between calls).
std::optional<nlohmann::json> parse_json_fast(std::string_view text, size_t max_depth);

/// Why parse_json_bounded() refused a text.
struct json_refusal {
  bool too_deep = false; ///< nests deeper than the limit; otherwise not valid JSON
  std::string detail;    ///< invalid JSON: where or what, for the client ("error at byte 12")
};

/// JSON that arrives from outside, within `max_depth` levels of nesting (nlohmann's copies and
/// dumps recurse). The fast scan first; what it refuses gets the depth scan and nlohmann's
/// verdict, which also decides the edges simdjson does not represent. Never throws a JSON error:
/// a number no double holds (1e400) is invalid JSON here, as it is for simdjson.
std::variant<nlohmann::json, json_refusal> parse_json_bounded(std::string_view text,
                                                              size_t max_depth);

} // namespace parley::domain
