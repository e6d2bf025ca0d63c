#include "actors/channel_store.hpp"

#include <pqxx/pqxx>

#include "actors/plan_limits.hpp"
#include "persistence/prepared.hpp"
#include "runtime/errors.hpp"

namespace parley {

namespace {

/// Sub-resources of a tenant that does not exist answer 404, not an empty list.
void require_tenant(pqxx::work& tx, const std::string& tenant_id) {
  if (tx.exec_params("SELECT 1 FROM tenants WHERE id = $1::uuid", tenant_id).empty())
    throw app_error(errc::not_found, "tenant " + tenant_id + " not found");
}

/// One page of a tenant's rows as a JSON array: `select` reads the table under `alias`, whose
/// tenant_id, created_at and id give the keyset order (for page_response(), with
/// "_cursor_time"). 404 when the tenant does not exist.
nlohmann::json tenant_page(pqxx::work& tx, const std::string& select, const std::string& alias,
                           const std::string& tenant_id, int limit_plus_one,
                           const std::optional<std::string>& after_time,
                           const std::optional<std::string>& after_id) {
  require_tenant(tx, tenant_id);
  const auto& a = alias;
  auto r =
      tx.exec_params("SELECT coalesce(json_agg(x), '[]')::text FROM (" + select + " WHERE " + a +
                         ".tenant_id = $1::uuid AND ($2::timestamptz IS NULL OR (" + a +
                         ".created_at, " + a + ".id) > ($2::timestamptz, $3::uuid)) ORDER BY " + a +
                         ".created_at, " + a + ".id LIMIT $4) x",
                     tenant_id, after_time, after_id, limit_plus_one);
  return nlohmann::json::parse(r[0][0].c_str());
}

} // namespace

} // namespace parley

namespace parley::channel_store {

namespace {

constexpr const char* channel_select = R"(
  SELECT c.id, c.tenant_id, c.type, c.phone_number_id, c.waba_id, c.display_phone_number,
         c.graph_base_url, c.throughput_mps, c.state, c.state_reason,
         parley_ts(c.state_changed_at) AS state_changed_at,
         (SELECT count(*) FROM outbox o WHERE o.channel_id = c.id) AS outbox_depth,
         (c.app_secret_enc IS NOT NULL) AS has_app_secret,
         parley_ts(c.created_at) AS created_at, parley_ts(c.updated_at) AS updated_at,
         parley_cursor_ts(c.created_at) AS _cursor_time
  FROM channels c)";

nlohmann::json one_channel(pqxx::work& tx, const std::string& tenant_id, const std::string& id) {
  auto r = tx.exec_params(std::string{"SELECT row_to_json(x)::text FROM ("} + channel_select +
                              " WHERE c.tenant_id = $1::uuid AND c.id = $2::uuid) x",
                          tenant_id, id);
  if (r.empty())
    throw app_error(errc::not_found, "channel " + id + " not found");
  auto j = nlohmann::json::parse(r[0][0].c_str());
  j.erase("_cursor_time");
  return j;
}

} // namespace

persistence::db_job create(new_channel c) {
  return {c.tenant_id, false, [c](pqxx::work& tx) {
            require_tenant(tx, c.tenant_id);
            plan_limits::require_room(tx, c.tenant_id, plan_limits::channels);
            auto r = tx.exec_params(
                "INSERT INTO channels (tenant_id, phone_number_id, waba_id, display_phone_number, "
                "access_token_enc, app_secret_enc, graph_base_url, throughput_mps) "
                "VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (phone_number_id) DO NOTHING RETURNING id::text",
                c.tenant_id, c.phone_number_id, c.waba_id, c.display_phone_number,
                c.access_token_sealed, c.app_secret_sealed, c.graph_base_url, c.throughput_mps);
            if (r.empty())
              throw app_error(errc::conflict, "phone_number_id '" + c.phone_number_id +
                                                  "' is already connected to a channel");
            return one_channel(tx, c.tenant_id, r[0][0].c_str());
          }};
}

persistence::db_job list(std::string tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {tenant_id, true, [=](pqxx::work& tx) {
            return tenant_page(tx, channel_select, "c", tenant_id, limit_plus_one, after_time,
                               after_id);
          }};
}

persistence::db_job get(std::string tenant_id, std::string channel_id) {
  return {tenant_id, true, [tenant_id, channel_id](pqxx::work& tx) {
            return one_channel(tx, tenant_id, channel_id);
          }};
}

persistence::db_job update(std::string tenant_id, std::string channel_id, channel_patch p) {
  return {tenant_id, false, [tenant_id, channel_id, p](pqxx::work& tx) {
            auto r = tx.exec_params(
                "UPDATE channels SET access_token_enc = coalesce($3, access_token_enc), "
                "app_secret_enc = coalesce($4, app_secret_enc), "
                "graph_base_url = coalesce($5, graph_base_url), "
                "throughput_mps = coalesce($6, throughput_mps), updated_at = now() "
                "WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING id",
                tenant_id, channel_id, p.access_token_sealed, p.app_secret_sealed, p.graph_base_url,
                p.throughput_mps);
            if (r.empty())
              throw app_error(errc::not_found, "channel " + channel_id + " not found");
            return one_channel(tx, tenant_id, channel_id);
          }};
}

