#include "actors/edge/auth.hpp"

#include <chrono>
#include <memory>

#include "actors/channel_store.hpp"
#include "actors/edge/key_cache.hpp"
#include "actors/edge/rate_limits.hpp"
#include "actors/edge/support.hpp"
#include "actors/user_store.hpp"
#include "domain/crypto.hpp"
#include "domain/jwt.hpp"
#include "runtime/ask.hpp"
#include "runtime/logging.hpp"

namespace parley::edge {

namespace {

const log::logger& auth_log() {
  static const log::logger lg{"auth"};
  return lg;
}

std::optional<role> role_named(std::string_view name) {
  for (auto r : {role::platform_admin, role::tenant_admin, role::agent, role::api_key})
    if (to_string(r) == name)
      return r;
  return std::nullopt;
}

/// Runs `then` and turns a validation error it throws into its answer: after an asynchronous
/// look-up there is no `guarded` frame on the stack any more.
void proceed(const http::responder& respond, const std::function<void(const principal&)>& then,
             const principal& p) {
  try {
    then(p);
  } catch (const app_error& e) {
    respond(http::response::from_error(e.code, e.message));
  }
}

void check_role(const principal& p, roles allowed) {
  if (allowed.contains(p.what))
    return;
  if (p.is_platform())
    throw app_error(errc::forbidden,
                    "this endpoint needs a tenant's credentials (an API key or a tenant user's "
                    "access token); platform administrators manage tenants under /v1/tenants/{id}");
  throw app_error(errc::forbidden, "this endpoint is for " + allowed.describe() + "; you are " +
                                       std::string{to_string(p.what)});
}

void authenticate_jwt(const context_ptr& ctx, const http::request& req,
                      const http::responder& respond, roles allowed, const std::string& token,
                      std::function<void(const principal&)> then) {
  jwt::expectations want;
  want.issuer = std::string{jwt_issuer};
  want.audience = std::string{jwt_audience};
  want.now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto v = jwt::verify_hs256(token, ctx->jwt_secret, want);
  auto refuse = [&](std::string_view why, std::string_view message) {
    reject_credentials(*ctx, {client_address(*ctx, req), req.request_id, std::string{why}}, respond,
                       http::response::from_error(errc::unauthorized, message));
  };
  if (!v) {
    if (v.reason == jwt::failure::expired)
      return refuse("jwt_expired",
                    "the access token has expired: get a new one with POST /v1/auth/refresh");
    return refuse(std::string{"jwt_"} + std::string{jwt::to_string(v.reason)},
                  "invalid access token: sign in with POST /v1/auth/login");
  }
  const auto& c = *v.claims;
  auto str = [&c](const char* name) -> std::string {
    auto it = c.find(name);
    return it != c.end() && it->is_string() ? it->get<std::string>() : std::string{};
  };
  auto sub = str("sub");
  auto sid = str("sid");
  auto tid = str("tid");
  if (!is_uuid(sub) || !is_uuid(sid) || (!tid.empty() && !is_uuid(tid)))
    return refuse("jwt_claims", "invalid access token: sign in with POST /v1/auth/login");
  std::optional<std::string> tenant;
  if (!tid.empty())
    tenant = tid;
  auto exp = c.find("exp");
  // verify_hs256 refused tokens without a numeric exp.
  int64_t expires_at = exp != c.end() && exp->is_number() ? exp->get<int64_t>() : 0;
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, allowed, then, sub, expires_at](nlohmann::json& who) {
        principal p;
        p.how = principal::kind::user;
        p.expires_at = expires_at;
        auto stored = role_named(who["role"].get<std::string>());
        if (!stored) // the schema allows no other roles: refuse rather than guess
          return respond(http::response::from_error(errc::unauthorized, "invalid access token"));
        p.what = *stored;
        p.tenant_id = who["tenant_id"].is_string() ? who["tenant_id"].get<std::string>() : "";
        p.id = sub;
        try {
          check_role(p, allowed);
        } catch (const app_error& e) {
          return respond(http::response::from_error(e.code, e.message));
        }
        if (p.tenant_id.empty())
          return proceed(respond, then, p);
        // A signed-in user draws from a bucket of its own and from its tenant's, like a key.
        who["key_id"] = "user:" + sub;
        admit_api_request(ctx, who, respond, [respond, then, p] { proceed(respond, then, p); });
      },
      [ctx, respond, who = auth_attempt{client_address(*ctx, req), req.request_id, "jwt_session"}](
          caf::error& err) {
        if (code_of(err) == errc::unauthorized)
          return reject_credentials(
              *ctx, who, respond, http::response::from_error(errc::unauthorized, message_of(err)));
        reply_error(respond, err);
      },
      persistence::exec_atom::value, user_store::principal(sub, sid, tenant));
}

void admit_api_key(const context_ptr& ctx, const http::responder& respond, roles allowed,
                   const std::function<void(const principal&)>& then, const nlohmann::json& who) {
  principal p;
  p.how = principal::kind::api_key;
  p.what = role::api_key;
  p.tenant_id = who["tenant_id"].get<std::string>();
  p.id = who["key_id"].get<std::string>();
  try {
    check_role(p, allowed);
  } catch (const app_error& e) {
    return respond(http::response::from_error(e.code, e.message));
  }
  // The key's and the tenant's buckets (rates from the tenant's plan) admit the request.
  admit_api_request(ctx, who, respond, [respond, then, p] { proceed(respond, then, p); });
}

