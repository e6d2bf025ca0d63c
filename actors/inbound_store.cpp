#include "actors/inbound_store.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <pqxx/pqxx>

#include "domain/uuid.hpp"
#include "persistence/json_rows.hpp"
#include "persistence/json_text.hpp"
#include "persistence/pg_array.hpp"
#include "persistence/prepared.hpp"

namespace parley::inbound_store {

namespace {

/// The row number of each row (results never rely on RETURNING order, which PostgreSQL does
/// not promise).
std::string numbered(size_t i) {
  return "\"i\":" + std::to_string(i);
}

/// Marks processed the raw events of rows that say "completes_event" (the event's only part),
/// in the statement that stores them: the mark commits with the part or not at all. An event is
/// processed once its id has left raw_webhook_events_pending (migration 0010). The id array is an
/// index condition whatever plan is cached (see store_messages_of).
#define PARLEY_MARK_EVENTS                                                                         \
  "marked AS (DELETE FROM raw_webhook_events_pending p "                                           \
  "WHERE p.id = ANY(ARRAY(SELECT r.raw_event_id FROM r WHERE r.completes_event)))"

/// Meta's message time as stored: out-of-range timestamps fall back to the arrival time.
#define PARLEY_META_TS(col)                                                                        \
  "CASE WHEN " col " > 0 AND " col " < 32503680000 THEN to_timestamp(" col ") ELSE now() END"

/// Stores the message rows of a batch in ONE statement: the contacts and conversations of rows
/// not "known", the messages, the counters of conversations that existed before, and the mark of
/// the raw events the rows complete. One statement instead of five saves four round trips,
/// executor start-ups and parses of the batch's JSON per batch, on the writer's critical path.
/// Each row carries its durable raw event's "raw_event_id".
/// `retry_unseen`: rows that found no conversation are stored again once (see the SQL).
std::vector<nlohmann::json>
store_messages_of(pqxx::work& tx, const std::vector<nlohmann::json>& rows, bool retry_unseen) {
  // New rows' ids ("mid" the message's; for a contact the actor does not know, "kid" its contact's
  // and "vid" its conversation's, used only if they are created) come from here, not from SQL.
  auto with_ids = [&](size_t i) {
    std::string m = numbered(i) + ",\"mid\":\"" + domain::uuid::new_time_ordered().str() + '"';
    if (!rows[i].value("known", false))
      m += ",\"kid\":\"" + domain::uuid::new_time_ordered().str() + "\",\"vid\":\"" +
           domain::uuid::new_time_ordered().str() + '"';
    return m;
  };
  auto param = persistence::json_rows(rows,
                                      {"tenant_id", "channel_id", "wa_id", "profile_name", "known",
                                       "wamid", "type", "content", "context", "ts", "raw_event_id",
                                       "completes_event"},
                                      with_ids);
  // All sub-statements run on one snapshot and cannot see each other's rows (PostgreSQL's rule
  // for data-modifying WITH): a conversation created here is found through `made` (its
  // RETURNING), not by a look-up, and is written once, with its counters and window already set
  // from the batch (none of its messages can be stored yet: messages belong to their
  // conversation), so the counters UPDATE leaves it out (it could not see it anyway).
  // Rows of contacts the conversation actor knows ("known") skip both upserts: an upsert that
  // changes nothing still locks and logs its row. A renamed contact's conversation takes the
  // new name in the counters UPDATE (one write of the row, not two, which one statement could
  // not do twice anyway). The conversation of a row is found through its unique index (LIMIT 1
  // keeps the LATERAL a per-row look-up; flattened, PostgreSQL may scan the table), and the
  // UPDATE names its rows by an id array and reads their values from JSON keyed by id: writer
  // sessions may not hash-join and a nested loop over the batch costs n * n (see
  // test_plan_stability); the id scan also locks rows in the same order in every writer. OFFSET 0
  // keeps the conversation's LATERAL a subquery of its own: pulled up, its expression was
  // evaluated twice per row (filter and insert), and with it the look-up.
  // A row whose conversation a concurrent transaction created after this snapshot finds none
  // and is left out; the caller stores it again in a new statement.
  // The contact and conversation part; `made` and `named` are what the rest reads of it. A batch
  // of known contacts only (the common case once a number is warm) has nothing to upsert and
  // takes them as constants: empty upserts still open their tables and indexes.
  static const std::string people = R"(, con AS (
      INSERT INTO contacts (id, tenant_id, wa_id, profile_name)
      SELECT DISTINCT ON (r.tenant_id, r.wa_id) r.kid, r.tenant_id, r.wa_id,
             nullif(r.profile_name, '')
      FROM r WHERE r.known IS NOT TRUE
      ORDER BY r.tenant_id, r.wa_id
      ON CONFLICT (tenant_id, wa_id) DO UPDATE
        SET profile_name = EXCLUDED.profile_name, updated_at = now()
        WHERE EXCLUDED.profile_name IS NOT NULL
          AND contacts.profile_name IS DISTINCT FROM EXCLUDED.profile_name
    ), per AS MATERIALIZED (
      SELECT r.tenant_id, r.channel_id, r.wa_id, (array_agg(r.vid))[1] AS vid,
             max(nullif(r.profile_name, '')) AS contact_name,
             count(DISTINCT r.wamid) AS n, max()" PARLEY_META_TS("r.ts") R"() AS ts
      FROM r WHERE r.known IS NOT TRUE GROUP BY r.tenant_id, r.channel_id, r.wa_id
    ), created AS (
      INSERT INTO conversations (id, tenant_id, channel_id, wa_id, contact_name, unread_count,
                                 last_inbound_at, last_message_at, window_expires_at)
      SELECT per.vid, per.tenant_id, per.channel_id, per.wa_id, per.contact_name, per.n, per.ts,
             per.ts,
             per.ts + interval '24 hours'
      FROM per ORDER BY per.channel_id, per.wa_id
      ON CONFLICT (channel_id, wa_id) DO NOTHING
      RETURNING id, channel_id, wa_id
    ), made AS MATERIALIZED (
      SELECT coalesce(jsonb_object_agg(channel_id::text || wa_id, id), '{}') AS m,
             coalesce(array_agg(id), '{}') AS ids
      FROM created
    ), named AS MATERIALIZED (
      SELECT coalesce(jsonb_object_agg(channel_id::text || wa_id, contact_name)
                        FILTER (WHERE contact_name IS NOT NULL), '{}') AS m
      FROM per
    ))";
  static const std::string no_people = R"(, made AS (SELECT '{}'::jsonb AS m, '{}'::uuid[] AS ids),
    named AS (SELECT '{}'::jsonb AS m))";
  static const std::string rows_and_marks = R"(
    WITH r AS MATERIALIZED (
      SELECT r.*
      FROM jsonb_to_recordset($1::jsonb) AS r(
        i int, tenant_id uuid, channel_id uuid, wa_id text, profile_name text, known boolean,
        wamid text, type text, content jsonb, context jsonb, ts bigint, raw_event_id bigint,
        completes_event boolean, mid uuid, kid uuid, vid uuid)
    ), )" PARLEY_MARK_EVENTS;
  static const std::string messages = R"(, ins AS (
      INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, wamid, type,
                            content, context, from_wa, status, meta_timestamp, raw_event_id)
      SELECT r.mid, r.tenant_id, c.id, r.channel_id, 'inbound', r.wamid, r.type, r.content,
             r.context, r.wa_id, 'received', )" PARLEY_META_TS("r.ts") R"(,
             r.raw_event_id
      FROM r CROSS JOIN made CROSS JOIN LATERAL (
        SELECT coalesce((made.m ->> (r.channel_id::text || r.wa_id))::uuid,
                        (SELECT id FROM conversations c
                         WHERE c.channel_id = r.channel_id AND c.wa_id = r.wa_id LIMIT 1)) AS id
        OFFSET 0
      ) c
      WHERE c.id IS NOT NULL
      ON CONFLICT (channel_id, wamid) WHERE wamid IS NOT NULL DO NOTHING
      RETURNING id, conversation_id, channel_id, wamid, meta_timestamp
    ), counts AS (
      SELECT ins.conversation_id, count(*) AS n, max(ins.meta_timestamp) AS ts
      FROM ins CROSS JOIN made WHERE NOT (ins.conversation_id = ANY(made.ids))
      GROUP BY ins.conversation_id
    ), per_conversation AS MATERIALIZED (
      SELECT jsonb_object_agg(conversation_id::text, jsonb_build_object('n', n, 'ts', ts)) AS m
      FROM counts
    ), upd AS (
      UPDATE conversations c
      SET (unread_count, last_inbound_at, last_message_at, window_expires_at, status,
           contact_name, updated_at) = (
        SELECT c.unread_count + v.n, greatest(c.last_inbound_at, v.ts),
               greatest(c.last_message_at, v.ts),
               greatest(c.last_inbound_at, v.ts) + interval '24 hours', 'open',
               coalesce(named.m ->> (c.channel_id::text || c.wa_id), c.contact_name), now()
        FROM jsonb_to_record(per_conversation.m -> c.id::text) AS v(n int, ts timestamptz))
      FROM per_conversation, named
      WHERE c.id = ANY(ARRAY(SELECT conversation_id FROM counts))
    )
    SELECT channel_id::text, wamid, id::text, conversation_id::text FROM ins)";
  static const std::string with_people = rows_and_marks + people + messages;
  static const std::string all_known = rows_and_marks + no_people + messages;
  bool any_unknown = std::any_of(rows.begin(), rows.end(),
                                 [](const nlohmann::json& r) { return !r.value("known", false); });
  auto out = any_unknown
                 ? persistence::exec_prepared_sql(tx, "inbound_messages_batch", with_people, param)
                 : persistence::exec_prepared_sql(tx, "inbound_messages_known", all_known, param);
  using key_t = std::pair<std::string, std::string>;
  std::map<key_t, std::pair<std::string, std::string>> ids;
  std::set<key_t> fresh;
  for (const auto& row : out) {
    key_t key{row[0].c_str(), row[1].c_str()};
    fresh.insert(key);
    ids[key] = {row[2].c_str(), row[3].c_str()};
  }
  auto key_of = [](const nlohmann::json& r) {
    return key_t{r["channel_id"].get<std::string>(), r["wamid"].get<std::string>()};
  };
  std::vector<nlohmann::json> missing;
  for (const auto& r : rows)
    if (auto key = key_of(r); !ids.count(key))
      missing.push_back({{"channel_id", key.first}, {"wamid", key.second}});
  if (!missing.empty()) {
    // Duplicates (Meta's retries, replays): the stored message's ids, seen by a new statement.
    auto all = persistence::exec_prepared_sql(tx, "inbound_message_ids", R"(
      SELECT r.channel_id::text, r.wamid, m.id::text, m.conversation_id::text
      FROM jsonb_to_recordset($1::jsonb) AS r(channel_id uuid, wamid text)
      CROSS JOIN LATERAL (
        SELECT id, conversation_id FROM messages m
        WHERE m.channel_id = r.channel_id AND m.wamid = r.wamid LIMIT 1) m)",
                                              persistence::json_rows(missing));
    for (const auto& row : all)
      ids[{row[0].c_str(), row[1].c_str()}] = {row[2].c_str(), row[3].c_str()};
  }
  // Rows still without a message found no conversation: a concurrent transaction created it
  // after this statement's snapshot. Stored again, once, in a statement that sees it.
  std::vector<size_t> again;
  std::vector<nlohmann::json> again_rows;
  if (retry_unseen)
    for (size_t i = 0; i < rows.size(); ++i)
      if (!ids.count(key_of(rows[i]))) {
        again.push_back(i);
        auto& copy = again_rows.emplace_back(rows[i]);
        copy["known"] = false;
      }
  std::vector<nlohmann::json> retried;
  if (!again_rows.empty())
    retried = store_messages_of(tx, again_rows, false);
  std::vector<nlohmann::json> results(rows.size());
  std::set<key_t> reported_new;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto key = key_of(rows[i]);
    auto it = ids.find(key);
    if (it == ids.end()) {
      auto pos = std::find(again.begin(), again.end(), i);
      if (pos == again.end())
        throw std::runtime_error("message " + key.second + " missing after insert");
      results[i] = std::move(retried[static_cast<size_t>(pos - again.begin())]);
    } else {
      // Two copies in one batch: the first is new, the second a duplicate.
      bool is_new = fresh.count(key) && reported_new.insert(key).second;
      results[i] = {{"message_id", it->second.first},
                    {"conversation_id", it->second.second},
                    {"duplicate", !is_new}};
    }
    // The mark commits with the row (the same statement, or its retry in this transaction).
    results[i]["event_marked"] = rows[i].value("completes_event", false);
  }
  return results;
}

