#include "actors/tenant_store.hpp"

#include <pqxx/pqxx>

#include "runtime/errors.hpp"

namespace parley::tenant_store {

namespace {

// limits: the effective ones (plan, then the tenant's overrides); limit_overrides: what was set
// for this tenant alone; usage: current counts (migration 0006).
constexpr const char* tenant_columns = R"(
  SELECT t.id, t.name, t.slug, t.status, t.plan, parley_tenant_limits(t) AS limits,
         t.limits AS limit_overrides, parley_tenant_usage(t.id) AS usage,
         parley_ts(t.created_at) AS created_at, parley_ts(t.updated_at) AS updated_at
  FROM tenants t)";

nlohmann::json one_tenant(pqxx::work& tx, const std::string& id) {
  auto r = tx.exec_params(std::string{"SELECT row_to_json(x)::text FROM ("} + tenant_columns +
                              " WHERE t.id = $1::uuid) x",
                          id);
  if (r.empty())
    throw app_error(errc::not_found, "tenant " + id + " not found");
  return nlohmann::json::parse(r[0][0].c_str());
}

/// 400 naming the plans that exist when `plan` is not one of them.
void require_plan(pqxx::work& tx, const std::string& plan) {
  auto r = tx.exec_params("SELECT (SELECT 1 FROM plans WHERE name = $1) IS NOT NULL, "
                          "(SELECT string_agg(name, ', ' ORDER BY name) FROM plans)",
                          plan);
  if (!r[0][0].as<bool>())
    throw app_error(errc::invalid_argument,
                    "field 'plan' must be one of: " + std::string{r[0][1].c_str()});
}

} // namespace

persistence::db_job load(std::string tenant_id) {
  // In the tenant's own scope: Row Level Security then shows this row and nothing else.
  return {tenant_id, true, [id = tenant_id](pqxx::work& tx) { return one_tenant(tx, id); }};
}

persistence::db_job create(std::string name, std::string slug, std::optional<std::string> plan,
                           std::optional<nlohmann::json> limits) {
  return {"", false,
          [name = std::move(name), slug = std::move(slug), plan = std::move(plan),
           limits = std::move(limits)](pqxx::work& tx) {
            if (plan)
              require_plan(tx, *plan);
            std::optional<std::string> limits_text;
            if (limits)
              limits_text = limits->dump();
            auto r = tx.exec_params("INSERT INTO tenants (name, slug, plan, limits) "
                                    "VALUES ($1, $2, coalesce($3, 'standard'), "
                                    "coalesce($4::jsonb, '{}'::jsonb)) "
                                    "ON CONFLICT (slug) DO NOTHING RETURNING id::text",
                                    name, slug, plan, limits_text);
            if (r.empty())
              throw app_error(errc::conflict, "slug '" + slug + "' is already taken");
            return one_tenant(tx, r[0][0].c_str());
          }};
}

