// The send API: POST /v1/messages, delivery attempts of a message, and channel changes that the
// channel's session must pick up (new token, throughput, Graph URL).
#include "actors/channel_store.hpp"
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
  ask_tenant(ctx, tenant_id, respond,
             [ctx, respond, channel_id = std::move(channel_id),
              req = std::move(req)](const caf::actor& tenant) {
               runtime::ask<nlohmann::json>(
                   *ctx->sys, tenant, ctx->actor_timeout,
                   [respond](nlohmann::json& r) {
                     respond(http::response::json(r["status"].get<int>(), r["body"]));
                   },
                   [respond](caf::error& err) { reply_error(respond, err); }, send_atom::value,
                   channel_id, req);
             });
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
        *ctx->sys, ctx->db->get(), ctx->db_timeout,
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

void patch_channel(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  bearer_token(req);
  auto body = json_body(req);
  only_fields(body, {"access_token", "app_secret", "graph_base_url", "throughput_mps"});
  channel_store::channel_patch p;
  if (auto token = optional_string(body, "access_token", 4096))
    p.access_token_sealed = ctx->secrets->seal(*token);
  if (auto secret = optional_string(body, "app_secret", 512))
    p.app_secret_sealed = ctx->secrets->seal(*secret);
  p.graph_base_url = optional_http_url(body, "graph_base_url");
  if (auto mps = optional_int(body, "throughput_mps", 1, 1000))
    p.throughput_mps = static_cast<int>(*mps);
  with_tenant(ctx, req, respond, [ctx, respond, id, p](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "channel not found"));
    runtime::ask<nlohmann::json>(
        *ctx->sys, ctx->db->get(), ctx->db_timeout,
        [ctx, respond, tenant_id, id](nlohmann::json& channel) {
          // Webhook secrets are cached by ingest; the session re-reads its token (and resumes
          // sending when the old one was refused) before the answer, so the state shown is current.
          caf::anon_send(ctx->ingest->get(), reload_atom::value);
          ask_tenant(ctx, tenant_id, respond,
                     [ctx, respond, tenant_id, id, channel](const caf::actor& tenant) {
                       runtime::ask<bool>(
                           *ctx->sys, tenant, ctx->actor_timeout,
                           [ctx, respond, tenant_id, id](bool) {
                             run_job(ctx, channel_store::get(tenant_id, id), respond);
                           },
                           // Stored; the session picks the change up on its next (re)start.
                           [respond, channel](caf::error&) {
                             respond(http::response::json(200, channel));
                           },
                           reload_atom::value, id);
                     });
        },
        [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
        channel_store::update(tenant_id, id, p));
  });
}

} // namespace

void add_outbound_routes(http::router& r, const context_ptr& ctx) {
  auto bind = [ctx](route_fn fn) { return bind_route(ctx, fn); };
  r.add("POST", "/v1/messages", bind(send_message));
  r.add("GET", "/v1/messages/{id}/attempts", bind(message_attempts));
  r.add("PATCH", "/v1/channels/{id}", bind(patch_channel));
}

} // namespace parley::edge
