#pragma once
// The settings Row Level Security keys on (migration 0006). Every transaction the node runs has
// exactly one of them; a transaction with neither sees no tenant rows at all.
namespace parley::persistence {

/// For the node's cross-tenant work: webhook ingest, group-commit batches mixing tenants,
/// routing look-ups, API-key resolution, platform administration.
inline constexpr const char* set_platform_scope =
    "SELECT set_config('parley.scope', 'platform', true)";

/// The same for a whole session: the group-commit writers' connections, which only ever do
/// platform work, set it once when they connect instead of once per batch (a round trip on the
/// writer's critical path).
inline constexpr const char* set_session_platform_scope = "SET parley.scope = 'platform'";

/// For a job acting for one tenant ($1 = its id).
inline constexpr const char* set_tenant_scope = "SELECT set_config('parley.tenant_id', $1, true)";

} // namespace parley::persistence
