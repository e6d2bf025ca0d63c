// The send API: POST /v1/messages, delivery attempts of a message, and channel changes that the
// channel's session must pick up (new token, throughput, Graph URL).
#include "actors/audit_store.hpp"
#include "actors/channel_store.hpp"
#include "actors/edge/auth.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "actors/interfaces.hpp"
#include "actors/outbound_store.hpp"
#include "domain/outbound_request.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

namespace {

/// tenant -> channel actor; the channel answers after the outbox row is committed.
void send_via_tenant(const context_ptr& ctx, const std::string& tenant_id, std::string channel_id,
                     domain::outbound_request req, http::responder respond) {
  ask_tenant_actor<nlohmann::json>(
      ctx, tenant_id, respond,
      [respond](nlohmann::json& r) {
        respond(http::response::json(r["status"].get<int>(), r["body"]));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, 3, send_atom::value,
      std::move(channel_id), std::move(req));
}

void send_message(const context_ptr& ctx, http::request&& req, http::responder respond) {
  bearer_token(req);
  auto body = json_body(req);
  domain::outbound_request out;
  try {
    out = domain::parse_outbound_request(body);
  } catch (const domain::invalid_field& e) {
    throw app_error(errc::invalid_argument, e.what());
  }
  with_tenant(ctx, req, respond, [ctx, respond, out](const std::string& tenant_id) {
    if (out.channel_id)
      return send_via_tenant(ctx, tenant_id, *out.channel_id, out, respond);
    // Without channel_id the tenant's only channel is meant.
    runtime::ask<nlohmann::json>(
        *ctx->relays, ctx->db->get(), ctx->db_timeout,
        [ctx, respond, out, tenant_id](nlohmann::json& r) {
          send_via_tenant(ctx, tenant_id, r["channel_id"].get<std::string>(), out, respond);
        },
        [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
        outbound_store::sole_channel(tenant_id));
  });
}

void message_attempts(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  with_tenant(ctx, req, respond, [ctx, respond, id](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "message not found"));
    run_job(ctx, outbound_store::attempts(tenant_id, id), respond);
  });
}

/// The fields of a channel PATCH. graph_base_url decides where the node sends the channel's
/// access token and requests, so only the platform administrator may set it (a tenant could
/// otherwise point the node at internal addresses).
channel_store::channel_patch channel_patch_of(const context& ctx, const http::request& req,
                                              bool admin) {
  auto body = json_body(req);
  only_fields(body, {"access_token", "app_secret", "graph_base_url", "throughput_mps"});
  channel_store::channel_patch p;
  if (auto token = optional_string(body, "access_token", 4096))
    p.access_token_sealed = ctx.secrets->seal(*token);
  if (auto secret = optional_string(body, "app_secret", 512))
    p.app_secret_sealed = ctx.secrets->seal(*secret);
  if (body.contains("graph_base_url") && !admin)
    throw app_error(errc::forbidden,
                    "field 'graph_base_url' can only be changed by the platform administrator "
                    "(PATCH /v1/tenants/{tenant_id}/channels/{channel_id} with the admin token)");
  p.graph_base_url = optional_http_url(body, "graph_base_url");
  if (auto mps = optional_int(body, "throughput_mps", 1, 1000))
    p.throughput_mps = static_cast<int>(*mps);
  return p;
}

/// Stores the change, then lets the session re-read it (a new token resumes a token_invalid
/// channel) and answers with the channel as stored afterwards. Ingest forgets cached webhook
/// secrets.
void apply_channel_patch(const context_ptr& ctx, const std::string& tenant_id,
                         const std::string& id, const channel_store::channel_patch& p,
                         audit_store::event ev, http::responder respond) {
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, tenant_id, id](nlohmann::json& channel) {
        caf::anon_send(ctx->ingest->get(), reload_atom::value);
        ask_tenant(
            ctx, tenant_id, respond,
            [ctx, respond, tenant_id, id, channel](const caf::actor& tenant) {
              runtime::ask<bool>(
                  *ctx->relays, tenant, ctx->actor_timeout,
                  [ctx, respond, tenant_id, id](bool) {
                    run_job(ctx, channel_store::get(tenant_id, id), respond);
                  },
                  // Stored; the session picks the change up on its next (re)start.
                  [respond, channel](caf::error&) { respond(http::response::json(200, channel)); },
                  reload_atom::value, id);
            });
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      audit_store::audited(
          channel_store::update(tenant_id, id, p), std::move(ev),
          [tenant_id, id](pqxx::work& tx) { return channel_store::get(tenant_id, id).fn(tx); }));
}

void patch_channel(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  bearer_token(req);
  auto p = channel_patch_of(*ctx, req, false);
  // Channel credentials are administration: tenant admins and API keys, not agents.
  authenticate(ctx, req, respond, roles{role::tenant_admin, role::api_key},
               [ctx, respond, id, p, rid = req.request_id](const principal& who) {
                 if (!is_uuid(id))
                   return respond(http::response::from_error(errc::not_found, "channel not found"));
                 apply_channel_patch(
                     ctx, who.tenant_id, id, p,
                     audit_event(who, rid, "channel.update", "channel", who.tenant_id, id),
                     respond);
               });
}

void admin_patch_channel(const context_ptr& ctx, const principal& who, http::request&& req,
                         http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  auto id = uuid_param(req, "channel_id", "channel");
  apply_channel_patch(ctx, tenant_id, id, channel_patch_of(*ctx, req, true),
                      audit_event(who, req, "channel.update", "channel", tenant_id, id), respond);
}

} // namespace

void add_outbound_routes(http::router& r, const context_ptr& ctx) {
  auto bind = [ctx](route_fn fn) { return bind_route(ctx, fn); };
  r.add("POST", "/v1/messages", bind(send_message));
  r.add("GET", "/v1/messages/{id}/attempts", bind(message_attempts));
  r.add("PATCH", "/v1/channels/{id}", bind(patch_channel));
  // graph_base_url points the node (with the channel's token) somewhere: platform admins only.
  r.add("PATCH", "/v1/tenants/{id}/channels/{channel_id}",
        bind_secured(ctx, platform_roles, admin_patch_channel));
}

} // namespace parley::edge
