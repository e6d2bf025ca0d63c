#pragma once
// Batch statements receive their rows as ONE JSON array parameter that PostgreSQL unpacks with
// jsonb_to_recordset: one round trip and one parse per statement, whatever the batch size.
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace parley::persistence {

/// `rows` as a JSON array text fit for a jsonb parameter. PostgreSQL's text and jsonb cannot hold
/// U+0000 (Meta can send it): each escaped NUL becomes U+FFFD, so the row is stored instead of
/// failing forever (raw webhook bytes keep the original). Invalid UTF-8 is replaced likewise.
std::string json_rows(const std::vector<nlohmann::json>& rows);

/// The same with each row (an object) reduced to `keys` (keys a row lacks are left out) and
/// extended by `extra(i)`, JSON member text such as "\"id\":5" (empty: nothing), written straight
/// from the rows: a statement that reads a few columns of wide rows neither copies nor dumps
/// the rest. Keys are plain identifiers (not escaped).
std::string json_rows(const std::vector<nlohmann::json>& rows,
                      std::initializer_list<std::string_view> keys,
                      const std::function<std::string(size_t)>& extra = {});

} // namespace parley::persistence
