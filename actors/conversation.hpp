#pragma once
// The conversation actor: one per active (channel, contact). It orders that contact's messages,
// drops duplicates it has just seen, and hands each to the group-commit writer, answering only
// after the commit. It holds no state that is not in PostgreSQL, so passivation and crashes
// lose nothing; the next message activates it again.
#include <string>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "runtime/actor_slot.hpp"
#include "runtime/event_hub.hpp"
#include "runtime/metrics.hpp"

namespace parley {

struct conversation_deps {
  runtime::actor_slot* writer = nullptr;
  runtime::event_hub* events = nullptr; ///< live events (GET /v1/events); null = none
  caf::timespan idle_timeout = std::chrono::seconds(300);
  metrics::gauge* active = nullptr;       ///< parley_conversation_actors_active
  metrics::counter* passivated = nullptr; ///< parley_conversation_actors_passivated_total
};

/// `tenant_id` and `channel_id` must be UUIDs (they come from the database): std::invalid_argument
/// otherwise.
caf::actor spawn_conversation(caf::actor_system& sys, const conversation_deps& deps,
                              const std::string& tenant_id, const std::string& channel_id,
                              std::string wa_id);

} // namespace parley
