#pragma once
// SQL for tenants, as database jobs for the pool. Shared by the tenant actor (its own row) and the
// admin routes (create, list, delete). PostgreSQL renders the API's JSON itself.
#include <chrono>
#include <optional>
#include <string>

#include "persistence/messages.hpp"

namespace parley::tenant_store {

/// The tenant as the API shows it, with plan, effective limits, overrides and usage;
/// app_error(not_found) when absent. Runs in the tenant's own scope.
persistence::db_job load(std::string tenant_id);
/// Inserts; app_error(conflict) when the slug is taken, invalid_argument for an unknown plan.
/// `limits` are validated overrides (see plan_limits::validate_overrides).
persistence::db_job create(std::string name, std::string slug, std::optional<std::string> plan = {},
                           std::optional<nlohmann::json> limits = {});
/// Keyset page ordered by (created_at, id); rows carry "_cursor_time".
persistence::db_job list(int limit_plus_one, std::optional<std::string> after_time,
                         std::optional<std::string> after_id);
/// Applies a validated patch {"name"?, "status"?, "plan"?, "limits"?} (limits merge into the
/// overrides key by key; a null value means unlimited); returns the updated tenant.
persistence::db_job update(std::string tenant_id, nlohmann::json patch);
/// Deletes the tenant and, by cascade, its keys and channels; not_found when absent. Records it in
/// deleted_tenants, so sweep_deleted() removes rows that land after the delete.
persistence::db_job remove(std::string tenant_id);

/// Deletes again the hot-table rows (messages, conversations, contacts, outbox, attempts, status
/// reports) of tenants deleted within `horizon`: writes in flight when a tenant was deleted can
/// land after it, and those tables have no foreign keys. Returns {"tenants": n, "rows": n}
/// (rows = what this pass found and removed; 0 in the normal case).
persistence::db_job sweep_deleted(std::chrono::seconds horizon);

} // namespace parley::tenant_store
