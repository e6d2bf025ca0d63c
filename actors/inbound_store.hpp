#pragma once
// Group-commit batch handlers of the inbound path. Each turns a whole batch into a few set-based
// statements (PostgreSQL unpacks the batch from one JSON parameter), and each is idempotent: a
// row written again after a lost COMMIT or a replay changes nothing.
#include <map>
#include <string>

#include "domain/webhook.hpp"
#include "persistence/messages.hpp"

namespace parley::inbound_store {

/// write_op kinds.
/// A message row may say "known": true when its conversation actor has committed this contact's
/// rows with the same profile name before: the contact and conversation upserts skip it. Rows
/// carry "raw_event_id"; "completes_event": true marks that raw event processed in the same
/// statement (the message is the event's only part). Result: {"message_id", "conversation_id",
/// "duplicate", "event_marked"}.
inline constexpr const char* message_kind = "inbound_message";
/// A status report row, with "raw_event_id" and "completes_event" as message rows.
/// Result: {"stored": true, "event_marked"}.
inline constexpr const char* status_kind = "status_event";
/// {"id", "outcome", "error"}: marks a raw event processed (events of several parts, events that
/// store nothing, duplicates the conversation recognised without a write).
inline constexpr const char* raw_event_done_kind = "raw_event_done";

/// All of the above, for the writer's options.
std::map<std::string, persistence::batch_fn> batch_handlers();

/// Row builders (the JSON each kind expects).
/// A message_kind row for `msg` of contact `wa_id` (content and context are moved out of `msg`);
/// add "raw_event_id" (and "completes_event"). The message's original JSON is not stored again:
/// it is in its raw event's body (messages.raw_event_id), byte for byte.
nlohmann::json message_row(const std::string& tenant_id, const std::string& channel_id,
                           const std::string& wa_id, domain::inbound_message& msg, bool known);
nlohmann::json raw_event_done_row(int64_t id, std::string outcome, std::string error = {});

/// Unprocessed raw events with id > after and at least `min_age_s` old, oldest first, at most
/// `limit` ({"id","channel_id","body_b64"}), for replay.
persistence::db_job unprocessed_events(int64_t after, int limit, int min_age_s);
/// Deletes processed raw events received more than `days` days ago among the `limit` oldest
/// rows with an id above `after`; returns {"deleted": n, "last_id": the page's last id,
/// "more": true when the page was full and still old, so the next page (after last_id) may hold
/// more to delete}. Bounded work per call.
persistence::db_job prune_raw_events(int days, int limit, int64_t after = 0);

} // namespace parley::inbound_store
