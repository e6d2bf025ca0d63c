#pragma once
// The tenant actor and the registry that activates tenants on demand. Protocols are listed in
// actors/interfaces.hpp.
#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "runtime/actor_slot.hpp"
#include "runtime/actor_tree.hpp"
#include "runtime/supervisor.hpp"

namespace parley {

struct conversation_deps;
struct channel_deps;

struct tenant_deps {
  const conversation_deps* conversations = nullptr; ///< for the conversation actors it activates
  const channel_deps* channels = nullptr;           ///< for its channel actors (WhatsApp sessions)
  runtime::actor_slot* db = nullptr; ///< db_pool, reached through its slot (survives restarts)
  runtime::actor_tree* tree = nullptr;
  caf::timespan db_timeout = std::chrono::seconds(5);
  size_t max_restarts = 5; ///< of one tenant actor within...
  caf::timespan restart_window = std::chrono::seconds(10);
  /// The registry sweeps rows of tenants deleted within sweep_horizon this often (and at start).
  caf::timespan sweep_interval = std::chrono::seconds(60);
  std::chrono::seconds sweep_horizon = std::chrono::hours(24);
};

/// A tenant actor for `tenant_id`: loads its row from PostgreSQL on every (re)start, holding
/// other messages until then; ends normally when the tenant does not exist.
caf::actor spawn_tenant(caf::actor_system& sys, tenant_deps deps, std::string tenant_id,
                        std::string parent_path);

/// The child spec under which the root supervisor runs the registry; the registry's current
/// handle is stored in `slot` on every (re)start.
runtime::child_spec tenant_registry_spec(tenant_deps deps, runtime::actor_slot* slot);

} // namespace parley
