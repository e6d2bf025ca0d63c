#include "actors/edge/rate_limits.hpp"

#include <algorithm>

#include "actors/edge/support.hpp"
#include "actors/rate_limiter.hpp"

namespace parley::edge {

namespace {

long long ceil_seconds(std::chrono::nanoseconds d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
  return std::max<long long>(1, s);
}

} // namespace

http::response too_many_requests(std::chrono::nanoseconds retry_after, std::string_view message) {
  auto seconds = ceil_seconds(retry_after);
  auto resp = http::response::from_error(
      errc::rate_limited, std::string{message} + "; retry after " + std::to_string(seconds) + " s");
  resp.headers.emplace_back("Retry-After", std::to_string(seconds));
  return resp;
}

std::string client_address(const context& ctx, const http::request& req) {
  return client_ip(req.remote_ip, req.header("x-forwarded-for"), ctx.cfg->http.trusted_proxies);
}

void refuse_blocked_address(const context& ctx, const http::request& req) {
  if (!ctx.limiter)
    return;
  std::chrono::nanoseconds wait{0};
  if (ctx.limiter->ip_blocked(client_address(ctx, req), wait))
    throw retry_later(wait, "too many failed authentication attempts from this address");
}

void authentication_failed(const context& ctx, const std::string& ip,
                           const http::responder& respond, http::response failure) {
  if (!ctx.limiter)
    return respond(std::move(failure));
  auto shared = std::make_shared<http::response>(std::move(failure));
  ctx.limiter->ip_failed(ip, [respond, shared](rate_verdict v) {
    if (v.allowed)
      respond(std::move(*shared));
    else
      respond(too_many_requests(v.retry_after,
                                "too many failed authentication attempts from this address"));
  });
}

void admit_api_request(const context_ptr& ctx, const nlohmann::json& who,
                       const http::responder& respond, std::function<void()> then) {
  if (!ctx->limiter || !who.contains("api_rps"))
    return then();
  auto rate = who.value("api_rps", 1.0);
  auto burst = who.value("api_burst", 1.0);
  std::vector<rate_bucket> buckets{
      {"api_key", who.value("key_id", std::string{}), rate, burst},
      {"tenant", who.value("tenant_id", std::string{}), rate, burst},
  };
  ctx->limiter->take(std::move(buckets), [respond, then = std::move(then)](rate_verdict v) {
    if (v.allowed)
      return then();
    respond(too_many_requests(v.retry_after, v.scope == "tenant"
                                                 ? "the tenant's API rate limit is exceeded"
                                                 : "this API key's rate limit is exceeded"));
  });
}

} // namespace parley::edge
