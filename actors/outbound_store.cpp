#include "actors/outbound_store.hpp"

#include <map>
#include <set>

#include <pqxx/pqxx>

#include "actors/plan_limits.hpp"
#include "domain/uuid.hpp"
#include "persistence/json_rows.hpp"
#include "persistence/json_text.hpp"
#include "persistence/pg_array.hpp"
#include "persistence/prepared.hpp"
#include "runtime/errors.hpp"

namespace parley::outbound_store {

namespace {

using json = nlohmann::json;

using persistence::pg_array;

json reject(std::string_view code, std::string message) {
  return {{"reject", {{"code", code}, {"message", std::move(message)}}}};
}

std::string text_or_empty(const json& row, const char* key) {
  auto it = row.find(key);
  return it != row.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

/// Known client_message_ids of the batch's tenants: index -> existing message id.
std::map<size_t, std::string> known_client_ids(pqxx::work& tx, const std::vector<json>& rows,
                                               const std::vector<size_t>& todo) {
  std::vector<json> probe;
  for (auto i : todo)
    if (!text_or_empty(rows[i], "client_message_id").empty())
      probe.push_back(
          {{"i", i}, {"tenant_id", rows[i]["tenant_id"]}, {"cmid", rows[i]["client_message_id"]}});
  std::map<size_t, std::string> found;
  if (probe.empty())
    return found;
  auto r = persistence::exec_prepared_sql(tx, "outbound_known_client_ids", R"(
    SELECT r.i, m.id::text
    FROM jsonb_to_recordset($1::jsonb) AS r(i int, tenant_id uuid, cmid text)
    JOIN messages m ON m.tenant_id = r.tenant_id AND m.client_message_id = r.cmid)",
                                          persistence::json_rows(probe));
  for (const auto& row : r)
    found[row[0].as<size_t>()] = row[1].c_str();
  return found;
}

struct context_row {
  std::string conversation_id;
  bool window_open = false;
  std::string ref_id, ref_wamid, ref_direction, ref_from, ref_conversation;
};

/// Each row's conversation (by channel and recipient), whether its window is open, and the
/// message a reaction or read receipt refers to (by Parley id or wamid, same tenant and channel).
/// Templates may open a conversation with a contact who never wrote: their contacts and
/// conversations are created in the same statement (`open_templates`), which finds the ones it
/// created through their RETURNING (its snapshot cannot see them). A conversation another
/// transaction creates meanwhile is invisible to that snapshot too: such rows are looked up again
/// by a second statement.
std::map<size_t, context_row> contexts(pqxx::work& tx, const std::vector<json>& rows,
                                       const std::vector<size_t>& todo,
                                       bool open_templates = true) {
  std::vector<json> probe;
  for (auto i : todo)
    probe.push_back({{"i", i},
                     {"tenant_id", rows[i]["tenant_id"]},
                     {"channel_id", rows[i]["channel_id"]},
                     {"to_wa", rows[i]["to"]},
                     {"template", open_templates && rows[i]["type"] == "template"},
                     {"ref_id", rows[i].value("ref_id", json(nullptr))},
                     {"ref_wamid", rows[i].value("ref_wamid", json(nullptr))}});
  // Every look-up goes through a unique index (LATERAL): the batch's size is unknown to the
  // planner, and a hash join would scan every conversation or message of the node. LIMIT 1
  // stops PostgreSQL from flattening the subquery back into such a join. The conversation of a
  // template row created here is read from `made` (keyed by channel and recipient) instead.
  auto r = persistence::exec_prepared_sql(tx, "outbound_contexts", R"(
    WITH r AS MATERIALIZED (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(i int, tenant_id uuid, channel_id uuid,
                                                       to_wa text, template bool, ref_id uuid,
                                                       ref_wamid text)
    ), con AS (
      INSERT INTO contacts (tenant_id, wa_id)
      SELECT DISTINCT r.tenant_id, r.to_wa FROM r WHERE r.template
      ORDER BY 1, 2
      ON CONFLICT (tenant_id, wa_id) DO NOTHING
    ), created AS (
      INSERT INTO conversations (tenant_id, channel_id, wa_id)
      SELECT DISTINCT r.tenant_id, r.channel_id, r.to_wa FROM r WHERE r.template
      ORDER BY 2, 3
      ON CONFLICT (channel_id, wa_id) DO NOTHING
      RETURNING id, channel_id, wa_id
    ), made AS MATERIALIZED (
      SELECT coalesce(jsonb_object_agg(channel_id::text || wa_id, id), '{}') AS m FROM created
    )
    SELECT r.i, coalesce(made.m ->> (r.channel_id::text || r.to_wa), c.id::text),
           coalesce(c.window_expires_at > now(), false),
           ref.id::text, ref.wamid, ref.direction, ref.from_wa, ref.conversation_id::text
    FROM r CROSS JOIN made
    LEFT JOIN LATERAL (
      SELECT id, window_expires_at FROM conversations c
      WHERE NOT (made.m ? (r.channel_id::text || r.to_wa))
        AND c.channel_id = r.channel_id AND c.wa_id = r.to_wa LIMIT 1) c ON true
    LEFT JOIN LATERAL (
      SELECT m.id, m.wamid, m.direction, m.from_wa, m.conversation_id FROM messages m
      WHERE r.ref_id IS NOT NULL AND m.id = r.ref_id
        AND m.tenant_id = r.tenant_id AND m.channel_id = r.channel_id
      UNION ALL
      SELECT m.id, m.wamid, m.direction, m.from_wa, m.conversation_id FROM messages m
      WHERE r.ref_wamid IS NOT NULL AND m.channel_id = r.channel_id AND m.wamid = r.ref_wamid
        AND m.tenant_id = r.tenant_id
      LIMIT 1) ref ON true)",
                                          persistence::json_rows(probe));
  std::map<size_t, context_row> out;
  std::vector<size_t> unseen;
  for (const auto& row : r) {
    context_row c;
    auto text = [&row](int col) {
      return row[col].is_null() ? std::string{} : std::string{row[col].c_str()};
    };
    c.conversation_id = text(1);
    c.window_open = row[2].as<bool>();
    c.ref_id = text(3);
    c.ref_wamid = text(4);
    c.ref_direction = text(5);
    c.ref_from = text(6);
    c.ref_conversation = text(7);
    auto i = row[0].as<size_t>();
    if (open_templates && c.conversation_id.empty() && rows[i]["type"] == "template")
      unseen.push_back(i);
    out[i] = std::move(c);
  }
  if (!unseen.empty())
    for (auto& [i, c] : contexts(tx, rows, unseen, false))
      out[i] = std::move(c);
  return out;
}

/// A row that passed the checks, with what accept() resolved for it (its payload is kept apart,
/// for the channel's queue).
struct accepted_row {
  size_t i = 0; ///< index in the batch
  bool is_read = false;
  std::string conversation_id;
  std::string to;
  std::string ref_id; ///< a read receipt's message
};

/// The outbound_accept statement's rows, written as JSON text straight from the batch's rows:
/// building a JSON object per row first copied each content and payload twice more, on the
/// writer's critical path.
std::string accept_rows(const std::vector<json>& rows, const std::vector<accepted_row>& accepted,
                        const std::map<size_t, json>& payload_of) {
  std::string out = "[";
  auto member = [&out](std::string_view key, const json& value) {
    out += ",\"";
    out += key;
    out += "\":";
    persistence::append_json(out, value);
  };
  auto text_member = [&out](std::string_view key, std::string_view text) {
    out += ",\"";
    out += key;
    out += "\":";
    persistence::append_json_string(out, text);
  };
  auto optional_member = [&member](std::string_view key, const json& row, const char* from,
                                   const json& otherwise) {
    auto it = row.find(from);
    member(key, it != row.end() ? *it : otherwise);
  };
  static const json null_value = nullptr;
  static const json false_value = false;
  for (const auto& a : accepted) {
    const auto& row = rows[a.i];
    if (out.size() > 1)
      out += ',';
    out += "{\"i\":" + std::to_string(a.i);
    if (a.is_read)
      member("new_id", null_value);
    else
      text_member("new_id", domain::uuid::new_time_ordered().str());
    member("tenant_id", row.at("tenant_id"));
    member("channel_id", row.at("channel_id"));
    text_member("conversation_id", a.conversation_id);
    text_member("to_wa", a.to);
    member("type", row.at("type"));
    member("content", row.at("content"));
    member("payload", payload_of.at(a.i));
    optional_member("cmid", row, "client_message_id", null_value);
    optional_member("dispatch", row, "dispatch", false_value);
    member("kind", row.at("kind"));
    if (a.is_read)
      text_member("ref_id", a.ref_id);
    else
      member("ref_id", null_value);
    out += '}';
  }
  out += ']';
  return out;
}

std::vector<json> accept(pqxx::work& tx, const std::vector<json>& rows) {
  std::vector<json> results(rows.size());
  std::vector<size_t> todo;
  // A key repeated inside one batch: the first occurrence is the message, the rest its duplicates.
  std::map<std::pair<std::string, std::string>, size_t> first_of_key;
  std::map<size_t, size_t> same_as;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto cmid = text_or_empty(rows[i], "client_message_id");
    if (!cmid.empty()) {
      auto [it, fresh] =
          first_of_key.emplace(std::pair{rows[i]["tenant_id"].get<std::string>(), cmid}, i);
      if (!fresh) {
        same_as[i] = it->second;
        continue;
      }
    }
    todo.push_back(i);
  }

