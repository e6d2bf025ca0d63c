#include "actors/user_store.hpp"

#include "actors/plan_limits.hpp"

#include <pqxx/pqxx>

#include "runtime/errors.hpp"

namespace parley::user_store {

namespace {

constexpr const char* user_select = R"(
  SELECT u.id, u.tenant_id, u.email, u.name, u.role, u.disabled,
         (u.locked_until IS NOT NULL AND u.locked_until > now()) AS locked,
         parley_ts(u.last_login_at) AS last_login_at,
         parley_ts(u.created_at) AS created_at, parley_ts(u.updated_at) AS updated_at,
         parley_cursor_ts(u.created_at) AS _cursor_time
  FROM users u)";

// Live users the caller may see. $1 is the scope (NULL = every tenant).
constexpr const char* in_scope =
    " u.deleted_at IS NULL AND ($1::uuid IS NULL OR u.tenant_id = $1::uuid) ";

void end_sessions(pqxx::work& tx, const std::string& user_id) {
  tx.exec_params("UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = 'user_changed' "
                 "WHERE user_id = $1::uuid AND revoked_at IS NULL",
                 user_id);
}

nlohmann::json required_summary(pqxx::work& tx, const std::optional<std::string>& scope,
                                const std::string& id) {
  auto j = summary(tx, scope, id);
  if (j.is_null())
    throw app_error(errc::not_found, "user " + id + " not found");
  return j;
}

} // namespace

nlohmann::json summary(pqxx::work& tx, const std::optional<std::string>& scope,
                       const std::string& user_id) {
  auto r = tx.exec_params(std::string{"SELECT row_to_json(x)::text FROM ("} + user_select +
                              " WHERE" + in_scope + "AND u.id = $2::uuid) x",
                          scope, user_id);
  if (r.empty())
    return nullptr;
  auto j = nlohmann::json::parse(r[0][0].c_str());
  j.erase("_cursor_time");
  return j;
}

persistence::db_job create(new_user u) {
  return {u.tenant_id.value_or(""), false, [u](pqxx::work& tx) {
            // The plan's `users` limit (also 404 for an unknown tenant); locks the tenant's row
            // so concurrent creations cannot both take the last place.
            if (u.tenant_id)
              plan_limits::require_room(tx, *u.tenant_id, "users");
            auto r = tx.exec_params(
                "INSERT INTO users (tenant_id, email, name, role, password_hash) "
                "VALUES ($1::uuid, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id::text",
                u.tenant_id, u.email, u.name, u.role,
                password::hash(u.password.plain, u.password.params));
            if (r.empty())
              throw app_error(errc::conflict, "a user with email '" + u.email + "' already exists");
            return required_summary(tx, std::nullopt, r[0][0].c_str());
          }};
}

