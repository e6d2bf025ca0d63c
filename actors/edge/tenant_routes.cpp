#include "actors/channel_store.hpp"
#include "actors/conversation_store.hpp"
#include "actors/edge/auth.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "runtime/ask.hpp"
#include "runtime/event_hub.hpp"

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
    // Listeners learn of the change with the conversation as the answer shows it.
    http::responder published([ctx, respond, tenant_id](http::response r) {
      if (r.status == 200 && ctx->events && ctx->events->wants(tenant_id))
        if (auto body = nlohmann::json::parse(r.body, nullptr, false); !body.is_discarded())
          ctx->events->publish(tenant_id, "conversation.updated", body);
      respond(std::move(r));
    });
    run_job(ctx, conversation_store::update(tenant_id, id, patch), published);
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

/// The last frame of a stream that ends because of its credential: an event without an id, so
/// the client's Last-Event-ID stays at the last real event and a new stream resumes without a gap.
std::string credential_farewell(std::string_view reason, std::string_view message) {
  return "event: stream.expired\ndata: " +
         nlohmann::json{{"reason", reason}, {"message", message}}.dump() + "\n\n";
}

const std::string& expired_farewell() {
  static const std::string frame =
      credential_farewell("credential_expired",
                          "the access token that opened this stream has expired; open a new "
                          "stream with a fresh token and last_event_id to continue without a gap");
  return frame;
}

const std::string& revoked_farewell() {
  static const std::string frame = credential_farewell(
      "credential_revoked",
      "the credential that opened this stream is no longer valid (revoked API key, ended session, "
      "disabled user or suspended tenant); open a new stream with a valid one and last_event_id");
  return frame;
}

/// Authenticates the stream's request again (same credential, same rules). A refusal (401/403)
/// ends the stream; anything that cannot tell (429, 503, a timeout) leaves it to the next recheck.
void recheck_credential(const context_ptr& ctx, const std::shared_ptr<const http::request>& req,
                        const std::shared_ptr<http::stream_writer>& w) {
  std::weak_ptr<http::stream_writer> weak = w;
  auto revoke = [weak] {
    if (auto writer = weak.lock(); writer && writer->send(revoked_farewell()))
      writer->finish();
  };
  http::responder refused([revoke](http::response r) {
    if (r.status == 401 || r.status == 403)
      revoke();
  });
  auto still_valid = [](const principal&) {};
  try {
    if (auto token = req->query.find("access_token"); token != req->query.end())
      authenticate_access_token(ctx, *req, refused, tenant_api_roles, token->second, still_valid);
    else
      authenticate(ctx, *req, refused, tenant_api_roles, still_valid);
  } catch (const app_error& e) {
    if (e.code == errc::unauthorized || e.code == errc::forbidden)
      revoke();
  } catch (const std::exception&) {
    // Refused before any look-up (this address is blocked for failed attempts): undecided.
  }
}

void open_event_stream(const context_ptr& ctx, const principal& p,
                       const std::shared_ptr<const http::request>& req,
                       const std::optional<runtime::event_id>& last,
                       const http::responder& respond) {
  const auto& tenant_id = p.tenant_id;
  auto limit = static_cast<size_t>(ctx->cfg->http.max_event_streams_per_tenant);
  // Reserved here and released by closed(), which the server runs exactly once for every stream
  // answer (also one that never opens).
  if (!ctx->events->reserve_stream(tenant_id, limit))
    return respond(http::response::from_error(
        errc::rate_limited, "this tenant already has " + std::to_string(limit) +
                                " event streams open on this server "
                                "(http.max_event_streams_per_tenant); close one first"));
  // Opened and closed run on the connection's strand, one after the other.
  struct subscription_slot {
    uint64_t id = 0;
  };
  auto slot = std::make_shared<subscription_slot>();
  auto* open_streams = &ctx->metrics->get_gauge("parley_event_streams_open",
                                                "GET /v1/events streams currently open");
  http::stream_hooks hooks;
  hooks.heartbeat = ": keep-alive\n\n";
  if (p.expires_at > 0) {
    // A stream lives no longer than the access token that opened it.
    auto left = std::chrono::seconds(p.expires_at) -
                std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch());
    hooks.ends_at = std::chrono::steady_clock::now() + left;
    hooks.last_words = expired_farewell();
  }
  // A key revoked, a session ended, a user disabled or a tenant suspended while the stream is
  // open: noticed within http.event_stream_recheck_s (plus the API-key cache's few seconds).
  hooks.recheck_every = std::chrono::seconds(ctx->cfg->http.event_stream_recheck_s);
  hooks.recheck = [ctx, req](const std::shared_ptr<http::stream_writer>& w) {
    recheck_credential(ctx, req, w);
  };
  hooks.opened = [ctx, tenant_id, last, slot,
                  open_streams](std::shared_ptr<http::stream_writer> w) {
    // How long EventSource clients wait before reconnecting after a drop.
    w->send("retry: 2000\n\n");
    slot->id =
        ctx->events
            ->subscribe(tenant_id, last, [w](const runtime::live_event& ev) { w->send(ev.wire); })
            .id;
    open_streams->inc(); // after subscribe: closed() takes it back only for a subscription
  };
  hooks.closed = [ctx, tenant_id, slot, open_streams] {
    ctx->events->release_stream(tenant_id);
    if (slot->id == 0)
      return;
    ctx->events->unsubscribe(tenant_id, slot->id);
    open_streams->dec();
  };
  respond(http::response::event_stream(std::move(hooks)));
}

/// GET /v1/events: the tenant's live events as Server-Sent Events (docs/events.md). A client
/// that reconnects with Last-Event-ID gets what it missed first.
void stream_events(const context_ptr& ctx, http::request&& req, http::responder respond) {
  std::optional<runtime::event_id> last;
  auto header = req.header("last-event-id");
  auto query = req.query.find("last_event_id");
  std::string_view given = !header.empty()            ? header
                           : query != req.query.end() ? std::string_view(query->second)
                                                      : std::string_view();
  if (!given.empty()) {
    last = runtime::event_id::parse(given);
    if (!last)
      throw app_error(errc::invalid_argument,
                      "Last-Event-ID must be an id this stream sent (\"<ms>-<n>\"); omit it to "
                      "start with new events");
  }
  // Kept for the stream's rechecks: the same credential, address and headers.
  auto saved = std::make_shared<const http::request>(std::move(req));
  auto open = [ctx, respond, saved, last](const principal& p) {
    open_event_stream(ctx, p, saved, last, respond);
  };
  const auto& rq = *saved;
  // Browsers' EventSource cannot set headers: it passes a user's access token in the URL.
  if (auto token = rq.query.find("access_token"); token != rq.query.end()) {
    if (!rq.header("authorization").empty())
      throw app_error(errc::invalid_argument,
                      "send the credential once: in the Authorization header or as the query "
                      "parameter 'access_token', not both");
    return authenticate_access_token(ctx, rq, respond, tenant_api_roles, token->second, open);
  }
  authenticate(ctx, rq, respond, tenant_api_roles, open);
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
  if (ctx->events) // a node without a hub (tests' contexts) has no live events
    r.add("GET", "/v1/events", bind(stream_events));
}

} // namespace parley::edge