persistence::db_job list(int limit_plus_one, std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {"", true, [=](pqxx::work& tx) {
            auto sql = std::string{"SELECT coalesce(json_agg(x), '[]')::text FROM ("} +
                       "SELECT t.id, t.name, t.slug, t.status, parley_ts(t.created_at) AS "
                       "created_at, parley_ts(t.updated_at) AS updated_at, "
                       "parley_cursor_ts(t.created_at) AS _cursor_time FROM tenants t "
                       "WHERE $1::timestamptz IS NULL OR (t.created_at, t.id) > ($1::timestamptz, "
                       "$2::uuid) ORDER BY t.created_at, t.id LIMIT $3) x";
            auto r = tx.exec_params(sql, after_time, after_id, limit_plus_one);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

persistence::db_job update(std::string tenant_id, nlohmann::json patch) {
  return {tenant_id, false, [id = tenant_id, patch = std::move(patch)](pqxx::work& tx) {
            std::optional<std::string> name, status, plan, limits;
            if (patch.contains("name"))
              name = patch["name"].get<std::string>();
            if (patch.contains("status"))
              status = patch["status"].get<std::string>();
            if (patch.contains("plan")) {
              plan = patch["plan"].get<std::string>();
              require_plan(tx, *plan);
            }
            if (patch.contains("limits"))
              limits = patch["limits"].dump();
            // Overrides merge key by key ({"channels": 3} leaves the others alone); null clears
            // them.
            auto r = tx.exec_params("UPDATE tenants SET name = coalesce($2, name), "
                                    "status = coalesce($3, status), plan = coalesce($4, plan), "
                                    "limits = CASE WHEN $5::jsonb IS NULL THEN limits "
                                    "WHEN $5::jsonb = 'null'::jsonb THEN '{}'::jsonb "
                                    "ELSE limits || $5::jsonb END, updated_at = now() "
                                    "WHERE id = $1::uuid RETURNING id",
                                    id, name, status, plan, limits);
            if (r.empty())
              throw app_error(errc::not_found, "tenant " + id + " not found");
            return one_tenant(tx, id);
          }};
}

namespace {

/// Deletes the rows of `tenant_id` from the hot tables, which have no foreign keys (migration
/// 0007), each through an index that leads with the tenant, or for status reports with one of
/// its channels (`channel_ids`, a PostgreSQL array literal: the channels may be gone already);
/// returns how many went.
int64_t delete_hot_rows(pqxx::work& tx, const std::string& tenant_id,
                        const std::string& channel_ids) {
  int64_t n = 0;
  for (const char* sql : {
           "DELETE FROM delivery_attempts WHERE tenant_id = $1::uuid",
           "DELETE FROM outbox WHERE tenant_id = $1::uuid",
           "DELETE FROM messages WHERE tenant_id = $1::uuid",
           "DELETE FROM conversations WHERE tenant_id = $1::uuid",
           "DELETE FROM contacts WHERE tenant_id = $1::uuid",
       })
    n += tx.exec_params(sql, tenant_id).affected_rows();
  n += tx.exec_params("DELETE FROM message_status_events WHERE channel_id = ANY($1::uuid[])",
                      channel_ids)
           .affected_rows();
  return n;
}

} // namespace

persistence::db_job remove(std::string tenant_id) {
  return {"", false, [id = std::move(tenant_id)](pqxx::work& tx) {
            // Recorded first, with the channels the sweep needs once they are gone (cascade).
            auto channels =
                tx.exec_params("INSERT INTO deleted_tenants (id, channel_ids) "
                               "SELECT $1::uuid, coalesce(array_agg(c.id), '{}') FROM channels c "
                               "WHERE c.tenant_id = $1::uuid "
                               "ON CONFLICT (id) DO UPDATE SET deleted_at = now(), "
                               "channel_ids = deleted_tenants.channel_ids || EXCLUDED.channel_ids "
                               "RETURNING channel_ids::text",
                               id);
            delete_hot_rows(tx, id, channels[0][0].c_str());
            auto r = tx.exec_params("DELETE FROM tenants WHERE id = $1::uuid RETURNING id", id);
            if (r.empty())
              throw app_error(errc::not_found, "tenant " + id + " not found");
            return nlohmann::json{{"deleted", true}};
          }};
}

persistence::db_job sweep_deleted(std::chrono::seconds horizon) {
  return {"", false, [horizon](pqxx::work& tx) {
            // A tenant that exists (again) is never swept, whatever the table says.
            auto recent = tx.exec_params(
                "SELECT d.id::text, d.channel_ids::text FROM deleted_tenants d "
                "WHERE d.deleted_at > now() - make_interval(secs => $1) "
                "AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = d.id) ORDER BY d.id",
                static_cast<double>(horizon.count()));
            int64_t rows = 0;
            for (const auto& row : recent) {
              std::string id = row[0].c_str();
              auto n = delete_hot_rows(tx, id, row[1].c_str());
              rows += n;
              tx.exec_params("UPDATE deleted_tenants SET swept_at = now(), "
                             "swept_rows = swept_rows + $2 WHERE id = $1::uuid",
                             id, n);
            }
            return nlohmann::json{{"tenants", recent.size()}, {"rows", rows}};
          }};
}

} // namespace parley::tenant_store
