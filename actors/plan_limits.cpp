#include "actors/plan_limits.hpp"

#include <cmath>

#include "persistence/pg_array.hpp"
#include "persistence/prepared.hpp"
#include "runtime/errors.hpp"

namespace parley::plan_limits {

namespace {

// Usage keys of parley_tenant_usage() for the countable limits.
constexpr const char* select_room = R"(
  SELECT (parley_tenant_limits(t) ->> $2)::bigint, (parley_tenant_usage(t.id) ->> $2)::bigint
  FROM tenants t WHERE t.id = $1::uuid FOR NO KEY UPDATE)";

std::string exceeded_message(std::string_view limit, long long value, std::string_view what) {
  return "plan limit '" + std::string{limit} + "' reached (" + std::to_string(value) +
         "): " + std::string{what} +
         "; ask the platform admin to raise the tenant's plan or limits";
}

[[noreturn]] void exceeded(std::string_view limit, long long value, std::string_view what) {
  throw app_error(errc::plan_limit_exceeded, exceeded_message(limit, value, what));
}

} // namespace

nlohmann::json validate_overrides(const nlohmann::json& limits) {
  if (!limits.is_object())
    throw app_error(errc::invalid_argument,
                    "field 'limits' must be an object such as {\"channels\": 5, \"api_rps\": 20}");
  for (auto it = limits.begin(); it != limits.end(); ++it) {
    const auto& key = it.key();
    const auto& v = it.value();
    auto field = "field 'limits." + key + "'";
    if (key == channels || key == users || key == messages_per_month) {
      if (!v.is_null() && !(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                            v.get<int64_t>() <= 1'000'000'000'000LL))
        throw app_error(errc::invalid_argument,
                        field + " must be null (unlimited) or an integer >= 0");
    } else if (key == "api_rps" || key == "api_burst") {
      double min = key == "api_rps" ? 0.0 : 1.0;
      if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < min ||
          (key == "api_rps" && v.get<double>() == 0.0) || v.get<double>() > 1e6)
        throw app_error(errc::invalid_argument,
                        field + (key == "api_rps" ? " must be a number > 0 (requests per second)"
                                                  : " must be a number >= 1 (requests at once)"));
    } else {
      throw app_error(errc::invalid_argument,
                      "unknown limit 'limits." + key +
                          "'; known: channels, messages_per_month, users, api_rps, api_burst");
    }
  }
  return limits;
}

void require_room(pqxx::work& tx, const std::string& tenant_id, std::string_view limit) {
  auto r = tx.exec_params(select_room, tenant_id, std::string{limit});
  if (r.empty())
    throw app_error(errc::not_found, "tenant " + tenant_id + " not found");
  if (r[0][0].is_null())
    return; // unlimited
  auto max = r[0][0].as<long long>();
  auto used = r[0][1].is_null() ? 0LL : r[0][1].as<long long>();
  if (used >= max)
    exceeded(limit, max,
             "the tenant has " + std::to_string(used) + " " + std::string{limit} +
                 " (remove one first)");
}

void take_messages(pqxx::work& tx, const std::string& tenant_id, int n) {
  auto r = tx.exec_params("SELECT parley_take_messages($1::uuid, $2), "
                          "(SELECT (parley_tenant_limits(t) ->> 'messages_per_month')::bigint "
                          " FROM tenants t WHERE t.id = $1::uuid)",
                          tenant_id, n);
  if (!r[0][0].as<bool>())
    throw app_error(errc::plan_limit_exceeded,
                    messages_exhausted(r[0][1].is_null() ? 0LL : r[0][1].as<long long>()));
}

std::string messages_exhausted(long long limit) {
  return exceeded_message(messages_per_month, limit,
                          "this month's outbound messages are used up (inbound messages are "
                          "never limited; the allowance renews on the 1st, UTC)");
}

std::map<std::string, message_allowance>
lock_message_allowances(pqxx::work& tx, const std::set<std::string>& tenant_ids) {
  std::map<std::string, message_allowance> out;
  if (tenant_ids.empty())
    return out;
  // The limit is parley_tenant_limits(t) ->> 'messages_per_month' written out: a call of that
  // SQL function (not inlinable: its body has a subquery) planned its body again on every
  // execution, ~0.9 ms per accept batch. Only tenants with a monthly limit need their counter
  // locked (the no-op upsert creates a missing counter and locks it either way): for the others
  // nothing can run out, and a lock held to COMMIT would make every writer accepting for the same
  // tenant wait for the others.
  auto r = persistence::exec_prepared_sql(tx, "plan_lock_message_allowances", R"(
    WITH t AS (
      SELECT tn.id,
             ((jsonb_build_object('messages_per_month', p.messages_per_month) || tn.limits)
               ->> 'messages_per_month')::bigint AS lim
      FROM tenants tn LEFT JOIN plans p ON p.name = tn.plan
      WHERE tn.id = ANY($1::uuid[])
    ), u AS (
      INSERT INTO tenant_usage AS u (tenant_id, month, messages)
      SELECT t.id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 0 FROM t
      WHERE t.lim IS NOT NULL
      ON CONFLICT (tenant_id, month) DO UPDATE SET messages = u.messages
      RETURNING u.tenant_id, u.messages)
    SELECT t.id::text, t.lim, coalesce(u.messages, 0) FROM t LEFT JOIN u ON u.tenant_id = t.id)",
                                          persistence::pg_array(tenant_ids));
  for (const auto& row : r) {
    message_allowance a;
    if (!row[1].is_null())
      a.limit = row[1].as<long long>();
    a.used = row[2].as<long long>();
    out.emplace(row[0].c_str(), a);
  }
  return out;
}

} // namespace parley::plan_limits
