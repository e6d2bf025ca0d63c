#pragma once
// The ingest actor: the step after a webhook is durable. It parses the raw event, routes each
// message and status (phone_number_id -> tenant -> conversation), and marks the raw event
// processed once every part is committed. Failures leave the event unprocessed: it is retried
// with backoff, swept up periodically, and replayed at start-up, all idempotently.
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
};

/// The ingest actor as a permanent child; its handle is published in `slot`. On every start it
/// replays the raw events left unprocessed.
runtime::child_spec ingest_spec(ingest_deps deps, runtime::actor_slot* slot);

} // namespace parley
