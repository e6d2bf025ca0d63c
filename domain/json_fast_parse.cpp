#include "domain/json_fast_parse.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

#include <simdjson.h>

#include "domain/json_depth.hpp"

namespace parley::domain {

namespace {

using nlohmann::json;

// Recursion is bounded by the parser's depth limit.
json to_nlohmann(simdjson::dom::element e) {
  switch (e.type()) {
  case simdjson::dom::element_type::OBJECT: {
    json out = json::object();
    auto& members = out.get_ref<json::object_t&>();
    for (auto field : simdjson::dom::object(e))
      members.insert_or_assign(std::string(field.key), to_nlohmann(field.value)); // last one wins
    return out;
  }
  case simdjson::dom::element_type::ARRAY: {
    json out = json::array();
    auto array = simdjson::dom::array(e);
    out.get_ref<json::array_t&>().reserve(array.size());
    for (auto item : array)
      out.push_back(to_nlohmann(item));
    return out;
  }
  case simdjson::dom::element_type::STRING:
    return json(std::string(std::string_view(e)));
  case simdjson::dom::element_type::INT64: {
    int64_t v = int64_t(e);
    // nlohmann gives every non-negative integer the unsigned kind.
    if (v >= 0)
      return json(static_cast<uint64_t>(v));
    return json(v);
  }
  case simdjson::dom::element_type::UINT64:
    return json(uint64_t(e));
  case simdjson::dom::element_type::DOUBLE:
    return json(double(e));
  case simdjson::dom::element_type::BOOL:
    return json(bool(e));
  case simdjson::dom::element_type::NULL_VALUE:
    return json(nullptr);
  }
  return json(nullptr); // unreachable: every element type is handled above
}

} // namespace

std::optional<nlohmann::json> parse_json_fast(std::string_view text, size_t max_depth) {
  thread_local simdjson::dom::parser parser;
  thread_local size_t parser_depth = 0;
  if (parser_depth != max_depth) {
    // Growing the buffers for a longer text later keeps this depth limit.
    if (parser.allocate(std::max<size_t>(text.size(), 4096), max_depth) != simdjson::SUCCESS)
      return std::nullopt;
    parser_depth = max_depth;
  }
  simdjson::dom::element root;
  // realloc_if_needed: simdjson reads up to 64 bytes past the end, so the text is copied into the
  // parser's padded buffer (the body's own buffer carries no such padding).
  if (parser.parse(text.data(), text.size(), true).get(root) != simdjson::SUCCESS)
    return std::nullopt;
  return to_nlohmann(root);
}

std::variant<nlohmann::json, json_refusal> parse_json_bounded(std::string_view text,
                                                              size_t max_depth) {
  if (auto fast = parse_json_fast(text, max_depth))
    return std::move(*fast);
  // simdjson refuses at the limit itself too (see parse_json_fast): measure before deciding.
  if (json_text_nests_deeper_than(text, max_depth))
    return json_refusal{true, {}};
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    return json_refusal{false, "error at byte " + std::to_string(e.byte)};
  } catch (const json::exception& e) {
    // Not a syntax error (nlohmann's out_of_range: a number overflow): its words without the
    // "[json.exception...] " prefix.
    std::string what = e.what();
    auto end = what.find("] ");
    return json_refusal{false, end == std::string::npos ? what : what.substr(end + 2)};
  }
}

} // namespace parley::domain
