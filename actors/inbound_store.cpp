#include "actors/inbound_store.hpp"

#include <map>
#include <set>

#include <pqxx/pqxx>

#include "domain/crypto.hpp"
#include "persistence/json_rows.hpp"

namespace parley::inbound_store {

namespace {

std::vector<nlohmann::json> store_raw_events(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  // Ids are drawn first so each row's id is known without relying on RETURNING order.
  auto ids = tx.exec_params("SELECT nextval('raw_webhook_events_id_seq') FROM generate_series(1, $1)",
                            static_cast<int>(rows.size()));
  std::vector<nlohmann::json> batch;
  std::vector<nlohmann::json> results;
  batch.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto id = ids[static_cast<int>(i)][0].as<int64_t>();
    nlohmann::json r = rows[i];
    r["id"] = id;
    batch.push_back(std::move(r));
    results.push_back({{"id", id}});
  }
  tx.exec_params(R"(
    INSERT INTO raw_webhook_events (id, channel_id, request_id, body)
    SELECT r.id, r.channel_id, r.request_id, decode(r.body_b64, 'base64')
    FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, channel_id uuid, request_id text, body_b64 text))",
                 persistence::json_rows(batch));
  return results;
}

/// Each statement gets only the columns it reads: PostgreSQL parses the JSON parameter once per
/// statement, and the message rows (content, raw) are by far the largest part.
std::string project(const std::vector<nlohmann::json>& rows, std::initializer_list<const char*> keys) {
  std::vector<nlohmann::json> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    nlohmann::json p = nlohmann::json::object();
    for (auto k : keys)
      if (auto it = r.find(k); it != r.end())
        p[k] = *it;
    out.push_back(std::move(p));
  }
  return persistence::json_rows(out);
}

std::vector<nlohmann::json> store_messages(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  auto people = project(rows, {"tenant_id", "channel_id", "wa_id", "profile_name"});
  tx.exec_params(R"(
    INSERT INTO contacts (tenant_id, wa_id, profile_name)
    SELECT DISTINCT ON (r.tenant_id, r.wa_id) r.tenant_id, r.wa_id, nullif(r.profile_name, '')
    FROM jsonb_to_recordset($1::jsonb) AS r(tenant_id uuid, wa_id text, profile_name text)
    ORDER BY r.tenant_id, r.wa_id
    ON CONFLICT (tenant_id, wa_id) DO UPDATE
      SET profile_name = EXCLUDED.profile_name, updated_at = now()
      WHERE EXCLUDED.profile_name IS NOT NULL
        AND contacts.profile_name IS DISTINCT FROM EXCLUDED.profile_name)",
                 people);
  tx.exec_params(R"(
    INSERT INTO conversations (tenant_id, channel_id, wa_id, contact_name)
    SELECT DISTINCT ON (r.channel_id, r.wa_id) r.tenant_id, r.channel_id, r.wa_id, nullif(r.profile_name, '')
    FROM jsonb_to_recordset($1::jsonb) AS r(tenant_id uuid, channel_id uuid, wa_id text, profile_name text)
    ORDER BY r.channel_id, r.wa_id
    ON CONFLICT (channel_id, wa_id) DO UPDATE
      SET contact_name = EXCLUDED.contact_name
      WHERE EXCLUDED.contact_name IS NOT NULL
        AND conversations.contact_name IS DISTINCT FROM EXCLUDED.contact_name)",
                 people);
  // Only messages new to the database move the conversation's counters and window, so a
  // replayed or retried message changes nothing. The conversation is found per row through
  // its unique index (LATERAL): a hash join would scan every conversation of every tenant.
  // LIMIT 1 keeps each subquery a per-row index look-up: without it PostgreSQL flattens the
  // LATERAL into an ordinary join and may hash-join the whole table after all.
  auto inserted = tx.exec_params(R"(
    WITH r AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
        tenant_id uuid, channel_id uuid, wa_id text, wamid text, type text, content jsonb,
        raw jsonb, context jsonb, ts bigint, raw_event_id bigint)
    ), ins AS (
      INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type, content,
                            raw, context, from_wa, status, meta_timestamp, raw_event_id)
      SELECT r.tenant_id, c.id, r.channel_id, 'inbound', r.wamid, r.type, r.content, r.raw,
             r.context, r.wa_id, 'received',
             CASE WHEN r.ts > 0 AND r.ts < 32503680000 THEN to_timestamp(r.ts) ELSE now() END, r.raw_event_id
      FROM r CROSS JOIN LATERAL (
        SELECT id FROM conversations c WHERE c.channel_id = r.channel_id AND c.wa_id = r.wa_id
        LIMIT 1) c
      ON CONFLICT (channel_id, wamid) WHERE wamid IS NOT NULL DO NOTHING
      RETURNING id, conversation_id, channel_id, wamid, meta_timestamp
    ), counts AS (
      SELECT conversation_id, count(*) AS n, max(meta_timestamp) AS ts FROM ins GROUP BY conversation_id
    ), upd AS (
      UPDATE conversations c
      SET unread_count = c.unread_count + counts.n,
          last_inbound_at = greatest(c.last_inbound_at, counts.ts),
          last_message_at = greatest(c.last_message_at, counts.ts),
          window_expires_at = greatest(c.last_inbound_at, counts.ts) + interval '24 hours',
          status = 'open', updated_at = now()
      FROM counts WHERE c.id = counts.conversation_id
    )
    SELECT channel_id::text, wamid FROM ins)",
                                 persistence::json_rows(rows));
  std::set<std::pair<std::string, std::string>> fresh;
  for (const auto& row : inserted)
    fresh.emplace(row[0].c_str(), row[1].c_str());
  auto all = tx.exec_params(R"(
    SELECT r.channel_id::text, r.wamid, m.id::text, m.conversation_id::text
    FROM jsonb_to_recordset($1::jsonb) AS r(channel_id uuid, wamid text)
    CROSS JOIN LATERAL (
      SELECT id, conversation_id FROM messages m
      WHERE m.channel_id = r.channel_id AND m.wamid = r.wamid LIMIT 1) m)",
                            project(rows, {"channel_id", "wamid"}));
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> ids;
  for (const auto& row : all)
    ids[{row[0].c_str(), row[1].c_str()}] = {row[2].c_str(), row[3].c_str()};
  std::vector<nlohmann::json> results;
  std::set<std::pair<std::string, std::string>> reported_new;
  for (const auto& r : rows) {
    std::pair<std::string, std::string> key{r["channel_id"].get<std::string>(),
                                            r["wamid"].get<std::string>()};
    auto it = ids.find(key);
    if (it == ids.end())
      throw std::runtime_error("message " + key.second + " missing after insert");
    // Two copies in one batch: the first is new, the second a duplicate.
    bool is_new = fresh.count(key) && reported_new.insert(key).second;
    results.push_back({{"message_id", it->second.first},
                       {"conversation_id", it->second.second},
                       {"duplicate", !is_new}});
  }
  return results;
}

