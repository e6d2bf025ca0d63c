#include "actors/conversation_store.hpp"

#include <pqxx/pqxx>

#include "runtime/errors.hpp"

namespace parley::conversation_store {

namespace {

constexpr const char* conversation_json = R"(
  json_build_object(
    'id', c.id, 'channel_id', c.channel_id,
    'contact', json_build_object('wa_id', c.wa_id, 'name', coalesce(k.profile_name, c.contact_name)),
    'status', c.status, 'mode', c.mode, 'assignee', c.assignee,
    'last_message_at', parley_ts(c.last_message_at), 'last_inbound_at', parley_ts(c.last_inbound_at),
    'window_expires_at', parley_ts(c.window_expires_at), 'unread_count', c.unread_count,
    'created_at', parley_ts(c.created_at), 'updated_at', parley_ts(c.updated_at),
    '_cursor_time', parley_cursor_ts(c.created_at))
  FROM conversations c LEFT JOIN contacts k ON k.tenant_id = c.tenant_id AND k.wa_id = c.wa_id)";

constexpr const char* message_json = R"(
  json_build_object(
    'id', m.id, 'conversation_id', m.conversation_id, 'channel_id', m.channel_id,
    'direction', m.direction, 'type', m.type, 'wa_message_id', m.wamid,
    'from', CASE WHEN m.direction = 'inbound' THEN m.from_wa ELSE ch.display_phone_number END,
    'to', CASE WHEN m.direction = 'inbound' THEN ch.display_phone_number ELSE m.to_wa END,
    'content', m.content, 'context', m.context, 'status', m.status, 'attempts', m.attempts,
    'client_message_id', m.client_message_id,
    'error', CASE WHEN m.error_code IS NULL AND m.error_title IS NULL THEN NULL
                  ELSE json_build_object('code', m.error_code, 'title', m.error_title) END,
    'timestamp', parley_ts(m.meta_timestamp), 'created_at', parley_ts(m.created_at),
    'sent_at', parley_ts(m.sent_at), 'delivered_at', parley_ts(m.delivered_at),
    'read_at', parley_ts(m.read_at), 'failed_at', parley_ts(m.failed_at),
    '_cursor_time', parley_cursor_ts(m.created_at))
  FROM messages m JOIN channels ch ON ch.id = m.channel_id)";

nlohmann::json strip_nulls_and_cursor(nlohmann::json j) {
  j.erase("_cursor_time");
  if (j.contains("error") && j["error"].is_null())
    j.erase("error");
  return j;
}

nlohmann::json one_conversation(pqxx::work& tx, const std::string& tenant_id,
                                const std::string& id) {
  auto r = tx.exec_params(std::string{"SELECT "} + conversation_json +
                              " WHERE c.tenant_id = $1::uuid AND c.id = $2::uuid",
                          tenant_id, id);
  if (r.empty())
    throw app_error(errc::not_found, "conversation " + id + " not found");
  return strip_nulls_and_cursor(nlohmann::json::parse(r[0][0].c_str()));
}

} // namespace

persistence::db_job list(std::string tenant_id, list_filter f) {
  return {tenant_id, true, [tenant_id, f](pqxx::work& tx) {
            std::string cmp = f.descending ? "<" : ">";
            std::string dir = f.descending ? "DESC" : "ASC";
            auto r = tx.exec_params(
                std::string{"SELECT coalesce(json_agg(x ORDER BY ord), '[]')::text FROM ("} +
                    "SELECT row_number() OVER () AS ord, j AS x FROM (SELECT " + conversation_json +
                    " WHERE c.tenant_id = $1::uuid AND ($2::text IS NULL OR c.status = $2) "
                    "AND ($3::uuid IS NULL OR c.channel_id = $3::uuid) "
                    "AND ($4::timestamptz IS NULL OR (c.created_at, c.id) " +
                    cmp + " ($4::timestamptz, $5::uuid)) ORDER BY c.created_at " + dir + ", c.id " +
                    dir + " LIMIT $6) AS t(j)) y",
                tenant_id, f.status, f.channel_id, f.after_time, f.after_id, f.limit_plus_one);
            auto rows = nlohmann::json::parse(r[0][0].c_str());
            for (auto& row : rows)
              if (row.contains("error") && row["error"].is_null())
                row.erase("error");
            return rows;
          }};
}

