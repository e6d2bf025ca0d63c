#include "actors/audit_store.hpp"

#include <pqxx/pqxx>

namespace parley::audit_store {

namespace {

std::optional<std::string> or_null(const std::string& s) {
  if (s.empty())
    return std::nullopt;
  return s;
}

std::optional<std::string> json_or_null(const nlohmann::json& j) {
  if (j.is_null())
    return std::nullopt;
  auto copy = j;
  if (copy.is_object())
    copy.erase("_cursor_time");
  return copy.dump();
}

} // namespace

void record(pqxx::work& tx, const event& ev, const nlohmann::json& before,
            const nlohmann::json& after) {
  tx.exec_params("INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, object_type, "
                 "object_id, request_id, before, after) VALUES ($1::uuid, $2, $3::uuid, $4, $5, "
                 "$6, $7, $8::jsonb, $9::jsonb)",
                 or_null(ev.tenant_id), ev.actor_type, or_null(ev.actor_id), ev.action,
                 ev.object_type, or_null(ev.object_id), or_null(ev.request_id),
                 json_or_null(before), json_or_null(after));
}

persistence::db_job audited(persistence::db_job job, event ev, before_fn before, after_fn after) {
  auto inner = std::move(job.fn);
  job.read_only = false;
  job.fn = [inner = std::move(inner), ev = std::move(ev), before = std::move(before),
            after = std::move(after)](pqxx::work& tx) {
    nlohmann::json old = before ? before(tx) : nlohmann::json(nullptr);
    auto result = inner(tx);
    auto entry = ev;
    if (entry.object_id.empty() && result.is_object() && result.contains("id") &&
        result["id"].is_string())
      entry.object_id = result["id"].get<std::string>();
    if (entry.tenant_id.empty() && entry.object_type == "tenant")
      entry.tenant_id = entry.object_id;
    // A platform admin changing a tenant's object: the entry belongs to that tenant.
    for (const auto* summary : {&result, &old})
      if (entry.tenant_id.empty() && summary->is_object() && summary->contains("tenant_id") &&
          (*summary)["tenant_id"].is_string())
        entry.tenant_id = (*summary)["tenant_id"].get<std::string>();
    record(tx, entry, old, after ? after(result) : result);
    return result;
  };
  return job;
}

persistence::db_job list(std::optional<std::string> tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id) {
  return {
      tenant_id.value_or(""), true, [=](pqxx::work& tx) {
        auto r = tx.exec_params(
            "SELECT coalesce(json_agg(x), '[]')::text FROM ("
            " SELECT id, tenant_id, actor_type, actor_id, action, object_type, object_id, "
            "  request_id, before, after, parley_ts(at) AS at, parley_cursor_ts(at) AS _cursor_time"
            " FROM audit_log WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid)"
            " AND ($2::timestamptz IS NULL OR (at, id) < ($2::timestamptz, $3::uuid))"
            " ORDER BY at DESC, id DESC LIMIT $4) x",
            tenant_id, after_time, after_id, limit_plus_one);
        return nlohmann::json::parse(r[0][0].c_str());
      }};
}

} // namespace parley::audit_store
