#include "actors/tenant_store.hpp"

#include <pqxx/pqxx>

#include "runtime/errors.hpp"

namespace parley::tenant_store {

namespace {

constexpr const char* tenant_columns = R"(
  SELECT t.id, t.name, t.slug, t.status, parley_ts(t.created_at) AS created_at,
         parley_ts(t.updated_at) AS updated_at,
         (SELECT count(*) FROM channels c WHERE c.tenant_id = t.id) AS channel_count,
         (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL)
           AS api_key_count
  FROM tenants t)";

nlohmann::json one_tenant(pqxx::work& tx, const std::string& id) {
  auto r = tx.exec_params(std::string{"SELECT row_to_json(x)::text FROM ("} + tenant_columns
                            + " WHERE t.id = $1::uuid) x",
                          id);
  if (r.empty())
    throw app_error(errc::not_found, "tenant " + id + " not found");
  auto j = nlohmann::json::parse(r[0][0].c_str());
  j["usage"] = {{"channels", j["channel_count"]}, {"api_keys", j["api_key_count"]}};
  j.erase("channel_count");
  j.erase("api_key_count");
  return j;
}

} // namespace

persistence::db_job load(std::string tenant_id) {
  return {"", true, [id = std::move(tenant_id)](pqxx::work& tx) { return one_tenant(tx, id); }};
}

persistence::db_job create(std::string name, std::string slug) {
  return {"", false, [name = std::move(name), slug = std::move(slug)](pqxx::work& tx) {
            auto r = tx.exec_params("INSERT INTO tenants (name, slug) VALUES ($1, $2) "
                                    "ON CONFLICT (slug) DO NOTHING RETURNING id::text",
                                    name, slug);
            if (r.empty())
              throw app_error(errc::conflict, "slug '" + slug + "' is already taken");
            return one_tenant(tx, r[0][0].c_str());
          }};
}

persistence::db_job list(int limit_plus_one, std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {"", true, [=](pqxx::work& tx) {
            auto sql = std::string{"SELECT coalesce(json_agg(x), '[]')::text FROM ("}
                       + "SELECT t.id, t.name, t.slug, t.status, parley_ts(t.created_at) AS "
                         "created_at, parley_ts(t.updated_at) AS updated_at, "
                         "parley_cursor_ts(t.created_at) AS _cursor_time FROM tenants t "
                         "WHERE $1::timestamptz IS NULL OR (t.created_at, t.id) > ($1::timestamptz, "
                         "$2::uuid) ORDER BY t.created_at, t.id LIMIT $3) x";
            auto r = tx.exec_params(sql, after_time, after_id, limit_plus_one);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

persistence::db_job update(std::string tenant_id, nlohmann::json patch) {
  return {"", false, [id = std::move(tenant_id), patch = std::move(patch)](pqxx::work& tx) {
            std::optional<std::string> name, status;
            if (patch.contains("name"))
              name = patch["name"].get<std::string>();
            if (patch.contains("status"))
              status = patch["status"].get<std::string>();
            auto r = tx.exec_params("UPDATE tenants SET name = coalesce($2, name), "
                                    "status = coalesce($3, status), updated_at = now() "
                                    "WHERE id = $1::uuid RETURNING id",
                                    id, name, status);
            if (r.empty())
              throw app_error(errc::not_found, "tenant " + id + " not found");
            return one_tenant(tx, id);
          }};
}

persistence::db_job remove(std::string tenant_id) {
  return {"", false, [id = std::move(tenant_id)](pqxx::work& tx) {
            // Tables without a foreign key to tenants (hot, insert-only) first.
            tx.exec_params("DELETE FROM delivery_attempts WHERE tenant_id = $1::uuid", id);
            auto r = tx.exec_params("DELETE FROM tenants WHERE id = $1::uuid RETURNING id", id);
            if (r.empty())
              throw app_error(errc::not_found, "tenant " + id + " not found");
            return nlohmann::json{{"deleted", true}};
          }};
}

} // namespace parley::tenant_store
