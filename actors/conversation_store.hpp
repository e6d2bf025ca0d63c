#pragma once
// SQL behind the tenant API's conversation and message reads. Every query is scoped by the
// tenant id (and runs with the tenant's RLS setting), so another tenant's ids simply are not
// found.
#include <optional>
#include <string>

#include "persistence/messages.hpp"

namespace parley::conversation_store {

struct list_filter {
  std::optional<std::string> status; ///< open | resolved
  std::optional<std::string> channel_id;
  bool descending = true; ///< newest first by default (an inbox)
  int limit_plus_one = 51;
  std::optional<std::string> after_time, after_id;
};

persistence::db_job list(std::string tenant_id, list_filter f);
persistence::db_job get(std::string tenant_id, std::string conversation_id);
/// Patch {"status"?,"mode"?,"assignee"?} (validated by the caller); returns the conversation.
persistence::db_job update(std::string tenant_id, std::string conversation_id,
                           nlohmann::json patch);
/// Messages of a conversation, keyset-paged by (created_at, id).
persistence::db_job messages(std::string tenant_id, std::string conversation_id, bool descending,
                             int limit_plus_one, std::optional<std::string> after_time,
                             std::optional<std::string> after_id);
persistence::db_job message(std::string tenant_id, std::string message_id);

} // namespace parley::conversation_store
