#pragma once
// Route tables of the HTTP edge, grouped by audience. Each function registers its routes on the
// router; handlers validate on the I/O thread and hand all other work to actors.
#include "actors/edge/context.hpp"
#include "http/router.hpp"

namespace parley::edge {

/// Platform and tenant administration: tenants, API keys, channels, the actor tree.
void add_admin_routes(http::router& r, const context_ptr& ctx);
/// Tenant API with API keys or tenant users' access tokens: channels, conversations, messages.
void add_tenant_routes(http::router& r, const context_ptr& ctx);
/// The send API: POST /v1/messages, attempts, channel changes (tenant API keys).
void add_outbound_routes(http::router& r, const context_ptr& ctx);
/// Users, sign-in (login, refresh, logout), /v1/me and the audit log.
void add_user_routes(http::router& r, const context_ptr& ctx);
/// Meta's webhooks: verification and signed, persist-first delivery.
void add_webhook_routes(http::router& r, const context_ptr& ctx);
/// /health/live, /health/ready, /metrics.
void add_ops_routes(http::router& r, const context_ptr& ctx);

} // namespace parley::edge
