#pragma once
// SQL for WhatsApp channels. Secrets arrive here already sealed (AES-256-GCM) and never leave:
// the API shape has no secret fields, only whether an app secret is set.
#include <optional>
#include <string>

#include "persistence/messages.hpp"

namespace parley::channel_store {

struct new_channel {
  std::string tenant_id;
  std::string phone_number_id;
  std::string waba_id;
  std::string display_phone_number;
  std::string access_token_sealed;
  std::optional<std::string> app_secret_sealed;
  std::optional<std::string> graph_base_url;
  int throughput_mps = 80;
};

/// Inserts; conflict when the phone_number_id is already connected (to any tenant); not_found
/// when the tenant does not exist.
persistence::db_job create(new_channel c);
/// Channels of one tenant, keyset-paged by (created_at, id).
persistence::db_job list(std::string tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id);
/// One channel of one tenant; another tenant's channel is not_found.
persistence::db_job get(std::string tenant_id, std::string channel_id);

/// A change to a channel; secrets arrive sealed. Unset fields stay as they are.
struct channel_patch {
  std::optional<std::string> access_token_sealed;
  std::optional<std::string> app_secret_sealed;
  std::optional<std::string> graph_base_url;
  std::optional<int> throughput_mps;
};
/// Applies `p` to a channel of the tenant (not_found otherwise) and returns the channel.
persistence::db_job update(std::string tenant_id, std::string channel_id, channel_patch p);

/// Routing for inbound webhooks: {"tenant_id","channel_id"} of a phone_number_id; not_found.
persistence::db_job route(std::string phone_number_id);
/// {"tenant_id","app_secret_enc"|null} of a channel, for per-channel webhook signatures.
persistence::db_job webhook_secret(std::string channel_id);

} // namespace parley::channel_store

namespace parley::api_key_store {

/// Stores a new key's hash; returns {"id","name","prefix","created_at"}; not_found for no tenant.
persistence::db_job create(std::string tenant_id, std::string name, std::string prefix,
                           std::string key_hash);
/// Up to `limit_plus_one` keys of a tenant (revoked ones included, without secrets), oldest
/// first after the keyset position; rows carry "_cursor_time" for page_response().
persistence::db_job list(std::string tenant_id, int limit_plus_one,
                         std::optional<std::string> after_time,
                         std::optional<std::string> after_id);
/// One key of a tenant as list() shows it, or null.
persistence::db_job get(std::string tenant_id, std::string key_id);
/// Revokes; not_found when the key is not the tenant's.
persistence::db_job revoke(std::string tenant_id, std::string key_id);
/// Resolves a key hash to {"tenant_id","key_id"}; unauthorized when unknown, revoked or the
/// tenant is suspended.
persistence::db_job resolve(std::string key_hash);

} // namespace parley::api_key_store
