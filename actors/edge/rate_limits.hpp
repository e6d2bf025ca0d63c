#pragma once
// The HTTP edge's use of the rate limiter: 429 answers with Retry-After, per-key and per-tenant
// admission of API requests, and the failed-authentication limit per client IP. Only failures
// count against an IP, so Meta's genuine webhooks (and any well-authenticated client) are never
// throttled by it, while a flood of forged credentials is refused before any database work.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/edge/context.hpp"
#include "http/message.hpp"

namespace parley::edge {

/// A 429 `rate_limited` with `Retry-After` in whole seconds (rounded up, at least 1).
http::response too_many_requests(std::chrono::nanoseconds retry_after, std::string_view message);

/// The client address rate limits count (http.trusted_proxies decides whether X-Forwarded-For
/// is believed).
std::string client_address(const context& ctx, const http::request& req);

/// Throws retry_later (a 429 with Retry-After through `guarded`) when the client's address has
/// used up its failed-authentication allowance. Call before any authentication work.
void refuse_blocked_address(const context& ctx, const http::request& req);

/// Counts a failed authentication from `ip` and answers `failure` (the 401), or 429 when this
/// failure exhausted the address's allowance. The hook for every credential check: API keys,
/// the admin token, user logins, webhook signatures.
void authentication_failed(const context& ctx, const std::string& ip,
                           const http::responder& respond, http::response failure);

/// Takes a token from the API key's and the tenant's buckets (rates from the tenant's plan:
/// `who` = {"tenant_id","key_id","api_rps","api_burst"}) and calls `then`, or answers 429.
void admit_api_request(const context_ptr& ctx, const nlohmann::json& who,
                       const http::responder& respond, std::function<void()> then);

} // namespace parley::edge