  auto known = known_client_ids(tx, rows, todo);
  std::vector<size_t> fresh;
  for (auto i : todo) {
    if (auto it = known.find(i); it != known.end())
      results[i] = {{"message_id", it->second}, {"duplicate", true}};
    else
      fresh.push_back(i);
  }

  std::vector<accepted_row> inserts;
  std::map<size_t, json> payload_of; // with references resolved, for the channel's queue
  if (!fresh.empty()) {
    auto ctx = contexts(tx, rows, fresh);
    for (auto i : fresh) {
      const auto& row = rows[i];
      const auto& c = ctx[i];
      bool is_read = row["kind"] == "read";
      bool has_ref = !row.value("ref_id", json(nullptr)).is_null() ||
                     !row.value("ref_wamid", json(nullptr)).is_null();
      json payload = row["payload"];
      std::string to = text_or_empty(row, "to");
      std::string conversation = c.conversation_id;
      if (has_ref) {
        if (c.ref_id.empty()) {
          results[i] = reject("not_found", "message " + text_or_empty(row, "ref_id") +
                                               text_or_empty(row, "ref_wamid") +
                                               " not found on this channel");
          continue;
        }
        if (c.ref_wamid.empty()) {
          results[i] = reject("unprocessable", "message " + c.ref_id +
                                                   " has no WhatsApp id yet (it was not sent); "
                                                   "retry once it is sent");
          continue;
        }
        if (is_read) {
          if (c.ref_direction != "inbound") {
            results[i] = reject("unprocessable", "only inbound messages can be marked as read");
            continue;
          }
          to = c.ref_from;
          conversation = c.ref_conversation;
          payload["message_id"] = c.ref_wamid;
        } else {
          payload["reaction"]["message_id"] = c.ref_wamid;
        }
      }
      if (row.value("needs_window", true) && !c.window_open) {
        results[i] = reject("outside_window",
                            "the 24-hour customer service window with " + to +
                                " is closed (the customer has not written in the last 24 hours): "
                                "send a template message (\"type\":\"template\") instead");
        continue;
      }
      if (conversation.empty()) {
        // Only a template reaches here without a conversation, and it created one above.
        results[i] = reject("unprocessable", "no conversation with " + to + " on this channel");
        continue;
      }
      inserts.push_back(
          {i, is_read, std::move(conversation), std::move(to), is_read ? c.ref_id : std::string{}});
      payload_of[i] = std::move(payload);
    }
  }

