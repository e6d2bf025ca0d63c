#pragma once
// What route handlers need from the node: stable handles of the long-lived actors, the
// configuration and the node's observability objects. Built once by the bootstrap and shared
// read-only between I/O threads.
#include <atomic>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "config/config.hpp"
#include "domain/crypto.hpp"
#include "runtime/actor_slot.hpp"
#include "runtime/actor_tree.hpp"
#include "runtime/event_hub.hpp"
#include "runtime/metrics.hpp"
#include "runtime/relay_pool.hpp"

namespace parley {
class rate_limiter;
} // namespace parley

namespace parley::edge {

struct context {
  caf::actor_system* sys = nullptr;
  runtime::relay_pool* relays = nullptr; ///< makes the requests of I/O threads (runtime::ask)
  const config::parley_config* cfg = nullptr;
  runtime::actor_slot* db = nullptr;      ///< persistence: db_pool
  runtime::actor_slot* writer = nullptr;  ///< persistence: group-commit writer
  runtime::actor_slot* tenants = nullptr; ///< tenant_registry
  runtime::actor_slot* ingest = nullptr;  ///< ingest (raw webhook events -> conversations)
  runtime::actor_slot* journal = nullptr; ///< raw-event journal (a webhook durable before its 200)
  runtime::actor_tree* tree = nullptr;
  metrics::registry* metrics = nullptr;
  const crypto::secret_box* secrets = nullptr;
  std::string jwt_secret;          ///< HS256 key of access tokens (never logged)
  rate_limiter* limiter = nullptr; ///< API and failed-authentication rate limits (null = off)
  class api_key_cache* key_cache = nullptr; ///< resolved API keys, seconds-fresh (null = off)
  std::atomic<bool>* draining = nullptr;    ///< set on SIGTERM: /health/ready turns 503
  runtime::event_hub* events = nullptr;     ///< live events of tenants (GET /v1/events)
  caf::timespan db_timeout = std::chrono::seconds(5);
  caf::timespan actor_timeout = std::chrono::seconds(5);
};

using context_ptr = std::shared_ptr<const context>;

} // namespace parley::edge
