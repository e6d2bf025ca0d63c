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
inline constexpr const char* raw_event_kind = "raw_webhook_event";
/// A message row may say "known": true when its conversation actor has committed this contact's
/// rows with the same profile name before: the contact and conversation upserts skip it.
inline constexpr const char* message_kind = "inbound_message";
/// A message row plus "event": raw_event_row(...) of the webhook that carried it alone: both are
/// stored in one transaction, the raw event already processed. Result adds "raw_event_id".
inline constexpr const char* message_event_kind = "inbound_message_event";
inline constexpr const char* status_kind = "status_event";
/// A status row plus "event": raw_event_row(...) of the webhook that carried it alone (as
/// message_event_kind). Result adds "raw_event_id".
inline constexpr const char* status_event_kind = "inbound_status_event";
inline constexpr const char* raw_event_done_kind = "raw_event_done";

/// All of the above, for the writer's options.
std::map<std::string, persistence::batch_fn> batch_handlers();

/// Row builders (the JSON each kind expects).
/// A message_kind row for `msg` of contact `wa_id` (content and context are moved out of `msg`);
/// add "raw_event_id", or "event" for message_event_kind. The message's original JSON is not
/// stored again: it is in its raw event's body (messages.raw_event_id), byte for byte.
nlohmann::json message_row(const std::string& tenant_id, const std::string& channel_id,
                           const std::string& wa_id, domain::inbound_message& msg, bool known);
nlohmann::json raw_event_row(const std::string& body, const std::string& channel_id,
                             const std::string& request_id);
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
