#pragma once
// Gathers the live actor tree: the registry's metadata plus each actor's own answer to
// (status_atom), asked concurrently with a short timeout so a stuck actor shows up as
// "unresponsive" instead of stalling the operator's request.
#include <functional>

#include <nlohmann/json.hpp>

#include "actors/edge/context.hpp"

namespace parley::edge {

/// Calls `done` (on a CAF worker) with {"actors":[...],"count":n}.
void collect_actor_status(const context_ptr& ctx, std::function<void(nlohmann::json)> done);

} // namespace parley::edge
