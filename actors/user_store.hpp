#pragma once
// SQL for users (operators who sign in). `scope` is the tenant the caller may see: a tenant's id
// for tenant admins (another tenant's user is not_found), nullopt for platform admins (every
// user). Password hashes never leave this file; the API shape has no secret fields.
#include <optional>
#include <string>

#include "domain/password.hpp"
#include "persistence/messages.hpp"

namespace parley::user_store {

/// A validated password, hashed inside the job: scrypt takes a few hundred milliseconds and
/// 32 MiB, which belongs on a pool worker, never on an HTTP I/O thread.
struct new_password {
  std::string plain;
  password::scrypt_params params;
};

struct new_user {
  std::optional<std::string> tenant_id; ///< nullopt only for platform_admin
  std::string email;
  std::optional<std::string> name;
  std::string role;
  new_password password;
};

/// Inserts; conflict when a live user has the email (any case); not_found for no tenant.
persistence::db_job create(new_user u);
/// Users in scope (and optionally of one tenant), keyset-paged by (created_at, id).
persistence::db_job list(std::optional<std::string> scope, std::optional<std::string> tenant_filter,
                         int limit_plus_one, std::optional<std::string> after_time,
                         std::optional<std::string> after_id);
/// One user in scope; not_found otherwise.
persistence::db_job get(std::optional<std::string> scope, std::string user_id);

/// A validated change; unset fields stay.
struct user_patch {
  std::optional<std::string> name;
  std::optional<std::string> role;
  std::optional<bool> disabled;
  std::optional<new_password> password;
};
/// Applies `patch`. A role or password change and disabling end the user's sessions.
persistence::db_job update(std::optional<std::string> scope, std::string user_id, user_patch patch);
/// Soft-deletes (the email becomes free) and ends the user's sessions; not_found when absent.
persistence::db_job remove(std::optional<std::string> scope, std::string user_id);

/// The user's API summary inside an open transaction, or null (for audit "before").
nlohmann::json summary(pqxx::work& tx, const std::optional<std::string>& scope,
                       const std::string& user_id);

/// Resolves an access token's subject: {"role","tenant_id"|null} when the user is live, enabled,
/// its tenant active and its session family `family_id` not revoked; unauthorized otherwise.
persistence::db_job principal(std::string user_id, std::string family_id,
                              std::optional<std::string> tenant_id);

/// {"user":{...},"tenant":{...}|null} for GET /v1/me.
persistence::db_job me(std::string user_id, std::optional<std::string> tenant_id);

} // namespace parley::user_store
