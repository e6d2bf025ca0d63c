#pragma once
// Batch statements receive their rows as ONE JSON array parameter that PostgreSQL unpacks with
// jsonb_to_recordset: one round trip and one parse per statement, whatever the batch size.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace parley::persistence {

/// `rows` as a JSON array text fit for a jsonb parameter. PostgreSQL's text and jsonb cannot hold
/// U+0000 (Meta can send it): each escaped NUL becomes U+FFFD, so the row is stored instead of
/// failing forever (raw webhook bytes keep the original). Invalid UTF-8 is replaced likewise.
std::string json_rows(const std::vector<nlohmann::json>& rows);

} // namespace parley::persistence
