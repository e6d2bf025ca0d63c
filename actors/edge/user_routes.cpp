#include <chrono>
#include <regex>

#include "actors/audit_store.hpp"
#include "actors/edge/auth.hpp"
#include "actors/edge/rate_limits.hpp"
#include "actors/edge/routes.hpp"
#include "actors/edge/support.hpp"
#include "actors/session_store.hpp"
#include "actors/user_store.hpp"
#include "domain/jwt.hpp"
#include "domain/password.hpp"
#include "domain/session.hpp"
#include "runtime/ask.hpp"
#include "runtime/logging.hpp"

namespace parley::edge {

namespace {

const log::logger& auth_log() {
  static const log::logger lg{"auth"};
  return lg;
}

password::scrypt_params hashing_of(const context& ctx) {
  password::scrypt_params p;
  p.log_n = ctx.cfg->security.password_scrypt_log_n;
  return p;
}

std::string valid_email(const nlohmann::json& body) {
  auto email = required_string(body, "email", 254);
  static const std::regex re{R"(^[^@\s]+@[^@\s]+\.[^@\s]+$)"};
  if (!std::regex_match(email, re))
    throw app_error(errc::invalid_argument,
                    "field 'email' must be an email address like name@example.com");
  return email;
}

user_store::new_password new_password(const context& ctx, const nlohmann::json& body) {
  auto it = body.find("password");
  if (it == body.end() || !it->is_string())
    throw app_error(errc::invalid_argument, "field 'password' is required and must be a string");
  const auto& pw = it->get_ref<const std::string&>();
  if (pw.size() < password::min_length || pw.size() > password::max_length)
    throw app_error(errc::invalid_argument,
                    "field 'password' must be " + std::to_string(password::min_length) + " to " +
                        std::to_string(password::max_length) + " characters");
  return {pw, hashing_of(ctx)}; // hashed by the store's job, on a pool worker
}

std::optional<std::string> scope_of(const principal& p) {
  if (p.is_platform())
    return std::nullopt;
  return p.tenant_id;
}

// ---- users

void create_user_in(const context_ptr& ctx, const principal& p, const http::request& req,
                    http::responder respond, std::optional<std::string> tenant_id) {
  auto body = json_body(req);
  only_fields(body, {"email", "password", "role", "name"});
  user_store::new_user u;
  u.tenant_id = tenant_id;
  u.email = valid_email(body);
  u.name = optional_string(body, "name", 200);
  u.role = required_string(body, "role", 40);
  if (tenant_id && u.role != "tenant_admin" && u.role != "agent")
    throw app_error(errc::invalid_argument, "field 'role' must be 'tenant_admin' or 'agent'");
  if (!tenant_id && u.role != "platform_admin")
    throw app_error(errc::invalid_argument,
                    "field 'role' must be 'platform_admin' here; tenant users are created with "
                    "POST /v1/tenants/{id}/users");
  u.password = new_password(*ctx, body);
  auto ev = audit_event(p, req, "user.create", "user", tenant_id.value_or(""));
  run_job(ctx, audit_store::audited(user_store::create(std::move(u)), std::move(ev)), respond, 201);
}

void create_tenant_user(const context_ptr& ctx, const principal& p, http::request&& req,
                        http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  create_user_in(ctx, p, req, respond, tenant_id);
}

void create_platform_user(const context_ptr& ctx, const principal& p, http::request&& req,
                          http::responder respond) {
  create_user_in(ctx, p, req, respond, std::nullopt);
}

void list_users(const context_ptr& ctx, const principal& p, http::request&& req,
                http::responder respond) {
  auto page = page_params(req);
  std::optional<std::string> filter;
  if (auto it = req.query.find("tenant_id"); it != req.query.end()) {
    if (!is_uuid(it->second))
      throw app_error(errc::invalid_argument, "query parameter 'tenant_id' must be a tenant id");
    filter = it->second;
  }
  run_page(ctx,
           user_store::list(scope_of(p), filter, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

void list_tenant_users(const context_ptr& ctx, const principal& p, http::request&& req,
                       http::responder respond) {
  auto tenant_id = uuid_param(req, "id", "tenant");
  require_tenant_access(p, tenant_id);
  auto page = page_params(req);
  run_page(ctx,
           user_store::list(scope_of(p), tenant_id, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

void get_user(const context_ptr& ctx, const principal& p, http::request&& req,
              http::responder respond) {
  run_job(ctx, user_store::get(scope_of(p), uuid_param(req, "id", "user")), respond);
}

void patch_user(const context_ptr& ctx, const principal& p, http::request&& req,
                http::responder respond) {
  auto id = uuid_param(req, "id", "user");
  auto body = json_body(req);
  only_fields(body, {"name", "role", "disabled", "password"});
  user_store::user_patch patch;
  patch.name = optional_string(body, "name", 200);
  patch.role = optional_string(body, "role", 40);
  if (patch.role && *patch.role != "tenant_admin" && *patch.role != "agent" &&
      *patch.role != "platform_admin")
    throw app_error(errc::invalid_argument,
                    "field 'role' must be 'tenant_admin', 'agent' or 'platform_admin'");
  if (patch.role && *patch.role == "platform_admin" && !p.is_platform())
    throw app_error(errc::forbidden, "only platform admins can grant 'platform_admin'");
  if (body.contains("disabled") && !body["disabled"].is_null()) {
    if (!body["disabled"].is_boolean())
      throw app_error(errc::invalid_argument, "field 'disabled' must be true or false");
    patch.disabled = body["disabled"].get<bool>();
  }
  if (body.contains("password") && !body["password"].is_null())
    patch.password = new_password(*ctx, body);
  if (id == p.id && (patch.role || patch.disabled.value_or(false)))
    throw app_error(errc::invalid_argument,
                    "you cannot change your own role or disable yourself; ask another admin");
  auto scope = scope_of(p);
  auto action = patch.role ? "user.role_change" : "user.update";
  auto ev = audit_event(p, req, action, "user", p.is_platform() ? "" : p.tenant_id, id);
  auto job = audit_store::audited(
      user_store::update(scope, id, patch), std::move(ev),
      [scope, id](pqxx::work& tx) { return user_store::summary(tx, scope, id); });
  run_job(ctx, std::move(job), respond);
}

void delete_user(const context_ptr& ctx, const principal& p, http::request&& req,
                 http::responder respond) {
  auto id = uuid_param(req, "id", "user");
  if (id == p.id)
    throw app_error(errc::invalid_argument, "you cannot delete yourself; ask another admin");
  auto scope = scope_of(p);
  auto ev = audit_event(p, req, "user.delete", "user", p.is_platform() ? "" : p.tenant_id, id);
  run_job(ctx,
          audit_store::audited(
              user_store::remove(scope, id), std::move(ev),
              [scope, id](pqxx::work& tx) { return user_store::summary(tx, scope, id); },
              [](const nlohmann::json&) { return nlohmann::json(nullptr); }),
          respond, 204);
}

// ---- sign-in

nlohmann::json token_pair(const context& ctx, const nlohmann::json& session,
                          const std::string& refresh_token) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  const int ttl = ctx.cfg->security.access_token_ttl_s;
  nlohmann::json claims{{"iss", jwt_issuer},
                        {"aud", jwt_audience},
                        {"sub", session["user_id"]},
                        {"sid", session["family_id"]},
                        {"role", session["role"]},
                        {"iat", now},
                        {"nbf", now},
                        {"exp", now + ttl}};
  if (session["tenant_id"].is_string())
    claims["tid"] = session["tenant_id"];
  return {{"access_token", jwt::sign_hs256(claims, ctx.jwt_secret)},
          {"token_type", "Bearer"},
          {"expires_in", ttl},
          {"refresh_token", refresh_token}};
}

const char* bad_login = "wrong email or password";

void login(const context_ptr& ctx, http::request&& req, http::responder respond) {
  // An address that failed too often gets 429 before any password work (scrypt is expensive).
  refuse_blocked_address(*ctx, req);
  auto body = json_body(req);
  only_fields(body, {"email", "password"});
  session_store::login_request lr;
  lr.email = required_string(body, "email", 254);
  auto it = body.find("password");
  if (it == body.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    throw app_error(errc::invalid_argument, "field 'password' is required and must be a string");
  lr.password = it->get<std::string>();
  if (lr.password.size() > password::max_length)
    return reject_credentials(*ctx, {client_address(*ctx, req), req.request_id, "login"}, respond,
                              http::response::from_error(errc::unauthorized, bad_login));
  auto refresh_token = session::new_refresh_token();
  lr.new_refresh_hash = session::refresh_token_hash(refresh_token);
  lr.refresh_ttl_s = ctx->cfg->security.refresh_token_ttl_s;
  lr.lockout.max_failures = ctx->cfg->security.login_max_failures;
  lr.lockout.base_s = ctx->cfg->security.login_lockout_base_s;
  lr.lockout.max_s = ctx->cfg->security.login_lockout_max_s;
  lr.hashing = hashing_of(*ctx);
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, refresh_token, ip = client_address(*ctx, req),
       rid = req.request_id](nlohmann::json& out) {
        if (!out.value("ok", false)) {
          if (out.value("locked", false))
            auth_log().warn(
                "account locked after failed sign-ins",
                {{"user_id", out.value("user_id", "")}, {"remote_ip", ip}, {"request_id", rid}});
          return reject_credentials(*ctx, {ip, rid, "login"}, respond,
                                    http::response::from_error(errc::unauthorized, bad_login));
        }
        respond(http::response::json(200, token_pair(*ctx, out, refresh_token)));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      session_store::login(std::move(lr)));
}

std::string refresh_token_field(const http::request& req) {
  auto body = json_body(req);
  only_fields(body, {"refresh_token"});
  return required_string(body, "refresh_token", 200);
}

void refresh(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto presented = refresh_token_field(req);
  auto next = session::new_refresh_token();
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [ctx, respond, next, ip = client_address(*ctx, req),
       rid = req.request_id](nlohmann::json& out) {
        if (!out.value("ok", false)) {
          if (out.value("reuse", false))
            auth_log().warn("refresh token reused: session family revoked",
                            {{"user_id", out.value("user_id", "")},
                             {"family_id", out.value("family_id", "")},
                             {"remote_ip", ip},
                             {"request_id", rid}});
          return reject_credentials(
              *ctx, {ip, rid, "refresh_token"}, respond,
              http::response::from_error(errc::unauthorized,
                                         "invalid or expired refresh token: sign in again"));
        }
        respond(http::response::json(200, token_pair(*ctx, out, next)));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      session_store::refresh(session::refresh_token_hash(presented),
                             session::refresh_token_hash(next),
                             ctx->cfg->security.refresh_token_ttl_s));
}

void logout(const context_ptr& ctx, http::request&& req, http::responder respond) {
  auto presented = refresh_token_field(req);
  run_job(ctx, session_store::logout(session::refresh_token_hash(presented)), respond, 204);
}

void me(const context_ptr& ctx, const principal& p, http::request&&, http::responder respond) {
  if (p.how != principal::kind::user)
    throw app_error(errc::forbidden, "GET /v1/me describes a signed-in user; this credential is "
                                     "the " +
                                         std::string{p.actor_type()} + ", not a user");
  std::optional<std::string> tenant;
  if (!p.tenant_id.empty())
    tenant = p.tenant_id;
  run_job(ctx, user_store::me(p.id, tenant), respond);
}

// ---- audit log

void list_audit_log(const context_ptr& ctx, const principal& p, http::request&& req,
                    http::responder respond) {
  auto page = page_params(req);
  std::optional<std::string> tenant = scope_of(p);
  if (auto it = req.query.find("tenant_id"); it != req.query.end()) {
    if (!is_uuid(it->second))
      throw app_error(errc::invalid_argument, "query parameter 'tenant_id' must be a tenant id");
    if (tenant && *tenant != it->second)
      throw app_error(errc::forbidden, "you can only read your own tenant's audit log");
    tenant = it->second;
  }
  run_page(ctx, audit_store::list(tenant, page.limit + 1, page.after_time, page.after_id),
           page.limit, respond);
}

} // namespace

void add_user_routes(http::router& r, const context_ptr& ctx) {
  auto secured = [ctx](roles allowed, secured_fn fn) { return bind_secured(ctx, allowed, fn); };
  auto open = [ctx](route_fn fn) { return bind_route(ctx, fn); };
  r.add("POST", "/v1/auth/login", open(login));
  r.add("POST", "/v1/auth/refresh", open(refresh));
  r.add("POST", "/v1/auth/logout", open(logout));
  r.add("GET", "/v1/me", secured(any_role, me));
  r.add("POST", "/v1/tenants/{id}/users", secured(tenant_admin_roles, create_tenant_user));
  r.add("GET", "/v1/tenants/{id}/users", secured(tenant_admin_roles, list_tenant_users));
  r.add("POST", "/v1/users", secured(platform_roles, create_platform_user));
  r.add("GET", "/v1/users", secured(tenant_admin_roles, list_users));
  r.add("GET", "/v1/users/{id}", secured(tenant_admin_roles, get_user));
  r.add("PATCH", "/v1/users/{id}", secured(tenant_admin_roles, patch_user));
  r.add("DELETE", "/v1/users/{id}", secured(tenant_admin_roles, delete_user));
  r.add("GET", "/v1/audit-log", secured(tenant_admin_roles, list_audit_log));
}

} // namespace parley::edge