persistence::db_job list(std::optional<std::string> scope, std::optional<std::string> tenant_filter,
                         int limit_plus_one, std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {scope.value_or(""), true, [=](pqxx::work& tx) {
            auto r = tx.exec_params(std::string{"SELECT coalesce(json_agg(x), '[]')::text FROM ("} +
                                        user_select + " WHERE" + in_scope +
                                        "AND ($2::uuid IS NULL OR u.tenant_id = $2::uuid) "
                                        "AND ($3::timestamptz IS NULL OR (u.created_at, u.id) > "
                                        "($3::timestamptz, $4::uuid)) "
                                        "ORDER BY u.created_at, u.id LIMIT $5) x",
                                    scope, tenant_filter, after_time, after_id, limit_plus_one);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

persistence::db_job get(std::optional<std::string> scope, std::string user_id) {
  return {scope.value_or(""), true,
          [scope, user_id](pqxx::work& tx) { return required_summary(tx, scope, user_id); }};
}

persistence::db_job update(std::optional<std::string> scope, std::string user_id,
                           user_patch patch) {
  return {scope.value_or(""), false, [=](pqxx::work& tx) {
            auto before = required_summary(tx, scope, user_id);
            if (patch.role && before["role"] == "platform_admin" && *patch.role != "platform_admin")
              throw app_error(errc::invalid_argument,
                              "field 'role': a platform admin has no tenant and keeps its role; "
                              "create a tenant user instead");
            if (patch.role && *patch.role == "platform_admin" && before["role"] != "platform_admin")
              throw app_error(errc::invalid_argument,
                              "field 'role' must be 'tenant_admin' or 'agent' for a tenant's user");
            std::optional<std::string> hash;
            if (patch.password)
              hash = password::hash(patch.password->plain, patch.password->params);
            tx.exec_params("UPDATE users SET name = coalesce($2, name), role = coalesce($3, role), "
                           "disabled = coalesce($4, disabled), "
                           "password_hash = coalesce($5, password_hash), "
                           "failed_logins = CASE WHEN $5 IS NULL THEN failed_logins ELSE 0 END, "
                           "locked_until = CASE WHEN $5 IS NULL THEN locked_until END, "
                           "updated_at = now() WHERE id = $1::uuid",
                           user_id, patch.name, patch.role, patch.disabled, hash);
            bool role_changed = patch.role && before["role"] != *patch.role;
            if (role_changed || patch.password || patch.disabled.value_or(false))
              end_sessions(tx, user_id);
            return required_summary(tx, scope, user_id);
          }};
}

persistence::db_job remove(std::optional<std::string> scope, std::string user_id) {
  return {scope.value_or(""), false, [=](pqxx::work& tx) {
            auto r = tx.exec_params(
                std::string{"UPDATE users u SET deleted_at = now(), updated_at = now() WHERE"} +
                    in_scope + "AND u.id = $2::uuid RETURNING u.id",
                scope, user_id);
            if (r.empty())
              throw app_error(errc::not_found, "user " + user_id + " not found");
            end_sessions(tx, user_id);
            return nlohmann::json{{"deleted", true}};
          }};
}

persistence::db_job principal(std::string user_id, std::string family_id,
                              std::optional<std::string> tenant_id) {
  return {tenant_id.value_or(""), true, [=](pqxx::work& tx) {
            auto r = tx.exec_params(
                // The plan's API rates come along: signed-in users share their tenant's bucket.
                "SELECT u.role, u.tenant_id::text, "
                "CASE WHEN t.id IS NULL THEN NULL ELSE parley_tenant_limits(t) ->> 'api_rps' END, "
                "CASE WHEN t.id IS NULL THEN NULL ELSE parley_tenant_limits(t) ->> 'api_burst' END "
                "FROM users u "
                "LEFT JOIN tenants t ON t.id = u.tenant_id "
                "WHERE u.id = $1::uuid AND u.deleted_at IS NULL AND NOT u.disabled "
                "AND u.tenant_id IS NOT DISTINCT FROM $3::uuid "
                "AND (u.tenant_id IS NULL OR t.status = 'active') "
                "AND EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = $2::uuid "
                "            AND r.user_id = u.id AND r.revoked_at IS NULL)",
                user_id, family_id, tenant_id);
            if (r.empty())
              throw app_error(errc::unauthorized,
                              "the session of this access token has ended: sign in again");
            nlohmann::json who{{"role", r[0][0].c_str()},
                               {"tenant_id", r[0][1].is_null() ? nlohmann::json(nullptr)
                                                               : nlohmann::json(r[0][1].c_str())}};
            // Null rates (an unlimited override) mean no bucket, as for API keys.
            if (!r[0][2].is_null() && !r[0][3].is_null()) {
              who["api_rps"] = r[0][2].as<double>();
              who["api_burst"] = r[0][3].as<double>();
            }
            return who;
          }};
}

persistence::db_job me(std::string user_id, std::optional<std::string> tenant_id) {
  return {tenant_id.value_or(""), true, [=](pqxx::work& tx) {
            auto user = required_summary(tx, tenant_id, user_id);
            nlohmann::json tenant = nullptr;
            if (tenant_id) {
              auto r =
                  tx.exec_params("SELECT json_build_object('id', id, 'name', name, 'slug', slug, "
                                 "'status', status)::text FROM tenants WHERE id = $1::uuid",
                                 *tenant_id);
              if (!r.empty())
                tenant = nlohmann::json::parse(r[0][0].c_str());
            }
            return nlohmann::json{{"user", std::move(user)}, {"tenant", std::move(tenant)}};
          }};
}

} // namespace parley::user_store
