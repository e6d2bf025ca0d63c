#pragma once
// Authentication and authorisation of the HTTP API, in one entry point. A request carries
// `Authorization: Bearer <credential>`, one of: the platform admin token, a user's access JWT,
// or a tenant API key. Every route declares the roles it allows where it is registered
// (bind_secured); the table in docs/security.md lists them. 401 = no or bad credentials,
// 403 = a valid principal whose role (or tenant) is not allowed.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include "actors/audit_store.hpp"
#include "actors/edge/context.hpp"
#include "http/message.hpp"

namespace parley::edge {

/// What a principal may be. API keys are a role of their own: the tenant API like an agent.
enum class role : uint8_t {
  platform_admin = 1,
  tenant_admin = 2,
  agent = 4,
  api_key = 8,
};

std::string_view to_string(role r);

/// A set of roles, as routes declare them.
class roles {
public:
  constexpr roles(std::initializer_list<role> rs) {
    for (auto r : rs)
      bits_ |= static_cast<uint8_t>(r);
  }
  constexpr bool contains(role r) const { return (bits_ & static_cast<uint8_t>(r)) != 0; }
  /// "platform_admin, tenant_admin" for messages.
  std::string describe() const;

private:
  uint8_t bits_ = 0;
};

/// Platform administration only (tenants, the actor tree, platform users).
inline constexpr roles platform_roles{role::platform_admin};
/// Managing one tenant (users, keys, channels): platform admins and that tenant's admins.
inline constexpr roles tenant_admin_roles{role::platform_admin, role::tenant_admin};
/// The tenant API (conversations, messages, channels): anything that has a tenant.
inline constexpr roles tenant_api_roles{role::tenant_admin, role::agent, role::api_key};
/// Any authenticated principal.
inline constexpr roles any_role{role::platform_admin, role::tenant_admin, role::agent,
                                role::api_key};

/// Who is calling.
struct principal {
  enum class kind : uint8_t { admin_token, user, api_key };
  kind how = kind::admin_token;
  role what = role::platform_admin;
  std::string tenant_id; ///< empty for platform admins
  std::string id;        ///< user or API key id; empty for the admin token
  /// When the credential stops being valid (Unix seconds): an access token's `exp`; 0 = never
  /// (API keys and the admin token last until revoked or changed).
  int64_t expires_at = 0;

  bool is_platform() const { return what == role::platform_admin; }
  /// "admin_token" | "user" | "api_key", as the audit log stores it.
  std::string_view actor_type() const;
};

/// Authenticates the request and checks `allowed`; then calls `then` (synchronously for the
/// admin token, after a database look-up otherwise). Throws app_error(unauthorized) at once for a
/// missing or malformed header; answers 401/403 itself later. An app_error thrown by `then`
/// becomes its answer.
void authenticate(const context_ptr& ctx, const http::request& req, const http::responder& respond,
                  roles allowed, std::function<void(const principal&)> then);

/// Like authenticate(), for a user's access token passed outside the Authorization header (the
/// `access_token` query parameter of GET /v1/events, for browsers' EventSource, which cannot set
/// headers). Only access tokens are accepted there: they expire within minutes, while API keys
/// and the admin token must never end up in URLs (proxy logs, browser history).
void authenticate_access_token(const context_ptr& ctx, const http::request& req,
                               const http::responder& respond, roles allowed,
                               const std::string& token,
                               std::function<void(const principal&)> then);

/// A handler that receives the authenticated principal.
using secured_fn = void (*)(const context_ptr&, const principal&, http::request&&, http::responder);

/// Binds `fn`, guarded, behind authenticate(allowed).
http::handler bind_secured(const context_ptr& ctx, roles allowed, secured_fn fn);

/// 403 unless `p` may act in `tenant_id` (platform admins everywhere, others in their own).
void require_tenant_access(const principal& p, const std::string& tenant_id);

/// The audit event of a change made by `p` in this request.
audit_store::event audit_event(const principal& p, const http::request& req, std::string action,
                               std::string object_type, std::string tenant_id,
                               std::string object_id = {});
/// The same, for a request of which only the id is at hand (inside an asynchronous answer).
audit_store::event audit_event(const principal& p, std::string request_id, std::string action,
                               std::string object_type, std::string tenant_id,
                               std::string object_id = {});

/// A failed authentication, as the failure hook sees it (never the credential itself).
struct auth_attempt {
  std::string remote_ip;
  std::string request_id;
  std::string
      kind; ///< "api_key", "jwt_expired", "jwt_bad_signature", "login", "refresh_token", ...
};

/// Every failed authentication ends here (bad API key, access token, login, refresh token): it
/// is counted and logged, then answered with `failure` (the 401). The per-IP failed-auth limiter
/// hooks in here and may answer 429 instead.
void reject_credentials(const context& ctx, const auth_attempt& who, const http::responder& respond,
                        http::response failure);

/// Issuer and audience of Parley's access tokens.
inline constexpr std::string_view jwt_issuer = "parley";
inline constexpr std::string_view jwt_audience = "parley-api";

} // namespace parley::edge