std::vector<nlohmann::json> store_messages(pqxx::work& tx,
                                           const std::vector<nlohmann::json>& rows) {
  return store_messages_of(tx, rows, true);
}

/// Stores status reports, each once, and marks processed the raw events they complete, in one
/// statement; the messages they concern are then folded again from everything stored for them
/// (parley_fold_statuses: forward-only, failed terminal), the same fold the outbound path applies
/// when a send's wamid becomes known after its reports arrived. The fold is a statement of its
/// own: it must see the reports just inserted.
std::vector<nlohmann::json> store_statuses(pqxx::work& tx,
                                           const std::vector<nlohmann::json>& rows) {
  auto param = persistence::json_rows(rows,
                                      {"tenant_id", "channel_id", "wamid", "status", "recipient_id",
                                       "ts", "error_code", "error_title", "errors", "conversation",
                                       "pricing", "raw_event_id", "completes_event"},
                                      numbered);
  static const std::string sql = R"(
    WITH r AS MATERIALIZED (
      SELECT r.*
      FROM jsonb_to_recordset($1::jsonb) AS r(
        i int, tenant_id uuid, channel_id uuid, wamid text, status text, recipient_id text,
        ts bigint, error_code int, error_title text, errors jsonb, conversation jsonb,
        pricing jsonb, raw_event_id bigint, completes_event boolean)
    ), )" PARLEY_MARK_EVENTS R"(, ins AS (
      INSERT INTO message_status_events (tenant_id, channel_id, wamid, status, recipient_id,
        meta_timestamp, error_code, error_title, errors, conversation, pricing)
      SELECT r.tenant_id, r.channel_id, r.wamid, r.status, r.recipient_id,
             )" PARLEY_META_TS("r.ts") R"(,
             r.error_code, r.error_title, r.errors, r.conversation, r.pricing
      FROM r
      ON CONFLICT DO NOTHING
      RETURNING channel_id, wamid
    )
    SELECT channel_id::text, wamid FROM ins)";
  auto out = persistence::exec_prepared_sql(tx, "inbound_statuses_batch", sql, param);
  std::set<std::pair<std::string, std::string>> touched;
  std::vector<nlohmann::json> results;
  results.reserve(rows.size());
  for (const auto& r : rows)
    results.push_back({{"stored", true}, {"event_marked", r.value("completes_event", false)}});
  for (const auto& row : out)
    touched.emplace(row[0].c_str(), row[1].c_str());
  if (!touched.empty()) {
    std::vector<nlohmann::json> keys;
    for (const auto& [channel, wamid] : touched)
      keys.push_back({{"channel_id", channel}, {"wamid", wamid}});
    persistence::exec_prepared_sql(
        tx, "inbound_fold_statuses",
        "SELECT parley_fold_statuses(r.channel_id, r.wamid) "
        "FROM jsonb_to_recordset($1::jsonb) AS r(channel_id uuid, wamid text)",
        persistence::json_rows(keys));
  }
  return results;
}
#undef PARLEY_META_TS
#undef PARLEY_MARK_EVENTS