  // The plan's monthly allowance (messages_per_month): rows past it are refused, in batch order;
  // the counters stay locked until COMMIT, so concurrent writers cannot both hand out the last.
  if (!inserts.empty()) {
    std::set<std::string> senders;
    for (const auto& ins : inserts)
      if (!ins.is_read)
        senders.insert(rows[ins.i]["tenant_id"].get<std::string>());
    auto allowance = plan_limits::lock_message_allowances(tx, senders);
    std::vector<accepted_row> within;
    for (auto& ins : inserts) {
      if (!ins.is_read) {
        auto it = allowance.find(rows[ins.i]["tenant_id"].get<std::string>());
        if (it != allowance.end() && it->second.limit) {
          if (it->second.used >= *it->second.limit) {
            auto i = ins.i;
            results[i] =
                reject("plan_limit_exceeded", plan_limits::messages_exhausted(*it->second.limit));
            payload_of.erase(i);
            continue;
          }
          ++it->second.used;
        }
      }
      within.push_back(std::move(ins));
    }
    inserts = std::move(within);
  }

  std::set<size_t> raced;
  if (!inserts.empty()) {
    // A message's id comes from Parley ("new_id", time-ordered like the inbound ones; a read
    // receipt's row is keyed by the message it reads); outbox ids are drawn in one materialised
    // step so both inserts and the answer agree on them. A
    // client_message_id committed meanwhile by another writer skips its row (no outbox either).
    // The conversations of the rows accepted are updated by primary key (an id array from an
    // InitPlan: an index condition whatever plan is cached): a reply moves last_message_at, a
    // read receipt clears the unread count.
    auto r = persistence::exec_prepared_sql(tx, "outbound_accept", R"(
      WITH r AS (
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
          i int, tenant_id uuid, channel_id uuid, conversation_id uuid, to_wa text, type text,
          content jsonb, payload jsonb, cmid text, kind text, ref_id uuid, dispatch bool,
          new_id uuid)
      ), ids AS MATERIALIZED (
        SELECT r.*, CASE WHEN r.kind = 'read' THEN r.ref_id ELSE r.new_id END AS mid,
               nextval('outbox_id_seq') AS oid
        FROM r
      ), msg AS (
        INSERT INTO messages (id, tenant_id, conversation_id, channel_id, direction, type, content,
                              to_wa, status, client_message_id)
        SELECT mid, tenant_id, conversation_id, channel_id, 'outbound', type, content, to_wa,
               'pending', cmid
        FROM ids WHERE kind = 'message'
        ON CONFLICT (tenant_id, client_message_id) WHERE client_message_id IS NOT NULL DO NOTHING
        RETURNING id
      ), box AS (
        INSERT INTO outbox (id, tenant_id, channel_id, message_id, kind, to_wa, payload,
                            dispatched_attempt)
        SELECT oid, tenant_id, channel_id, mid, kind, to_wa, payload,
               CASE WHEN dispatch THEN 1 ELSE 0 END FROM ids
        WHERE kind = 'read' OR mid IN (SELECT id FROM msg)
        RETURNING id
      ), used AS (
        -- The plan's monthly counter, in this statement rather than a round trip of its own:
        -- only messages really inserted count (not a client_message_id raced by another writer,
        -- not read receipts). Tenants in id order, so concurrent writers lock alike.
        INSERT INTO tenant_usage AS u (tenant_id, month, messages)
        SELECT tenant_id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, count(*)
        FROM ids WHERE kind = 'message' AND mid IN (SELECT id FROM msg)
        GROUP BY tenant_id ORDER BY tenant_id
        ON CONFLICT (tenant_id, month) DO UPDATE SET messages = u.messages + excluded.messages
      ), done AS MATERIALIZED (
        SELECT conversation_id, kind FROM ids WHERE oid IN (SELECT id FROM box)
      ), upd AS (
        UPDATE conversations c
        SET last_message_at = CASE WHEN c.id = ANY(ARRAY(
                SELECT conversation_id FROM done WHERE kind = 'message'))
              THEN now() ELSE c.last_message_at END,
            unread_count = CASE WHEN c.id = ANY(ARRAY(
                SELECT conversation_id FROM done WHERE kind = 'read'))
              THEN 0 ELSE c.unread_count END,
            updated_at = now()
        WHERE c.id = ANY(ARRAY(SELECT conversation_id FROM done))
      )
      SELECT i, mid::text, conversation_id::text, oid, to_wa, oid IN (SELECT id FROM box),
             parley_ts(now())
      FROM ids)",
                                            accept_rows(rows, inserts, payload_of));
    for (const auto& row : r) {
      auto i = row[0].as<size_t>();
      if (!row[5].as<bool>()) {
        raced.insert(i);
        continue;
      }
      results[i] = {{"message_id", row[1].c_str()},
                    {"conversation_id", row[2].c_str()},
                    {"outbox_id", row[3].as<int64_t>()},
                    {"to", row[4].c_str()},
                    {"created_at", row[6].c_str()},
                    {"payload", std::move(payload_of[i])},
                    {"duplicate", false}};
    }
  }
  if (!raced.empty()) {
    auto again = known_client_ids(tx, rows, std::vector<size_t>(raced.begin(), raced.end()));
    for (auto i : raced) {
      if (auto it = again.find(i); it != again.end())
        results[i] = {{"message_id", it->second}, {"duplicate", true}};
      else
        throw std::runtime_error("outbound message vanished after a client_message_id conflict");
    }
  }
  for (auto [dup, first] : same_as) {
    const auto& r = results[first];
    if (r.contains("message_id"))
      results[dup] = {{"message_id", r["message_id"]}, {"duplicate", true}};
    else
      results[dup] = r;
  }
  return results;
}

