#include "actors/channel_store.hpp"
#include "actors/conversation_store.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

namespace {

void list_channels(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto page = page_params(req);
  with_tenant(ctx, req, respond, [ctx, respond, page](const std::string& tenant_id) {
    run_page(ctx, channel_store::list(tenant_id, page.limit + 1, page.after_time, page.after_id),
             page.limit, respond);
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

bool descending(const http::request& req, bool dflt) {
  auto it = req.query.find("order");
  if (it == req.query.end())
    return dflt;
  if (it->second == "asc")
    return false;
  if (it->second == "desc")
    return true;
  throw app_error(errc::invalid_argument, "query parameter 'order' must be 'asc' or 'desc'");
}

void list_conversations(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto page = page_params(req);
  conversation_store::list_filter f;
  f.descending = descending(req, true);
  f.limit_plus_one = page.limit + 1;
  f.after_time = page.after_time;
  f.after_id = page.after_id;
  if (auto it = req.query.find("status"); it != req.query.end()) {
    if (it->second != "open" && it->second != "resolved")
      throw app_error(errc::invalid_argument,
                      "query parameter 'status' must be 'open' or 'resolved'");
    f.status = it->second;
  }
  if (auto it = req.query.find("channel_id"); it != req.query.end()) {
    if (!is_uuid(it->second))
      throw app_error(errc::invalid_argument, "query parameter 'channel_id' must be a channel id");
    f.channel_id = it->second;
  }
  with_tenant(ctx, req, respond,
              [ctx, respond, f, limit = page.limit](const std::string& tenant_id) {
                run_page(ctx, conversation_store::list(tenant_id, f), limit, respond);
              });
}

void get_conversation(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  with_tenant(ctx, req, respond, [ctx, respond, id](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "conversation not found"));
    run_job(ctx, conversation_store::get(tenant_id, id), respond);
  });
}

void patch_conversation(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  bearer_token(req);
  auto body = json_body(req);
  only_fields(body, {"status", "mode", "assignee"});
  nlohmann::json patch = nlohmann::json::object();
  if (auto status = optional_string(body, "status", 20)) {
    if (*status != "open" && *status != "resolved")
      throw app_error(errc::invalid_argument, "field 'status' must be 'open' or 'resolved'");
    patch["status"] = *status;
  }
  if (auto mode = optional_string(body, "mode", 20)) {
    if (*mode != "bot" && *mode != "human")
      throw app_error(errc::invalid_argument, "field 'mode' must be 'bot' or 'human'");
    patch["mode"] = *mode;
  }
  if (body.contains("assignee")) {
    if (!body["assignee"].is_null() && !body["assignee"].is_string())
      throw app_error(errc::invalid_argument, "field 'assignee' must be a string or null");
    patch["assignee"] = body["assignee"];
  }
  with_tenant(ctx, req, respond, [ctx, respond, id, patch](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "conversation not found"));
    run_job(ctx, conversation_store::update(tenant_id, id, patch), respond);
  });
}

void list_messages(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto page = page_params(req);
  bool desc = descending(req, false);
  auto id = req.params["id"];
  with_tenant(ctx, req, respond, [ctx, respond, id, page, desc](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "conversation not found"));
    run_page(ctx,
             conversation_store::messages(tenant_id, id, desc, page.limit + 1, page.after_time,
                                          page.after_id),
             page.limit, respond);
  });
}

void get_message(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto id = req.params["id"];
  with_tenant(ctx, req, respond, [ctx, respond, id](const std::string& tenant_id) {
    if (!is_uuid(id))
      return respond(http::response::from_error(errc::not_found, "message not found"));
    run_job(ctx, conversation_store::message(tenant_id, id), respond);
  });
}

} // namespace

void add_tenant_routes(http::router& r, const context_ptr& ctx) {
  auto bind = [ctx](route_fn fn) { return bind_route(ctx, fn); };
  r.add("GET", "/v1/channels", bind(list_channels));
  r.add("GET", "/v1/channels/{id}", bind(get_channel));
  r.add("GET", "/v1/conversations", bind(list_conversations));
  r.add("GET", "/v1/conversations/{id}", bind(get_conversation));
  r.add("PATCH", "/v1/conversations/{id}", bind(patch_conversation));
  r.add("GET", "/v1/conversations/{id}/messages", bind(list_messages));
  r.add("GET", "/v1/messages/{id}", bind(get_message));
}

} // namespace parley::edge
