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
//   (reload_atom) -> bool                                  re-reads its row (after out-of-band changes)
//   (status_atom) -> nlohmann::json                        state, mailbox, idle time (actor tree)
#include <utility>

#include <caf/atom.hpp>

#include "runtime/atoms.hpp"

namespace parley {

using tenant_atom = caf::atom_constant<caf::atom("tenant")>;
using evict_atom = caf::atom_constant<caf::atom("evict")>;
using update_atom = caf::atom_constant<caf::atom("update")>;

} // namespace parley
