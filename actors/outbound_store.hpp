#pragma once
// SQL of the outbound path. Acceptance, dispatch marks and call outcomes are group-commit batch
// kinds (many channels share a transaction); loading a channel and its outbox are pool jobs.
// Every batch kind is idempotent: a row written again after a lost COMMIT changes nothing.
#include <map>
#include <optional>
#include <string>

#include "persistence/messages.hpp"

namespace parley::outbound_store {

/// write_op kinds.
inline constexpr const char* accept_kind = "outbound_accept";
inline constexpr const char* dispatch_kind = "outbound_dispatch";
inline constexpr const char* result_kind = "outbound_result";

std::map<std::string, persistence::batch_fn> batch_handlers();

/// What accept_kind expects per row:
/// {"tenant_id","channel_id","kind":"message"|"read","to","type","content","payload",
///  "client_message_id"|null,"ref_id"|null (a Parley message id),"ref_wamid"|null,
///  "needs_window":bool, "dispatch":bool (optional: the channel will call at once, so the outbox
///  row is written with its first call already marked and no dispatch_kind write follows)}.
/// Result per row: {"message_id","conversation_id","outbox_id","created_at","to","duplicate":false}
/// for new work, {"message_id","duplicate":true} when the client_message_id is known, or
/// {"reject":{"code":"not_found"|"outside_window"|"unprocessable"|"plan_limit_exceeded","message"}}
/// (plan_limit_exceeded: the tenant's messages_per_month is used up; accepted messages count).
/// For reactions and read receipts the referenced message's wamid is put into the payload.

/// dispatch_kind: {"outbox_id","attempt"} - written before each call (in-doubt detection).
/// result_kind: {"outbox_id","attempt","tenant_id","channel_id","message_id","kind","outcome",
///  "http_status","error_code","error_title","wamid","started_ms","latency_ms","final",
///  "failures","next_in_ms"}.

/// The channel as its actor needs it (secrets still sealed); not_found when it is not the tenant's.
persistence::db_job load_channel(std::string tenant_id, std::string channel_id);
/// Outbox rows of a channel with id > after_id, oldest first, at most `limit`:
/// [{"id","message_id","kind","to","payload","attempts","failures","dispatched_attempt","due_in_ms"}].
persistence::db_job load_outbox(std::string tenant_id, std::string channel_id, int64_t after_id,
                                int limit);
/// Persists the health state a channel actor observed.
persistence::db_job set_channel_state(std::string tenant_id, std::string channel_id,
                                      std::string state, std::string reason);
/// Ids of the channels of a tenant (the tenant activates their actors).
persistence::db_job channel_ids(std::string tenant_id);
/// Tenants that have channels (active ones), so a starting node re-drives every outbox and health
/// check.
persistence::db_job tenants_with_channels();
/// The only channel of a tenant; invalid_argument naming channel_id when it has several or none.
persistence::db_job sole_channel(std::string tenant_id);
/// Delivery attempts of one message of one tenant (404 when the message is not the tenant's).
persistence::db_job attempts(std::string tenant_id, std::string message_id);

} // namespace parley::outbound_store
