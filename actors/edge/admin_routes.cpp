#include <regex>

#include "actors/audit_store.hpp"
#include "actors/channel_store.hpp"
#include "actors/edge/actor_status.hpp"
#include "actors/edge/auth.hpp"
#include "actors/edge/key_cache.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "actors/interfaces.hpp"
#include "actors/plan_limits.hpp"
#include "actors/tenant_store.hpp"
#include "domain/crypto.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

namespace {

const std::regex& slug_pattern() {
  static const std::regex re{"^[a-z0-9][a-z0-9-]{0,62}$"};
  return re;
}

void create_tenant(const context_ptr& ctx, const principal& p, http::request&& req,
                   http::responder respond) {
  auto body = json_body(req);
  only_fields(body, {"name", "slug", "plan", "limits"});
  auto name = required_string(body, "name", 200);
  auto slug = required_string(body, "slug", 63);
  if (!std::regex_match(slug, slug_pattern()))
    throw app_error(errc::invalid_argument, "field 'slug' must be 1-63 characters of a-z, 0-9 and "
                                            "'-', starting with a letter or digit");
  auto plan = optional_string(body, "plan", 63);
  std::optional<nlohmann::json> limits;
  if (body.contains("limits") && !body["limits"].is_null())
    limits = plan_limits::validate_overrides(body["limits"]);
  run_job(ctx,
          audit_store::audited(tenant_store::create(std::move(name), std::move(slug), plan, limits),
                               audit_event(p, req, "tenant.create", "tenant", "")),
          respond, 201);
}

void list_tenants(const context_ptr& ctx, const principal&, http::request&& req,
                  http::responder respond) {
  auto page = page_params(req);
  run_page(ctx, tenant_store::list(page.limit + 1, page.after_time, page.after_id), page.limit,
           respond);
}

void get_tenant(const context_ptr& ctx, const principal& p, http::request&& req,
                http::responder respond) {
  auto id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, id);
  ask_tenant_actor<nlohmann::json>(
      ctx, id, respond, [respond](nlohmann::json& t) { respond(http::response::json(200, t)); },
      [respond](caf::error& err) { reply_error(respond, err); }, 3, get_atom::value);
}

/// `respond`, after forgetting cached API-key resolutions: for changes that may revoke keys or
/// change their rates (revocation, suspension, deletion, plan). Runs once the change committed.
http::responder clearing_keys(const context_ptr& ctx, http::responder respond) {
  return http::responder{[ctx, respond](http::response r) {
    if (ctx->key_cache)
      ctx->key_cache->clear();
    respond(std::move(r));
  }};
}

void patch_tenant(const context_ptr& ctx, const principal& p, http::request&& req,
                  http::responder respond) {
  auto id = uuid_param(req, "id", "tenant");
  auto body = json_body(req);
  only_fields(body, {"name", "status", "plan", "limits"});
  nlohmann::json patch = nlohmann::json::object();
  if (auto plan = optional_string(body, "plan", 63))
    patch["plan"] = *plan;
  if (body.contains("limits"))
    patch["limits"] = body["limits"].is_null() ? nlohmann::json(nullptr)
                                               : plan_limits::validate_overrides(body["limits"]);
  if (auto name = optional_string(body, "name", 200))
    patch["name"] = *name;
  if (auto status = optional_string(body, "status", 20)) {
    if (*status != "active" && *status != "suspended")
      throw app_error(errc::invalid_argument, "field 'status' must be 'active' or 'suspended'");
    patch["status"] = *status;
  }
  // Written here rather than through the tenant actor, so the change and its audit entry share
  // one transaction; the actor then reloads its copy.
  // Validation is done: from here on the answer comes from the committed change.
  respond = clearing_keys(ctx, std::move(respond));
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, id](nlohmann::json& t) {
        caf::anon_send(ctx->ingest->get(), reload_atom::value); // suspension stops routing
        runtime::ask<caf::actor>(
            *ctx->relays, ctx->tenants->get(), ctx->actor_timeout,
            [](caf::actor& tenant) { caf::anon_send(tenant, reload_atom::value); },
            [](caf::error&) {}, tenant_atom::value, id);
        respond(http::response::json(200, t));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      audit_store::audited(tenant_store::update(id, patch),
                           audit_event(p, req, "tenant.update", "tenant", id, id),
                           [id](pqxx::work& tx) { return tenant_store::load(id).fn(tx); }));
}

void delete_tenant(const context_ptr& ctx, const principal& p, http::request&& req,
                   http::responder respond) {
  auto id = uuid_param(req, "id", "tenant");
  // Validation is done: from here on the answer comes from the committed change.
  respond = clearing_keys(ctx, std::move(respond));
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, id](nlohmann::json&) {
        // The row is gone; stop the actor so no stale copy keeps answering, and let ingest
        // forget the tenant's numbers.
        caf::anon_send(ctx->tenants->get(), evict_atom::value, id);
        caf::anon_send(ctx->ingest->get(), reload_atom::value);
        respond(http::response::no_content());
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      audit_store::audited(
          tenant_store::remove(id), audit_event(p, req, "tenant.delete", "tenant", id, id),
          [id](pqxx::work& tx) { return tenant_store::load(id).fn(tx); },
          [](const nlohmann::json&) { return nlohmann::json(nullptr); }));
}

