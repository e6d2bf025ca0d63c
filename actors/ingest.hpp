#pragma once
// The ingest actor: the step after a webhook is durable. The raw-event journal hands it every
// committed batch (persistence/journal.hpp); it queues the events (bounded), parses each, routes
// each message and status (phone_number_id -> tenant -> conversation), and the event is marked
// processed once every part is committed: in the statement that stores its part when it has one
// (nearly all of Meta's), else by a raw_event_done write. Failures leave the event unprocessed:
// it is retried with backoff, swept up periodically, and replayed at start-up, all idempotently.
#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "runtime/actor_slot.hpp"
#include "runtime/actor_tree.hpp"
#include "runtime/metrics.hpp"
#include "runtime/supervisor.hpp"

namespace parley {

struct ingest_deps {
  runtime::actor_slot* db = nullptr;
  runtime::actor_slot* writer = nullptr;
  runtime::actor_slot* tenants = nullptr;
  runtime::actor_tree* tree = nullptr;
  metrics::registry* metrics = nullptr;
  caf::timespan request_timeout = std::chrono::seconds(10);
  /// How often unprocessed events older than sweep_min_age are re-fed (0 = only at start-up).
  caf::timespan sweep_interval = std::chrono::seconds(30);
  int sweep_min_age_s = 30;
  int max_attempts = 5; ///< immediate retries of one event before leaving it to the sweep
  /// Processed raw events older than this many days are pruned at start-up and at each sweep
  /// (0 = never).
  int raw_event_retention_days = 0;
  /// Events processed at once; more wait in the queue (ingest.max_in_flight).
  size_t max_in_flight = 2048;
  /// Bytes of committed bodies the queue may hold; past them events stay in the database and a
  /// replay fetches them once the queue has room (ingest.max_queued_mb).
  size_t max_queued_bytes = size_t{64} << 20;
};

/// The ingest actor as a permanent child; its handle is published in `slot`. On every start it
/// replays the raw events left unprocessed.
runtime::child_spec ingest_spec(ingest_deps deps, runtime::actor_slot* slot);

} // namespace parley