std::vector<nlohmann::json> mark_done(pqxx::work& tx, const std::vector<nlohmann::json>& rows) {
  // The id array is an index condition whatever plan is cached (see store_messages_of).
  std::vector<int64_t> ids;
  for (const auto& r : rows)
    ids.push_back(r["id"].get<int64_t>());
  persistence::exec_prepared_sql(tx, "inbound_raw_events_done", R"(
    WITH done AS (
      DELETE FROM raw_webhook_events_pending p WHERE p.id = ANY($2::bigint[])
    )
    UPDATE raw_webhook_events e
    SET processed_at = coalesce(e.processed_at, now()), outcome = r.outcome, error = nullif(r.error, '')
    FROM jsonb_to_recordset($1::jsonb) AS r(id bigint, outcome text, error text)
    WHERE e.id = r.id AND e.id = ANY($2::bigint[]))",
                                 persistence::json_rows(rows), persistence::pg_array(ids));
  return std::vector<nlohmann::json>(rows.size(), nlohmann::json::object());
}

} // namespace

std::map<std::string, persistence::batch_fn> batch_handlers() {
  return {
      {message_kind, store_messages},
      {status_kind, store_statuses},
      {raw_event_done_kind, mark_done},
  };
}

nlohmann::json message_row(const std::string& tenant_id, const std::string& channel_id,
                           const std::string& wa_id, domain::inbound_message& msg, bool known) {
  return {{"tenant_id", tenant_id},
          {"known", known},
          {"channel_id", channel_id},
          {"wa_id", wa_id},
          {"profile_name", msg.profile_name},
          {"wamid", msg.wamid},
          {"type", msg.type},
          {"content", std::move(msg.content)},
          {"context", std::move(msg.context)},
          {"ts", msg.timestamp}};
}

