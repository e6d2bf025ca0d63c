#pragma once
// The customer-service window: free-form messages may be sent only within 24 hours of the
// customer's last inbound message; templates are always allowed. Times are Unix seconds.
#include <cstdint>
#include <limits>

namespace parley::domain {

/// Length of the window Meta grants after each inbound message.
constexpr int64_t customer_service_window_s = 24 * 3600;

/// When the window opened by an inbound message at `last_inbound_unix` closes (exclusive).
/// Saturates instead of overflowing for absurd inputs.
constexpr int64_t window_expires_at(int64_t last_inbound_unix) {
  if (last_inbound_unix > std::numeric_limits<int64_t>::max() - customer_service_window_s)
    return std::numeric_limits<int64_t>::max();
  return last_inbound_unix + customer_service_window_s;
}

/// Whether a free-form message may be sent at `now_unix`. A last inbound time <= 0 means the
/// customer never wrote (or the time is unknown), which never opens a window. An inbound time
/// slightly in the future (clock skew between Meta and us) counts as open.
constexpr bool within_window(int64_t now_unix, int64_t last_inbound_unix) {
  return last_inbound_unix > 0 && now_unix < window_expires_at(last_inbound_unix);
}

} // namespace parley::domain
