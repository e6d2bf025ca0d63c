#pragma once
// The channel actor: one per WhatsApp number, i.e. the WhatsApp session. It accepts outbound
// messages into the outbox (durable before anyone is told "accepted") and drains that outbox to
// Meta's Graph API under the number's token bucket and the per-recipient pair limit, retrying
// with backoff, recording every call, and tracking the session's health (state machine plus
// circuit breaker). It holds nothing that is not in PostgreSQL: after a crash or a node restart
// it reloads the outbox and re-drives it.
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "config/config.hpp"
#include "domain/crypto.hpp"
#include "runtime/actor_slot.hpp"
#include "runtime/actor_tree.hpp"
#include "runtime/event_hub.hpp"
#include "runtime/metrics.hpp"

namespace parley::http {
class client;
}

namespace parley {

/// Metric series of the outbound path, created once at start-up.
struct outbound_metrics {
  explicit outbound_metrics(metrics::registry& r);
  metrics::registry* registry;
  metrics::counter* sent;          ///< parley_outbound_messages_total{outcome="sent"}
  metrics::counter* attempts_sent; ///< parley_outbound_attempts_total{outcome=...}
  metrics::counter* attempts_retry;
  metrics::counter* attempts_failed;
  metrics::counter* attempts_token_invalid;
  metrics::counter* retries;         ///< parley_outbound_retries_total
  metrics::gauge* outbox_depth;      ///< parley_outbound_outbox_depth
  metrics::counter* token_waits;     ///< parley_outbound_token_waits_total
  metrics::counter* pair_waits;      ///< parley_outbound_pair_waits_total
  metrics::histogram* graph_seconds; ///< parley_graph_request_seconds
  metrics::counter* in_doubt;        ///< parley_outbound_in_doubt_total
  metrics::gauge* states[4];         ///< parley_channels{state=...}, by domain::channel_state
  /// parley_outbound_messages_total{outcome="failed",code=...}
  metrics::counter& failed(int code) const;
  /// parley_outbound_channel_outbox_depth{channel_id=...}
  metrics::gauge& channel_depth(const std::string& channel_id) const;
};

struct channel_deps {
  runtime::actor_slot* writer = nullptr; ///< group-commit writer (accept, dispatch, result)
  runtime::actor_slot* db = nullptr;     ///< pool (channel row, outbox pages, state)
  http::client* graph = nullptr;         ///< the node's HTTPS client
  const crypto::secret_box* secrets = nullptr;
  const config::parley_config* cfg = nullptr;
  caf::timespan db_timeout = std::chrono::seconds(5);
  runtime::actor_tree* tree = nullptr;
  outbound_metrics* m = nullptr;
  runtime::event_hub* events = nullptr; ///< live events (GET /v1/events); null = none
};

/// Spawns the actor of `channel_id` (of `tenant_id`). It loads its row and outbox first, holding
/// other messages; it ends normally when the channel does not exist (or is not the tenant's),
/// answering what waits with not_found.
caf::actor spawn_channel(caf::actor_system& sys, const channel_deps* deps, std::string tenant_id,
                         std::string channel_id, std::string parent_path);

} // namespace parley