persistence::db_job get(std::string tenant_id, std::string conversation_id) {
  return {tenant_id, true, [tenant_id, conversation_id](pqxx::work& tx) {
            return one_conversation(tx, tenant_id, conversation_id);
          }};
}

persistence::db_job update(std::string tenant_id, std::string conversation_id,
                           nlohmann::json patch) {
  return {
      tenant_id, false, [tenant_id, conversation_id, patch](pqxx::work& tx) {
        std::optional<std::string> status, mode, assignee;
        bool set_assignee = patch.contains("assignee");
        if (patch.contains("status"))
          status = patch["status"].get<std::string>();
        if (patch.contains("mode"))
          mode = patch["mode"].get<std::string>();
        if (set_assignee && patch["assignee"].is_string())
          assignee = patch["assignee"].get<std::string>();
        auto r = tx.exec_params(
            "UPDATE conversations SET status = coalesce($3, status), mode = coalesce($4, mode), "
            "assignee = CASE WHEN $5 THEN $6 ELSE assignee END, "
            "unread_count = CASE WHEN $3 = 'resolved' THEN 0 ELSE unread_count END, "
            "updated_at = now() WHERE tenant_id = $1::uuid AND id = $2::uuid RETURNING id",
            tenant_id, conversation_id, status, mode, set_assignee, assignee);
        if (r.empty())
          throw app_error(errc::not_found, "conversation " + conversation_id + " not found");
        return one_conversation(tx, tenant_id, conversation_id);
      }};
}

persistence::db_job messages(std::string tenant_id, std::string conversation_id, bool descending,
                             int limit_plus_one, std::optional<std::string> after_time,
                             std::optional<std::string> after_id) {
  return {tenant_id, true, [=](pqxx::work& tx) {
            one_conversation(tx, tenant_id, conversation_id); // 404 for unknown / other tenant's
            std::string cmp = descending ? "<" : ">";
            std::string dir = descending ? "DESC" : "ASC";
            auto r = tx.exec_params(
                std::string{"SELECT coalesce(json_agg(j ORDER BY ord), '[]')::text FROM ("} +
                    "SELECT row_number() OVER () AS ord, j FROM (SELECT " + message_json +
                    " WHERE m.tenant_id = $1::uuid AND m.conversation_id = $2::uuid "
                    "AND ($3::timestamptz IS NULL OR (m.created_at, m.id) " +
                    cmp + " ($3::timestamptz, $4::uuid)) ORDER BY m.created_at " + dir + ", m.id " +
                    dir + " LIMIT $5) AS t(j)) y",
                tenant_id, conversation_id, after_time, after_id, limit_plus_one);
            auto rows = nlohmann::json::parse(r[0][0].c_str());
            for (auto& row : rows)
              if (row.contains("error") && row["error"].is_null())
                row.erase("error");
            return rows;
          }};
}

persistence::db_job message(std::string tenant_id, std::string message_id) {
  return {tenant_id, true, [tenant_id, message_id](pqxx::work& tx) {
            auto r = tx.exec_params(std::string{"SELECT "} + message_json +
                                        " WHERE m.tenant_id = $1::uuid AND m.id = $2::uuid",
                                    tenant_id, message_id);
            if (r.empty())
              throw app_error(errc::not_found, "message " + message_id + " not found");
            return strip_nulls_and_cursor(nlohmann::json::parse(r[0][0].c_str()));
          }};
}

} // namespace parley::conversation_store