nlohmann::json raw_event_done_row(int64_t id, std::string outcome, std::string error) {
  return {{"id", id}, {"outcome", std::move(outcome)}, {"error", std::move(error)}};
}

persistence::db_job unprocessed_events(int64_t after, int limit, int min_age_s) {
  return {"", true, [after, limit, min_age_s](pqxx::work& tx) {
            auto r = tx.exec_params(
                "SELECT coalesce(json_agg(json_build_object('id', id, 'channel_id', channel_id, "
                "'body_b64', translate(encode(body, 'base64'), E'\\n', '')) ORDER BY id), "
                "'[]')::text FROM ("
                "SELECT e.id, e.channel_id, e.body FROM raw_webhook_events_pending p "
                "JOIN raw_webhook_events e ON e.id = p.id WHERE p.id > $1 "
                "AND e.received_at <= now() - make_interval(secs => $3) ORDER BY p.id LIMIT $2) x",
                after, limit, min_age_s);
            return nlohmann::json::parse(r[0][0].c_str());
          }};
}

persistence::db_job prune_raw_events(int days, int limit, int64_t after) {
  return {"", false, [days, limit, after](pqxx::work& tx) {
            // Pages of the oldest rows by primary key, not a search by received_at: ids grow
            // with time, so the head of the table is what ages out, and a table with nothing to
            // prune costs one short index scan instead of a full one (received_at has no index:
            // the hot path would pay for it). Unprocessed events in a page are stepped over.
            // Nodes pruning at once wait briefly for each other's row locks, then skip the rows
            // already gone.
            auto r = tx.exec_params(
                "WITH page AS MATERIALIZED (SELECT id, received_at "
                "FROM raw_webhook_events WHERE id > $3 ORDER BY id LIMIT $2), "
                "gone AS (DELETE FROM raw_webhook_events WHERE id IN ("
                "SELECT id FROM page WHERE NOT EXISTS (SELECT 1 FROM raw_webhook_events_pending "
                "p WHERE p.id = page.id) AND received_at < now() - make_interval(days => $1)) "
                "RETURNING 1) "
                "SELECT (SELECT count(*) FROM gone), coalesce((SELECT max(id) FROM page), $3), "
                "(SELECT count(*) FROM page) = $2 AND coalesce((SELECT received_at < now() - "
                "make_interval(days => $1) FROM page ORDER BY id DESC LIMIT 1), false)",
                days, limit, after);
            return nlohmann::json{{"deleted", r[0][0].as<int64_t>()},
                                  {"last_id", r[0][1].as<int64_t>()},
                                  {"more", r[0][2].as<bool>()}};
          }};
}

} // namespace parley::inbound_store
