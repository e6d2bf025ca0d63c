#include <regex>

#include "actors/channel_store.hpp"
#include "actors/edge/actor_status.hpp"
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

void create_tenant(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
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
  run_job(ctx, tenant_store::create(std::move(name), std::move(slug), plan, limits), respond, 201);
}

void list_tenants(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto page = page_params(req);
  run_page(ctx, tenant_store::list(page.limit + 1, page.after_time, page.after_id), page.limit,
           respond);
}

void get_tenant(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto id = uuid_param(req, "id", "tenant");
  ask_tenant(ctx, id, respond, [ctx, respond](const caf::actor& tenant) {
    runtime::ask<nlohmann::json>(
      *ctx->sys, tenant, ctx->actor_timeout,
      [respond](nlohmann::json& t) { respond(http::response::json(200, t)); },
      [respond](caf::error& err) { reply_error(respond, err); }, get_atom::value);
  });
}

void patch_tenant(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
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
  ask_tenant(ctx, id, respond, [ctx, respond, patch](const caf::actor& tenant) {
    runtime::ask<nlohmann::json>(
      *ctx->sys, tenant, ctx->actor_timeout,
      [ctx, respond](nlohmann::json& t) {
        caf::anon_send(ctx->ingest->get(), reload_atom::value); // suspension stops routing
        respond(http::response::json(200, t));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, update_atom::value, patch);
  });
}

void delete_tenant(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto id = uuid_param(req, "id", "tenant");
  runtime::ask<nlohmann::json>(
    *ctx->sys, ctx->db->get(), ctx->db_timeout,
    [ctx, respond, id](nlohmann::json&) {
      // The row is gone; stop the actor so no stale copy keeps answering, and let ingest
      // forget the tenant's numbers.
      caf::anon_send(ctx->tenants->get(), evict_atom::value, id);
      caf::anon_send(ctx->ingest->get(), reload_atom::value);
      respond(http::response{204, "application/json", "", {}});
    },
    [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
    tenant_store::remove(id));
}

void create_api_key(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto tenant_id = uuid_param(req, "id", "tenant");
  auto body = json_body(req);
  only_fields(body, {"name"});
  auto name = required_string(body, "name", 200);
  auto key = crypto::generate_api_key();
  auto prefix = key.substr(0, 12);
  runtime::ask<nlohmann::json>(
    *ctx->sys, ctx->db->get(), ctx->db_timeout,
    [respond, key](nlohmann::json& created) {
      // The only time the key is ever shown.
      created["key"] = key;
      respond(http::response::json(201, created));
    },
    [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
    api_key_store::create(tenant_id, name, prefix, crypto::api_key_hash(key)));
}

void list_api_keys(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  run_job(ctx, api_key_store::list(uuid_param(req, "id", "tenant")), respond);
}

void revoke_api_key(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  run_job(ctx,
          api_key_store::revoke(uuid_param(req, "id", "tenant"),
                                uuid_param(req, "key_id", "api key")),
          respond, 204);
}

/// Digits only, as Meta issues them; guards against pasting a phone number or a WABA URL.
void require_numeric_id(const std::string& value, std::string_view field) {
  if (value.size() > 32 || value.find_first_not_of("0123456789") != std::string::npos)
    throw app_error(errc::invalid_argument,
                    "field '" + std::string{field} + "' must be the numeric id Meta shows (digits only)");
}

void create_channel(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto tenant_id = uuid_param(req, "id", "tenant");
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
    *ctx->sys, ctx->db->get(), ctx->db_timeout,
    [ctx, respond, tenant_id](nlohmann::json& channel) {
      // A number that was unknown a moment ago must route from the next webhook on, and its
      // session starts at once (the tenant activates its channels on reload).
      caf::anon_send(ctx->ingest->get(), reload_atom::value);
      ask_tenant(ctx, tenant_id, http::responder{[](http::response) {}},
                 [ctx](const caf::actor& tenant) { caf::anon_send(tenant, reload_atom::value); });
      respond(http::response::json(201, channel));
    },
    [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
    channel_store::create(std::move(c)));
}

void list_tenant_channels(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  auto tenant_id = uuid_param(req, "id", "tenant");
  auto page = page_params(req);
  run_page(ctx, channel_store::list(tenant_id, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

void actor_tree_route(const context_ptr& ctx, http::request&& req, http::responder respond) {
  require_admin(*ctx, req);
  collect_actor_status(ctx, [respond](nlohmann::json tree) {
    respond(http::response::json(200, tree));
  });
}

} // namespace

void add_admin_routes(http::router& r, const context_ptr& ctx) {
  auto bind = [ctx](route_fn fn) { return bind_route(ctx, fn); };
  r.add("POST", "/v1/tenants", bind(create_tenant));
  r.add("GET", "/v1/tenants", bind(list_tenants));
  r.add("GET", "/v1/tenants/{id}", bind(get_tenant));
  r.add("PATCH", "/v1/tenants/{id}", bind(patch_tenant));
  r.add("DELETE", "/v1/tenants/{id}", bind(delete_tenant));
  r.add("POST", "/v1/tenants/{id}/api-keys", bind(create_api_key));
  r.add("GET", "/v1/tenants/{id}/api-keys", bind(list_api_keys));
  r.add("DELETE", "/v1/tenants/{id}/api-keys/{key_id}", bind(revoke_api_key));
  r.add("POST", "/v1/tenants/{id}/channels", bind(create_channel));
  r.add("GET", "/v1/tenants/{id}/channels", bind(list_tenant_channels));
  r.add("GET", "/v1/admin/actors", bind(actor_tree_route));
}

} // namespace parley::edge
