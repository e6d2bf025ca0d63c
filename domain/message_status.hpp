#pragma once
// The life cycle of a message as Parley stores it, and the one rule that orders status changes.
// Meta delivers status webhooks out of order and more than once, so every writer asks
// status_advances() before overwriting what it has.
#include <cstdint>
#include <optional>
#include <string_view>

namespace parley::domain {

/// Where a message is. Outbound messages walk pending -> sent -> delivered -> read -> played
/// (played: a voice message was listened to) or end in failed; inbound messages are received and
/// may later be deleted by the customer.
enum class message_status : uint8_t {
  pending,   ///< outbound, accepted by Parley, not yet accepted by Meta (outbox)
  sent,      ///< Meta accepted it
  delivered, ///< reached the customer's device
  read,      ///< the customer opened it
  played,    ///< the customer played a voice message
  failed,    ///< terminal: Meta gave up (error code and title kept)
  received,  ///< an inbound message we stored
  deleted,   ///< terminal: Meta reported a deletion
};

/// Parses the names to_string() produces (Meta's status strings are a subset). Exact, lowercase
/// matching: anything else is nullopt.
std::optional<message_status> parse_message_status(std::string_view s);

/// The stored and API name: "pending", "sent", ... (never empty).
std::string_view to_string(message_status s);

/// True for statuses nothing may replace (failed, deleted).
constexpr bool is_terminal(message_status s) {
  return s == message_status::failed || s == message_status::deleted;
}

/// Statuses only move forward: pending < sent < delivered < read < played; failed and deleted are
/// terminal (nothing replaces them, they replace any non-terminal status); received leads only
/// to a terminal status, and no outbound status replaces it or is replaced by it. Duplicates are
/// not advances.
bool status_advances(message_status from, message_status to);

} // namespace parley::domain