std::vector<json> mark_dispatched(pqxx::work& tx, const std::vector<json>& rows) {
  std::vector<int64_t> ids;
  for (const auto& r : rows)
    ids.push_back(r["outbox_id"].get<int64_t>());
  persistence::exec_prepared_sql(tx, "outbound_mark_dispatched", R"(
    UPDATE outbox o SET dispatched_attempt = greatest(o.dispatched_attempt, r.attempt)
    FROM jsonb_to_recordset($1::jsonb) AS r(outbox_id bigint, attempt int)
    WHERE o.id = r.outbox_id AND o.id = ANY($2::bigint[]))",
                                 persistence::json_rows(rows), pg_array(ids));
  return std::vector<json>(rows.size(), json::object());
}

/// Adds `"key":value` to the text of a JSON object being built (from "{"; close it with '}').
void append_member(std::string& object, std::string_view key, const json& value) {
  if (object.size() > 1)
    object += ',';
  persistence::append_json_string(object, key);
  object += ':';
  persistence::append_json(object, value);
}

std::vector<json> record_results(pqxx::work& tx, const std::vector<json>& rows) {
  auto param = persistence::json_rows(rows);
  // The messages and outbox rows are named by id arrays (index conditions whatever plan is
  // cached) and take their values from JSON objects keyed by id, so no statement joins the batch
  // to a table: writer sessions may not hash-join, and a nested loop over the batch costs n * n
  // (about 1 ms of a 25-row batch). The scans by id array also lock rows in the same (physical)
  // order in every writer; a hash join probing in batch order deadlocked two writers.
  std::set<std::string> message_ids;
  std::vector<int64_t> done_ids, retry_ids;
  std::string by_message = "{", by_outbox = "{";
  for (const auto& r : rows) {
    bool final = r.value("final", false);
    auto outbox_id = r["outbox_id"].get<int64_t>();
    if (final) {
      done_ids.push_back(outbox_id);
    } else {
      retry_ids.push_back(outbox_id);
      append_member(by_outbox, std::to_string(outbox_id),
                    json{{"attempt", r["attempt"]},
                         {"failures", r.value("failures", 0)},
                         {"next_in_ms", r.value("next_in_ms", json())}});
    }
    if (r["kind"] == "message") {
      const auto& id = r["message_id"].get_ref<const std::string&>();
      message_ids.insert(id);
      append_member(by_message, id,
                    json{{"outcome", r["outcome"]},
                         {"final", final},
                         {"wamid", r.value("wamid", json())},
                         {"error_code", r.value("error_code", json())},
                         {"error_title", r.value("error_title", json())},
                         {"attempt", r["attempt"]}});
    }
  }
  by_message += '}';
  by_outbox += '}';
  // Forward-only: a message leaves pending once (sent or failed); status webhooks may already
  // have moved it further, which the CASE keeps.
  persistence::exec_prepared_sql(tx, "outbound_record_results", R"(
    WITH r AS (
      SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
        outbox_id bigint, attempt int, tenant_id uuid, channel_id uuid, message_id uuid, kind text,
        outcome text, http_status int, error_code int, error_title text, wamid text,
        started_ms bigint, latency_ms int)
    ), att AS (
      INSERT INTO delivery_attempts (outbox_id, attempt, tenant_id, channel_id, message_id, kind,
        outcome, http_status, error_code, error_title, wamid, started_at, latency_ms)
      SELECT outbox_id, attempt, tenant_id, channel_id, message_id, kind, outcome, http_status,
             error_code, error_title, wamid, to_timestamp(started_ms / 1000.0), latency_ms
      FROM r
      ON CONFLICT (outbox_id, attempt) DO NOTHING
    ), msg AS (
      UPDATE messages m
      SET (status, wamid, sent_at, failed_at, error_code, error_title, attempts) = (
        SELECT CASE WHEN m.status = 'pending' AND v.outcome = 'sent' THEN 'sent'
                    WHEN m.status = 'pending' AND v.outcome = 'failed' AND v.final THEN 'failed'
                    ELSE m.status END,
               coalesce(m.wamid, v.wamid),
               CASE WHEN v.outcome = 'sent' THEN coalesce(m.sent_at, now()) ELSE m.sent_at END,
               CASE WHEN v.outcome = 'failed' AND v.final THEN coalesce(m.failed_at, now())
                    ELSE m.failed_at END,
               CASE WHEN v.outcome = 'failed' AND v.final THEN v.error_code ELSE m.error_code END,
               CASE WHEN v.outcome = 'failed' AND v.final THEN v.error_title ELSE m.error_title END,
               greatest(m.attempts, v.attempt)
        FROM jsonb_to_record($3::jsonb -> m.id::text) AS v(
          outcome text, final bool, wamid text, error_code int, error_title text, attempt int))
      WHERE m.id = ANY($2::uuid[])
    ), done AS (
      DELETE FROM outbox o WHERE o.id = ANY($4::bigint[])
    )
    UPDATE outbox o
    SET (attempts, failures, next_attempt_at) = (
      SELECT greatest(o.attempts, v.attempt), greatest(o.failures, v.failures),
             now() + make_interval(secs => coalesce(v.next_in_ms, 0) / 1000.0)
      FROM jsonb_to_record($5::jsonb -> o.id::text) AS v(attempt int, failures int,
                                                          next_in_ms bigint))
    WHERE o.id = ANY($6::bigint[]))",
                                 param, pg_array(message_ids), by_message, pg_array(done_ids),
                                 by_outbox, pg_array(retry_ids));
  // Status webhooks that overtook this commit were stored but matched no wamid yet.
  persistence::exec_prepared_sql(tx, "outbound_fold_statuses", R"(
    SELECT parley_fold_statuses(r.channel_id, r.wamid)
    FROM jsonb_to_recordset($1::jsonb) AS r(channel_id uuid, wamid text, kind text, outcome text)
    WHERE r.kind = 'message' AND r.outcome = 'sent' AND r.wamid IS NOT NULL
      AND EXISTS (SELECT 1 FROM message_status_events e
                  WHERE e.channel_id = r.channel_id AND e.wamid = r.wamid))",
                                 param);
  return std::vector<json>(rows.size(), json::object());
}

