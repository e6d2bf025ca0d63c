#pragma once
// Plan limits per tenant (migration 0006: plans, tenants.plan/limits, tenant_usage). Checks run
// inside the database job that creates the counted object, so the count and the insert see the
// same snapshot and concurrent creations of one tenant are serialised on its row.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <pqxx/transaction>

namespace parley::plan_limits {

/// The limits a plan (and a tenant's overrides) can set.
inline constexpr std::string_view channels = "channels";
inline constexpr std::string_view users = "users";
inline constexpr std::string_view messages_per_month = "messages_per_month";

/// Validates the body field `limits` of POST/PATCH /v1/tenants: an object whose keys are
/// channels, messages_per_month, users (null = unlimited, or an integer >= 0), api_rps (number
/// > 0) and api_burst (number >= 1). Throws app_error(invalid_argument) naming the key.
nlohmann::json validate_overrides(const nlohmann::json& limits);

/// Throws app_error(plan_limit_exceeded) naming `limit` and its value when the tenant already
/// has as many `limit` objects ("channels" or "users") as its plan allows; not_found when the
/// tenant does not exist. Locks the tenant's row until the transaction ends, so two concurrent
/// creations cannot both take the last slot. Call it in the job that inserts the object.
void require_room(pqxx::work& tx, const std::string& tenant_id, std::string_view limit);

/// Takes `n` outbound messages from the tenant's monthly allowance in this transaction (the
/// usage counter row), or throws app_error(plan_limit_exceeded) naming messages_per_month.
/// Inbound messages never count. For batch handlers that must not throw per row, the SQL
/// function `parley_take_messages(tenant_id, n) -> boolean` does the same.
void take_messages(pqxx::work& tx, const std::string& tenant_id, int n = 1);

/// A tenant's monthly outbound allowance as a batch sees it.
struct message_allowance {
  std::optional<long long> limit; ///< messages_per_month; nullopt = unlimited
  long long used = 0;             ///< taken this month before this transaction
};

/// For group-commit batch handlers mixing tenants: the allowance of each of `tenant_ids`; the
/// counter rows of tenants with a limit are locked until the transaction ends (two writers
/// cannot both hand out the last message), unlimited tenants' are not (used = 0 for them).
/// Tenants that no longer exist are absent. One statement per batch.
std::map<std::string, message_allowance>
lock_message_allowances(pqxx::work& tx, const std::set<std::string>& tenant_ids);

/// The message of a refusal for `messages_per_month` (API error code plan_limit_exceeded).
std::string messages_exhausted(long long limit);

} // namespace parley::plan_limits
