#pragma once
// Every product actor's protocol in one place. Parley uses dynamically typed handles with the
// message shapes documented here (CAF 0.17's typed_actor signatures cost compile time we spend
// elsewhere on a 2-core budget); handlers are matched by these exact argument lists.
//
// tenant_registry (one per node):
//   (tenant_atom, std::string tenant_id) -> caf::actor     the tenant's actor, spawned on first use
//   (evict_atom, std::string tenant_id) -> bool            stops it (tenant deleted)
//   (status_atom) -> nlohmann::json
// tenant (one per active tenant; state rebuilt from PostgreSQL on every (re)start):
//   (get_atom) -> nlohmann::json                           the tenant object as the API shows it
//   (update_atom, nlohmann::json patch) -> nlohmann::json  validated patch {"name"?,"status"?}
//   (reload_atom) -> bool                                  re-reads its row (after out-of-band
//   changes) (status_atom) -> nlohmann::json                        state, mailbox, idle time
//   (actor tree)
//   (inbound_atom, std::string channel_id, domain::inbound_message, int64_t raw_event_id,
//    bool completes_event)
//       -> nlohmann::json {"message_id","conversation_id","duplicate","event_marked"}   routed to
//          the conversation; completes_event: the message is its raw event's only part, and the
//          statement storing it marks the event processed ("event_marked": true when it did)
//   (status_event_atom, std::string channel_id, domain::status_event, int64_t raw_event_id,
//    bool completes_event) -> nlohmann::json {"stored","event_marked"}
//                                                          routed to the recipient's conversation
//   (send_atom, std::string channel_id, domain::outbound_request) -> nlohmann::json
//       {"status":202|200,"body":message}                  routed to the channel actor
//   (channel_atom, std::string channel_id) -> caf::actor   the channel's actor (activated)
//   (reload_atom, std::string channel_id) -> bool          the channel's row changed (PATCH)
// channel (one per WhatsApp number of an active tenant, supervised by the tenant's "channels"
// supervisor; all of a tenant's channels are activated with the tenant):
//   (send_atom, domain::outbound_request) -> nlohmann::json {"status","body"}   after COMMIT
//   (reload_atom) -> bool                                  re-reads credentials, URL, throughput
//   (status_atom) -> nlohmann::json
//   internal: pump, probe, requeue, rerecord, load, tick, graph/probe replies (see channel.cpp)
// conversation (one per active (channel, contact); virtual: activated by the tenant on the first
// message, passivated after runtime.conversation_idle_timeout_s, state rebuilt from each commit):
//   (inbound_atom, domain::inbound_message, int64_t raw_event_id, bool completes_event)
//       -> nlohmann::json (after COMMIT)
//   (status_event_atom, domain::status_event, int64_t raw_event_id, bool completes_event)
//       -> nlohmann::json (after COMMIT)
//   (status_atom) -> nlohmann::json
// ingest (one per node): turns durable raw webhook events into messages and statuses
//   (persistence::journaled_atom, persistence::journaled_events) -> void   from the journal,
//       after each COMMIT (persistence/journal.hpp)
//   (replay_atom) -> void                                  re-feeds unprocessed raw events
//   (reload_atom) -> void                                  forget cached routes (channels changed)
//   (status_atom) -> nlohmann::json
#include <utility>

#include <caf/atom.hpp>

#include "domain/outbound_request.hpp"
#include "domain/webhook.hpp"
#include "runtime/atoms.hpp"

namespace parley {

using tenant_atom = caf::atom_constant<caf::atom("tenant")>;
using evict_atom = caf::atom_constant<caf::atom("evict")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using inbound_atom = caf::atom_constant<caf::atom("inbound")>;
using status_event_atom = caf::atom_constant<caf::atom("statusevt")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using channel_atom = caf::atom_constant<caf::atom("channel")>;

} // namespace parley

// Parsed webhook parts travel only between actors of the node that parsed them.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::domain::inbound_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::domain::status_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::domain::outbound_request)