json parse_first(const pqxx::result& r) {
  return json::parse(r[0][0].c_str());
}

} // namespace

std::map<std::string, persistence::batch_fn> batch_handlers() {
  return {
      {accept_kind, accept},
      {dispatch_kind, mark_dispatched},
      {result_kind, record_results},
  };
}

persistence::db_job load_channel(std::string tenant_id, std::string channel_id) {
  return {tenant_id, true, [tenant_id, channel_id](pqxx::work& tx) {
            auto r = tx.exec_params(R"(
              SELECT json_build_object('tenant_id', tenant_id, 'id', id,
                'phone_number_id', phone_number_id, 'display_phone_number', display_phone_number,
                'access_token_enc', access_token_enc, 'graph_base_url', graph_base_url,
                'throughput_mps', throughput_mps, 'state', state)::text
              FROM channels WHERE tenant_id = $1::uuid AND id = $2::uuid)",
                                    tenant_id, channel_id);
            if (r.empty())
              throw app_error(errc::not_found, "channel " + channel_id + " not found");
            return parse_first(r);
          }};
}

persistence::db_job load_outbox(std::string tenant_id, std::string channel_id, int64_t after_id,
                                int limit) {
  return {tenant_id, true, [=](pqxx::work& tx) {
            auto r = tx.exec_params(R"(
              SELECT coalesce(json_agg(json_build_object(
                'id', id, 'message_id', message_id, 'kind', kind, 'to', to_wa, 'payload', payload,
                'attempts', attempts, 'failures', failures, 'dispatched_attempt', dispatched_attempt,
                'due_in_ms', greatest(0, coalesce(
                  (extract(epoch FROM next_attempt_at - now()) * 1000)::bigint, 0)))
                ORDER BY id), '[]')::text
              FROM (SELECT * FROM outbox WHERE channel_id = $1::uuid AND id > $2
                    ORDER BY id LIMIT $3) o)",
                                    channel_id, after_id, limit);
            return parse_first(r);
          }};
}

