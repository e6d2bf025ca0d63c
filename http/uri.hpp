#pragma once
// Request-target parsing: pure functions over untrusted input, fuzzed by
// tests/http/fuzz_router_query.cpp. Malformed input yields std::nullopt, never an exception.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace parley::http {

/// An origin-form target ("/path?query") split at the first '?'; a '#' fragment is dropped.
struct target_parts {
  std::string_view path;  ///< still percent-encoded
  std::string_view query; ///< without the '?'; empty when absent
};

/// Splits a request target. Does not validate; see `percent_decode` and `parse_query`.
target_parts split_target(std::string_view target);

/// Decodes %XX escapes (either case). With `plus_as_space` (query strings, form encoding) '+'
/// becomes ' '. Returns std::nullopt for a truncated or non-hex escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space = false);

/// Parses "a=1&b=x%20y&flag": keys and values percent-decoded with '+' as space, a key without
/// '=' gets "", empty pieces are skipped and a repeated key keeps its last value.
/// Returns std::nullopt if any key or value has a malformed escape.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

} // namespace parley::http