std::vector<nlohmann::json> store_statuses(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  // Each report is stored once; the messages it concerns are then folded again from everything
  // stored for them (parley_fold_statuses: forward-only, failed terminal), the same fold the
  // outbound path applies when a send's wamid becomes known after its reports arrived.
  auto fresh = tx.exec_params(R"(
    INSERT INTO message_status_events (tenant_id, channel_id, wamid, status, recipient_id,
      meta_timestamp, error_code, error_title, errors, conversation, pricing)
    SELECT r.tenant_id, r.channel_id, r.wamid, r.status, r.recipient_id,
           CASE WHEN r.ts > 0 AND r.ts < 32503680000 THEN to_timestamp(r.ts) ELSE now() END,
           r.error_code, r.error_title, r.errors, r.conversation, r.pricing
    FROM jsonb_to_recordset($1::jsonb) AS r(
      tenant_id uuid, channel_id uuid, wamid text, status text, recipient_id text, ts bigint,
      error_code int, error_title text, errors jsonb, conversation jsonb, pricing jsonb)
    ON CONFLICT DO NOTHING
    RETURNING channel_id::text, wamid)",
                              persistence::json_rows(rows));
  if (!fresh.empty()) {
    std::set<std::pair<std::string, std::string>> touched;
    for (const auto& row : fresh)
      touched.emplace(row[0].c_str(), row[1].c_str());
    std::vector<nlohmann::json> keys;
    for (const auto& [channel, wamid] : touched)
      keys.push_back({{"channel_id", channel}, {"wamid", wamid}});
    tx.exec_params("SELECT parley_fold_statuses(r.channel_id, r.wamid) "
                   "FROM jsonb_to_recordset($1::jsonb) AS r(channel_id uuid, wamid text)",
                   persistence::json_rows(keys));
  }
  return std::vector<nlohmann::json>(rows.size(), nlohmann::json{{"stored", true}});
}

std::vector<nlohmann::json> mark_done(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  tx.exec_params(R"(
    UPDATE raw_webhook_events e
    SET processed_at = coalesce(e.processed_at, now()), outcome = r.outcome, error = nullif(r.error, '')
    FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, outcome text, error text)
    WHERE e.id = r.id)",
                 persistence::json_rows(rows));
  return std::vector<nlohmann::json>(rows.size(), nlohmann::json::object());
}

} // namespace

std::map<std::string, persistence::batch_fn> batch_handlers() {
  return {
    {raw_event_kind, store_raw_events},
    {message_kind, store_messages},
    {status_kind, store_statuses},
    {raw_event_done_kind, mark_done},
  };
}

nlohmann::json raw_event_row(const std::string& body, const std::string& channel_id,
                             const std::string& request_id) {
  return {{"body_b64", crypto::base64_encode(body)},
          {"channel_id", channel_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(channel_id)},
          {"request_id", request_id}};
}

nlohmann::json raw_event_done_row(int64_t id, std::string outcome, std::string error) {
  return {{"id", id}, {"outcome", std::move(outcome)}, {"error", std::move(error)}};
}

persistence::db_job unprocessed_events(int64_t after, int limit, int min_age_s) {
  return {"", true, [after, limit, min_age_s](pqxx::work& tx) {
            auto r = tx.exec_params(
              "SELECT coalesce(json_agg(json_build_object('id', id, 'channel_id', channel_id, "
              "'body_b64', translate(encode(body, 'base64'), E'\\n', '')) ORDER BY id), '[]')::text FROM ("
              "SELECT id, channel_id, body FROM raw_webhook_events "
              "WHERE processed_at IS NULL AND id > $1 "
              "AND received_at <= now() - make_interval(secs => $3) ORDER BY id LIMIT $2) x",
              after, limit, min_age_s);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

} // namespace parley::inbound_store
