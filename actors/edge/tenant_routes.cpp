#include "actors/channel_store.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

namespace {

void list_channels(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto page = page_params(req);
  with_tenant(ctx, req, respond, [ctx, respond, page](const std::string& tenant_id) {
    runtime::ask<nlohmann::json>(
      *ctx->sys, ctx->db->get(), ctx->db_timeout,
      [respond, limit = page.limit](nlohmann::json& rows) {
        respond(http::response::json(200, page_response(std::move(rows), limit)));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      channel_store::list(tenant_id, page.limit + 1, page.after_time, page.after_id));
  });
}

void get_channel(const context_ptr& ctx, http::request&& req, http::responder respond) {
  // Credentials are checked before the id, so an unauthenticated caller learns nothing.
  auto channel_id = req.params["id"];
  with_tenant(ctx, req, respond, [ctx, respond, channel_id](const std::string& tenant_id) {
    if (!is_uuid(channel_id))
      return respond(http::response::from_error(errc::not_found, "channel not found"));
    run_job(ctx, channel_store::get(tenant_id, channel_id), respond);
  });
}

} // namespace

void add_tenant_routes(http::router& r, const context_ptr& ctx) {
  auto bind = [ctx](void (*fn)(const context_ptr&, http::request&&, http::responder)) {
    return guarded([ctx, fn](http::request&& req, http::responder respond) {
      fn(ctx, std::move(req), std::move(respond));
    });
  };
  r.add("GET", "/v1/channels", bind(list_channels));
  r.add("GET", "/v1/channels/{id}", bind(get_channel));
}

} // namespace parley::edge