void create_api_key(const context_ptr& ctx, const principal& p, http::request&& req,
                    http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  auto body = json_body(req);
  only_fields(body, {"name"});
  auto name = required_string(body, "name", 200);
  auto key = crypto::generate_api_key();
  auto prefix = key.substr(0, 12);
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [respond, key](nlohmann::json& created) {
        // The only time the key is ever shown.
        created["key"] = key;
        respond(http::response::json(201, created));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      audit_store::audited(
          api_key_store::create(tenant_id, name, prefix, crypto::api_key_hash(key)),
          audit_event(p, req, "api_key.create", "api_key", tenant_id)));
}

void list_api_keys(const context_ptr& ctx, const principal& p, http::request&& req,
                   http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  auto page = page_params(req);
  run_page(ctx, api_key_store::list(tenant_id, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

void revoke_api_key(const context_ptr& ctx, const principal& p, http::request&& req,
                    http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  auto key_id = uuid_param(req, "key_id", "api key");
  require_tenant_access(p, tenant_id);
  auto before = [tenant_id, key_id](pqxx::work& tx) {
    return api_key_store::get(tenant_id, key_id).fn(tx);
  };
  // Validation is done: from here on the answer comes from the committed change.
  respond = clearing_keys(ctx, std::move(respond));
  run_job(ctx,
          audit_store::audited(api_key_store::revoke(tenant_id, key_id),
                               audit_event(p, req, "api_key.revoke", "api_key", tenant_id, key_id),
                               before,
                               [](const nlohmann::json&) { return nlohmann::json(nullptr); }),
          respond, 204);
}

/// Digits only, as Meta issues them; guards against pasting a phone number or a WABA URL.
void require_numeric_id(const std::string& value, std::string_view field) {
  if (value.size() > 32 || value.find_first_not_of("0123456789") != std::string::npos)
    throw app_error(errc::invalid_argument,
                    "field '" + std::string{field} +
                        "' must be the numeric id Meta shows (digits only)");
}

void create_channel(const context_ptr& ctx, const principal& p, http::request&& req,
                    http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  auto body = json_body(req);
  only_fields(body, {"type", "phone_number_id", "waba_id", "display_phone_number", "access_token",
                     "app_secret", "graph_base_url", "throughput_mps"});
  auto type = optional_string(body, "type", 40).value_or("whatsapp_cloud");
  if (type != "whatsapp_cloud")
    throw app_error(errc::invalid_argument, "field 'type' must be 'whatsapp_cloud'");
  channel_store::new_channel c;
  c.tenant_id = tenant_id;
  c.phone_number_id = required_string(body, "phone_number_id", 32);
  require_numeric_id(c.phone_number_id, "phone_number_id");
  c.waba_id = required_string(body, "waba_id", 32);
  require_numeric_id(c.waba_id, "waba_id");
  c.display_phone_number = required_string(body, "display_phone_number", 32);
  auto token = required_string(body, "access_token", 4096);
  c.access_token_sealed = ctx->secrets->seal(token);
  if (auto secret = optional_string(body, "app_secret", 512))
    c.app_secret_sealed = ctx->secrets->seal(*secret);
  c.graph_base_url = optional_http_url(body, "graph_base_url");
  c.throughput_mps = static_cast<int>(optional_int(body, "throughput_mps", 1, 1000).value_or(80));
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, tenant_id](nlohmann::json& channel) {
        // A number that was unknown a moment ago must route from the next webhook on, and its
        // session starts at once (the tenant activates its channels on reload).
        caf::anon_send(ctx->ingest->get(), reload_atom::value);
        ask_tenant(ctx, tenant_id, http::responder{[](http::response) {}},
                   [ctx](const caf::actor& tenant) { caf::anon_send(tenant, reload_atom::value); });
        respond(http::response::json(201, channel));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      audit_store::audited(channel_store::create(std::move(c)),
                           audit_event(p, req, "channel.create", "channel", tenant_id)));
}

void list_tenant_channels(const context_ptr& ctx, const principal& p, http::request&& req,
                          http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  auto page = page_params(req);
  run_page(ctx, channel_store::list(tenant_id, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

void actor_tree_route(const context_ptr& ctx, const principal&, http::request&&,
                      http::responder respond) {
  collect_actor_status(
      ctx, [respond](nlohmann::json tree) { respond(http::response::json(200, tree)); });
}

} // namespace

void add_admin_routes(http::router& r, const context_ptr& ctx) {
  auto secured = [ctx](roles allowed, secured_fn fn) { return bind_secured(ctx, allowed, fn); };
  r.add("POST", "/v1/tenants", secured(platform_roles, create_tenant));
  r.add("GET", "/v1/tenants", secured(platform_roles, list_tenants));
  r.add("GET", "/v1/tenants/{id}", secured(tenant_admin_roles, get_tenant));
  r.add("PATCH", "/v1/tenants/{id}", secured(platform_roles, patch_tenant));
  r.add("DELETE", "/v1/tenants/{id}", secured(platform_roles, delete_tenant));
  r.add("POST", "/v1/tenants/{id}/api-keys", secured(tenant_admin_roles, create_api_key));
  r.add("GET", "/v1/tenants/{id}/api-keys", secured(tenant_admin_roles, list_api_keys));
  r.add("DELETE", "/v1/tenants/{id}/api-keys/{key_id}",
        secured(tenant_admin_roles, revoke_api_key));
  r.add("POST", "/v1/tenants/{id}/channels", secured(tenant_admin_roles, create_channel));
  r.add("GET", "/v1/tenants/{id}/channels", secured(tenant_admin_roles, list_tenant_channels));
  r.add("GET", "/v1/admin/actors", secured(platform_roles, actor_tree_route));
}

} // namespace parley::edge