void authenticate_api_key(const context_ptr& ctx, const http::request& req,
                          const http::responder& respond, roles allowed, const std::string& key,
                          std::function<void(const principal&)> then) {
  auto hash = crypto::api_key_hash(key);
  if (ctx->key_cache) {
    if (auto who = ctx->key_cache->find(hash))
      return admit_api_key(ctx, respond, allowed, then, *who);
  }
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, allowed, then, hash](nlohmann::json& who) {
        if (ctx->key_cache)
          ctx->key_cache->put(hash, who);
        admit_api_key(ctx, respond, allowed, then, who);
      },
      [ctx, respond,
       who = auth_attempt{client_address(*ctx, req), req.request_id, "api_key"}](caf::error& err) {
        if (code_of(err) == errc::unauthorized)
          return reject_credentials(
              *ctx, who, respond, http::response::from_error(errc::unauthorized, message_of(err)));
        reply_error(respond, err);
      },
      persistence::exec_atom::value, api_key_store::resolve(hash));
}

} // namespace

std::string_view to_string(role r) {
  switch (r) {
  case role::platform_admin:
    return "platform_admin";
  case role::tenant_admin:
    return "tenant_admin";
  case role::agent:
    return "agent";
  case role::api_key:
    return "api_key";
  }
  return "unknown";
}

std::string roles::describe() const {
  std::string out;
  for (auto r : {role::platform_admin, role::tenant_admin, role::agent, role::api_key})
    if (contains(r))
      out += (out.empty() ? "" : ", ") + std::string{to_string(r)};
  return out;
}

std::string_view principal::actor_type() const {
  switch (how) {
  case kind::admin_token:
    return "admin_token";
  case kind::user:
    return "user";
  case kind::api_key:
    return "api_key";
  }
  return "unknown";
}

void authenticate(const context_ptr& ctx, const http::request& req, const http::responder& respond,
                  roles allowed, std::function<void(const principal&)> then) {
  auto token = bearer_token(req);
  // A flood of forged credentials from one address is refused before any look-up.
  refuse_blocked_address(*ctx, req);
  if (crypto::constant_time_equal(token, ctx->cfg->admin.token)) {
    principal p; // the admin token is a platform admin without a user row
    check_role(p, allowed);
    return proceed(respond, then, p);
  }
  if (jwt::looks_like_jwt(token))
    return authenticate_jwt(ctx, req, respond, allowed, token, std::move(then));
  authenticate_api_key(ctx, req, respond, allowed, token, std::move(then));
}

void authenticate_access_token(const context_ptr& ctx, const http::request& req,
                               const http::responder& respond, roles allowed,
                               const std::string& token,
                               std::function<void(const principal&)> then) {
  refuse_blocked_address(*ctx, req);
  if (!jwt::looks_like_jwt(token))
    return reject_credentials(
        *ctx, {client_address(*ctx, req), req.request_id, "query_credential"}, respond,
        http::response::from_error(
            errc::unauthorized,
            "only a user's access token (from POST /v1/auth/login) may be passed as the query "
            "parameter 'access_token'; send API keys and the admin token in the Authorization "
            "header"));
  authenticate_jwt(ctx, req, respond, allowed, token, std::move(then));
}

http::handler bind_secured(const context_ptr& ctx, roles allowed, secured_fn fn) {
  return guarded([ctx, allowed, fn](http::request&& req, http::responder respond) {
    auto shared = std::make_shared<http::request>(std::move(req));
    authenticate(ctx, *shared, respond, allowed, [ctx, fn, shared, respond](const principal& p) {
      fn(ctx, p, std::move(*shared), respond);
    });
  });
}

void require_tenant_access(const principal& p, const std::string& tenant_id) {
  if (p.is_platform() || p.tenant_id == tenant_id)
    return;
  throw app_error(errc::forbidden, "you can only manage your own tenant (" + p.tenant_id + ")");
}

audit_store::event audit_event(const principal& p, const http::request& req, std::string action,
                               std::string object_type, std::string tenant_id,
                               std::string object_id) {
  return audit_event(p, req.request_id, std::move(action), std::move(object_type),
                     std::move(tenant_id), std::move(object_id));
}

audit_store::event audit_event(const principal& p, std::string request_id, std::string action,
                               std::string object_type, std::string tenant_id,
                               std::string object_id) {
  audit_store::event ev;
  ev.tenant_id = std::move(tenant_id);
  ev.actor_type = std::string{p.actor_type()};
  ev.actor_id = p.id;
  ev.action = std::move(action);
  ev.object_type = std::move(object_type);
  ev.object_id = std::move(object_id);
  ev.request_id = std::move(request_id);
  return ev;
}

void reject_credentials(const context& ctx, const auth_attempt& who, const http::responder& respond,
                        http::response failure) {
  // Counted against the client's address: it may answer 429 with Retry-After instead.
  ctx.metrics
      ->get_counter("parley_auth_failures_total", "Failed authentications, by credential kind",
                    {{"kind", who.kind}})
      .inc();
  auth_log().info(
      "authentication failed",
      {{"kind", who.kind}, {"remote_ip", who.remote_ip}, {"request_id", who.request_id}});
  authentication_failed(ctx, who.remote_ip, respond, std::move(failure));
}

} // namespace parley::edge
