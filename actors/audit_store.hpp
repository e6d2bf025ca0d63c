#pragma once
// The audit log: one row per administrative change (tenants, users, API keys, channels, roles),
// written in the same transaction as the change, so a change without its entry cannot commit.
// Summaries are the API's own shapes, which never contain secrets.
#include <functional>
#include <optional>
#include <string>

#include "persistence/messages.hpp"

namespace parley::audit_store {

/// Who changed what. Empty strings are stored as NULL.
struct event {
  std::string tenant_id;   ///< the tenant the object belongs to ("" for platform objects)
  std::string actor_type;  ///< "admin_token" | "user" | "api_key"
  std::string actor_id;    ///< user or key id; "" for the admin token
  std::string action;      ///< e.g. "tenant.update", "user.role_change"
  std::string object_type; ///< "tenant" | "user" | "api_key" | "channel"
  std::string object_id;   ///< "" = take "id" of the job's result
  std::string request_id;
};

/// Reads the object's summary before the change (null when absent).
using before_fn = std::function<nlohmann::json(pqxx::work&)>;
/// Turns the job's result into the after summary (default: the result itself).
using after_fn = std::function<nlohmann::json(const nlohmann::json& result)>;

/// `job` plus its audit entry in one read-write transaction. When `ev.tenant_id` is empty it is
/// taken from the object: its own id for a tenant, else the "tenant_id" of the result or of the
/// before summary.
persistence::db_job audited(persistence::db_job job, event ev, before_fn before = {},
                            after_fn after = {});

/// Inserts one entry inside an open transaction.
void record(pqxx::work& tx, const event& ev, const nlohmann::json& before,
            const nlohmann::json& after);

/// Entries newest first, keyset-paged by (at, id); `tenant_id` empty = every tenant (platform).
persistence::db_job list(std::optional<std::string> tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id);

} // namespace parley::audit_store
