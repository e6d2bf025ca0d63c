#pragma once
// JSON text for PostgreSQL parameters, written much faster than nlohmann's dump: the inbound
// batch statements carry every message's text two or three times (content, Meta's raw object),
// and nlohmann's serializer decodes every byte as UTF-8 (its dump_escaped was the largest single
// item of parley's CPU profile under webhook load). Runs of plain ASCII are copied as they are.
#include <string>

#include <nlohmann/json.hpp>

namespace parley::persistence {

/// Appends `value` as compact JSON text (members in nlohmann's order, i.e. sorted), equal to
/// value.dump() for valid UTF-8 without U+0000. PostgreSQL's text and jsonb cannot hold U+0000
/// (Meta can send it): it becomes U+FFFD, and so does every byte of invalid UTF-8, so a row is
/// stored instead of failing forever (raw webhook bytes keep the original).
void append_json(std::string& out, const nlohmann::json& value);

/// append_json for one string value (with its quotes).
void append_json_string(std::string& out, std::string_view text);

} // namespace parley::persistence
