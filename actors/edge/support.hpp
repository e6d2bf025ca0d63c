#pragma once
// Helpers every route handler uses: JSON bodies, field validation, credentials, pagination and
// turning errors into the API's error body. Validation throws parley::app_error; the `guarded`
// wrapper turns it into the right 4xx, so handlers read top to bottom.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/edge/context.hpp"
#include "http/message.hpp"
#include "persistence/messages.hpp"
#include "runtime/ask.hpp"
#include "runtime/errors.hpp"

namespace parley::edge {

/// A 429 thrown while validating; `guarded` adds its Retry-After header.
struct retry_later : app_error {
  retry_later(std::chrono::nanoseconds wait, std::string message)
      : app_error(errc::rate_limited, std::move(message))
      , retry_after(wait) {}
  std::chrono::nanoseconds retry_after;
};

/// Wraps a handler so that an app_error thrown while validating becomes its 4xx answer.
http::handler guarded(http::handler h);

/// A route handler taking the node context, as the route tables write them.
using route_fn = void (*)(const context_ptr&, http::request&&, http::responder);
/// Binds `fn` to `ctx`, guarded.
http::handler bind_route(const context_ptr& ctx, route_fn fn);

/// Answers with the API error body for `err` (any caf::error; CAF's own map to 503/500).
void reply_error(const http::responder& respond, const caf::error& err);

/// Parses the body as a JSON object. 415 when Content-Type is not JSON, 400 naming the
/// position when the JSON is malformed or not an object.
nlohmann::json json_body(const http::request& req);

/// Field accessors: throw app_error(invalid_argument) naming the field and the expected form.
std::string required_string(const nlohmann::json& body, std::string_view field,
                            size_t max_len = 200);
std::optional<std::string> optional_string(const nlohmann::json& body, std::string_view field,
                                           size_t max_len = 2000);
std::optional<int64_t> optional_int(const nlohmann::json& body, std::string_view field, int64_t min,
                                    int64_t max);
/// An optional http:// or https:// URL (at most 512 characters).
std::optional<std::string> optional_http_url(const nlohmann::json& body, std::string_view field);
/// Rejects fields not in `allowed` (typos must not be silently ignored).
void only_fields(const nlohmann::json& body, std::initializer_list<std::string_view> allowed);

/// True for a canonical lower- or upper-case UUID; ids that are not UUIDs cannot exist (404).
bool is_uuid(std::string_view s);
/// The path parameter `name` as a UUID, or app_error(not_found) naming `what`.
std::string uuid_param(const http::request& req, const std::string& name, std::string_view what);

/// The bearer token of the request, or app_error(unauthorized) explaining the expected header.
std::string bearer_token(const http::request& req);

/// Authenticates a tenant principal (API key or a tenant user's access token; see auth.hpp) and
/// calls `then(tenant_id)`; answers 401/403 itself, and 429 when the key's or the tenant's rate
/// limit is exceeded or the client's address made too many failed attempts. Throws 401
/// synchronously when no bearer token is sent. Prefer bind_secured for new routes: it declares
/// the roles where the route is added.
void with_tenant(const context_ptr& ctx, const http::request& req, http::responder respond,
                 std::function<void(const std::string& tenant_id)> then);

/// Pagination: ?limit= (default 50, 1..500) and ?cursor= (opaque). Throws 400 naming the parameter.
struct page_request {
  int limit = 50;
  std::optional<std::string> after_time; ///< keyset position: created_at of the last row seen
  std::optional<std::string> after_id;   ///< ... and its id
};
page_request page_params(const http::request& req);
/// Builds {"data": rows[0..limit), "next_cursor": ...} from up to limit+1 rows carrying
/// "_cursor_time" (removed from the output) and "id".
nlohmann::json page_response(nlohmann::json rows, int limit);

/// Runs a job returning up to limit+1 rows and answers with page_response().
void run_page(const context_ptr& ctx, persistence::db_job job, int limit, http::responder respond);

/// Asks the tenant registry for the tenant's actor (activating it); errors are answered.
void ask_tenant(const context_ptr& ctx, std::string tenant_id, http::responder respond,
                std::function<void(const caf::actor& tenant)> then);

/// Asks the tenant actor of `tenant_id` (activated on demand) with `xs...` and hands the answer
/// to `ok`, or the error to `fail`. A tenant actor can end between the registry's answer and the
/// request reaching it (an unknown tenant's activation ends at once; an eviction): the request
/// then fails with request_receiver_down though nobody saw it, so the registry is asked again
/// (up to `attempts` times in all) instead of answering 503.
template <class T, class Ok, class Fail, class... Ts>
void ask_tenant_actor(const context_ptr& ctx, std::string tenant_id, http::responder respond, Ok ok,
                      Fail fail, int attempts, Ts... xs) {
  ask_tenant(ctx, tenant_id, respond,
             [ctx, tenant_id, respond, ok, fail, attempts, xs...](const caf::actor& tenant) {
               runtime::ask<T>(
                   *ctx->relays, tenant, ctx->actor_timeout, [ok](T& value) mutable { ok(value); },
                   [ctx, tenant_id, respond, ok, fail, attempts, xs...](caf::error& err) mutable {
                     if (attempts > 1 && err.category() == caf::atom("system") &&
                         err.code() == static_cast<uint8_t>(caf::sec::request_receiver_down)) {
                       ask_tenant_actor<T>(ctx, tenant_id, respond, ok, fail, attempts - 1, xs...);
                       return;
                     }
                     fail(err);
                   },
                   xs...);
             });
}

/// Runs a database job on the pool and answers `status` with its JSON (or the error).
void run_job(const context_ptr& ctx, persistence::db_job job, http::responder respond,
             int status = 200);

} // namespace parley::edge