persistence::db_job set_channel_state(std::string tenant_id, std::string channel_id,
                                      std::string state, std::string reason) {
  return {tenant_id, false, [=](pqxx::work& tx) {
            tx.exec_params("UPDATE channels SET state = $3, state_reason = nullif($4, ''), "
                           "state_changed_at = now(), updated_at = now() "
                           "WHERE tenant_id = $1::uuid AND id = $2::uuid",
                           tenant_id, channel_id, state, reason);
            return json{{"state", state}};
          }};
}

persistence::db_job channel_ids(std::string tenant_id) {
  return {tenant_id, true, [tenant_id](pqxx::work& tx) {
            auto r = tx.exec_params("SELECT coalesce(json_agg(id::text ORDER BY created_at), "
                                    "'[]')::text FROM channels WHERE tenant_id = $1::uuid",
                                    tenant_id);
            return parse_first(r);
          }};
}

persistence::db_job tenants_with_channels() {
  return {"", true, [](pqxx::work& tx) {
            auto r = tx.exec(
                "SELECT coalesce(json_agg(DISTINCT c.tenant_id::text), '[]')::text FROM channels c "
                "JOIN tenants t ON t.id = c.tenant_id WHERE t.status = 'active'");
            return parse_first(r);
          }};
}

persistence::db_job sole_channel(std::string tenant_id) {
  return {tenant_id, true, [tenant_id](pqxx::work& tx) {
            auto r = tx.exec_params(
                "SELECT id::text FROM channels WHERE tenant_id = $1::uuid LIMIT 2", tenant_id);
            if (r.empty())
              throw app_error(errc::invalid_argument,
                              "this tenant has no channel yet: connect a WhatsApp number first");
            if (r.size() > 1)
              throw app_error(errc::invalid_argument,
                              "field 'channel_id' is required: this tenant has several channels");
            return json{{"channel_id", r[0][0].c_str()}};
          }};
}

persistence::db_job attempts(std::string tenant_id, std::string message_id) {
  return {tenant_id, true, [tenant_id, message_id](pqxx::work& tx) {
            auto m = tx.exec_params(
                "SELECT 1 FROM messages WHERE tenant_id = $1::uuid AND id = $2::uuid", tenant_id,
                message_id);
            if (m.empty())
              throw app_error(errc::not_found, "message " + message_id + " not found");
            auto r = tx.exec_params(R"(
              SELECT coalesce(json_agg(json_build_object(
                'attempt', attempt, 'kind', kind, 'outcome', outcome, 'http_status', http_status,
                'error_code', error_code, 'error_title', error_title, 'wamid', wamid,
                'started_at', parley_ts(started_at), 'latency_ms', latency_ms)
                ORDER BY started_at, attempt), '[]')::text
              FROM delivery_attempts WHERE tenant_id = $1::uuid AND message_id = $2::uuid)",
                                    tenant_id, message_id);
            return json{{"data", parse_first(r)}, {"next_cursor", nullptr}};
          }};
}

} // namespace parley::outbound_store