persistence::db_job route(std::string phone_number_id) {
  return {"", true, [pnid = std::move(phone_number_id)](pqxx::work& tx) {
            auto r = tx.exec_params("SELECT c.tenant_id::text, c.id::text FROM channels c "
                                    "JOIN tenants t ON t.id = c.tenant_id "
                                    "WHERE c.phone_number_id = $1 AND t.status = 'active'",
                                    pnid);
            if (r.empty())
              throw app_error(errc::not_found, "no active channel for phone_number_id " + pnid);
            return nlohmann::json{{"tenant_id", r[0][0].c_str()}, {"channel_id", r[0][1].c_str()}};
          }};
}

persistence::db_job webhook_secret(std::string channel_id) {
  return {"", true, [id = std::move(channel_id)](pqxx::work& tx) {
            auto r = tx.exec_params("SELECT tenant_id::text, app_secret_enc FROM channels "
                                    "WHERE id = $1::uuid",
                                    id);
            if (r.empty())
              throw app_error(errc::not_found, "channel " + id + " not found");
            return nlohmann::json{{"tenant_id", r[0][0].c_str()},
                                  {"app_secret_enc", r[0][1].is_null()
                                                         ? nlohmann::json(nullptr)
                                                         : nlohmann::json(r[0][1].c_str())}};
          }};
}

} // namespace parley::channel_store

namespace parley::api_key_store {

persistence::db_job create(std::string tenant_id, std::string name, std::string prefix,
                           std::string key_hash) {
  return {tenant_id, false, [=](pqxx::work& tx) {
            require_tenant(tx, tenant_id);
            auto r = tx.exec_params(
                "INSERT INTO api_keys (tenant_id, name, prefix, key_hash) VALUES ($1::uuid, $2, "
                "$3, $4) "
                "RETURNING json_build_object('id', id, 'name', name, 'prefix', prefix, "
                "'created_at', parley_ts(created_at))::text",
                tenant_id, name, prefix, key_hash);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

namespace {

const char* const key_select =
    "SELECT k.id, k.name, k.prefix, parley_ts(k.created_at) AS created_at, "
    "parley_ts(k.revoked_at) AS revoked_at, parley_cursor_ts(k.created_at) AS _cursor_time "
    "FROM api_keys k";

} // namespace

persistence::db_job list(std::string tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {tenant_id, true, [=](pqxx::work& tx) {
            return tenant_page(tx, key_select, "k", tenant_id, limit_plus_one, after_time,
                               after_id);
          }};
}

persistence::db_job get(std::string tenant_id, std::string key_id) {
  return {tenant_id, true, [tenant_id, key_id](pqxx::work& tx) {
            auto r = tx.exec_params(
                std::string{"SELECT coalesce((SELECT row_to_json(x)::text FROM ("} + key_select +
                    " WHERE k.tenant_id = $1::uuid AND k.id = $2::uuid) x), 'null')",
                tenant_id, key_id);
            auto key = nlohmann::json::parse(r[0][0].c_str());
            if (key.is_object())
              key.erase("_cursor_time");
            return key;
          }};
}

persistence::db_job revoke(std::string tenant_id, std::string key_id) {
  return {tenant_id, false, [tenant_id, key_id](pqxx::work& tx) {
            auto r = tx.exec_params("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                                    "WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING id",
                                    tenant_id, key_id);
            if (r.empty())
              throw app_error(errc::not_found, "api key " + key_id + " not found");
            return nlohmann::json{{"revoked", true}};
          }};
}

persistence::db_job resolve(std::string key_hash) {
  return {"", true, [key_hash](pqxx::work& tx) {
            // The plan's API rates come along: the edge's rate limits need them on every request.
            // They are parley_tenant_limits(t) (plan values, then the tenant's overrides) written
            // out for the two keys: that SQL function cannot be inlined (its body reads plans)
            // and planned its body again on every call; prepared, the look-up is planned once.
            auto r = persistence::exec_prepared_sql(
                tx, "api_key_resolve",
                "SELECT k.tenant_id::text, k.id::text, l ->> 'api_rps', l ->> 'api_burst' "
                "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id "
                "LEFT JOIN plans p ON p.name = t.plan, "
                "LATERAL (SELECT jsonb_build_object('api_rps', p.api_rps, 'api_burst', "
                "p.api_burst) || t.limits AS l) lim "
                "WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND t.status = 'active'",
                key_hash);
            if (r.empty())
              throw app_error(errc::unauthorized, "invalid API key");
            nlohmann::json who{{"tenant_id", r[0][0].c_str()}, {"key_id", r[0][1].c_str()}};
            // Overrides may set a rate to null (unlimited): then no bucket for it.
            if (!r[0][2].is_null() && !r[0][3].is_null()) {
              who["api_rps"] = r[0][2].as<double>();
              who["api_burst"] = r[0][3].as<double>();
            }
            return who;
          }};
}

} // namespace parley::api_key_store
