#include "actors/edge/support.hpp"

#include <charconv>

#include "actors/channel_store.hpp"
#include "actors/edge/auth.hpp"
#include "actors/edge/rate_limits.hpp"
#include "actors/interfaces.hpp"
#include "actors/rate_limiter.hpp"
#include "domain/crypto.hpp"
#include "domain/ids.hpp"
#include "domain/json_depth.hpp"
#include "domain/json_fast_parse.hpp"
#include "runtime/ask.hpp"

namespace parley::edge {

http::handler guarded(http::handler h) {
  return [h = std::move(h)](http::request&& req, http::responder respond) {
    try {
      h(std::move(req), respond);
    } catch (const retry_later& e) {
      respond(too_many_requests(e.retry_after, e.message));
    } catch (const app_error& e) {
      respond(http::response::from_error(e.code, e.message));
    }
  };
}

http::handler bind_route(const context_ptr& ctx, route_fn fn) {
  return guarded([ctx, fn](http::request&& req, http::responder respond) {
    fn(ctx, std::move(req), std::move(respond));
  });
}

void reply_error(const http::responder& respond, const caf::error& err) {
  auto code = code_of(err);
  auto resp = http::response::from_error(code, message_of(err));
  if (code == errc::storage_unavailable || code == errc::timeout)
    resp.headers.emplace_back("Retry-After", "1");
  respond(std::move(resp));
}

nlohmann::json json_body(const http::request& req) {
  auto ctype = req.header("content-type");
  auto base = ctype.substr(0, ctype.find(';'));
  while (!base.empty() && base.back() == ' ')
    base.remove_suffix(1);
  if (base != "application/json")
    throw app_error(errc::unsupported_media,
                    "send the body as JSON with the header 'Content-Type: application/json'");
  // Copies and dumps of nlohmann documents recurse: hostile nesting must not reach them.
  constexpr size_t max_depth = 64;
  auto parsed = domain::parse_json_bounded(req.body, max_depth);
  if (auto* refused = std::get_if<domain::json_refusal>(&parsed))
    throw app_error(errc::invalid_argument,
                    refused->too_deep
                        ? "the body nests deeper than " + std::to_string(max_depth) + " levels"
                        : "the body is not valid JSON (" + refused->detail + ")");
  auto& body = std::get<nlohmann::json>(parsed);
  if (!body.is_object())
    throw app_error(errc::invalid_argument, "the body must be a JSON object");
  return std::move(body);
}

std::string required_string(const nlohmann::json& body, std::string_view field, size_t max_len) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null())
    throw app_error(errc::invalid_argument, "field '" + std::string{field} + "' is required");
  if (!it->is_string() || it->get_ref<const std::string&>().empty())
    throw app_error(errc::invalid_argument,
                    "field '" + std::string{field} + "' must be a non-empty string");
  const auto& s = it->get_ref<const std::string&>();
  // Characters, not bytes: count every byte that does not continue a UTF-8 sequence.
  size_t chars = 0;
  for (unsigned char ch : s)
    chars += (ch & 0xC0) != 0x80;
  if (chars > max_len)
    throw app_error(errc::invalid_argument, "field '" + std::string{field} + "' must be at most " +
                                                std::to_string(max_len) + " characters");
  return s;
}

std::optional<std::string> optional_string(const nlohmann::json& body, std::string_view field,
                                           size_t max_len) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null())
    return std::nullopt;
  return required_string(body, field, max_len);
}

std::optional<int64_t> optional_int(const nlohmann::json& body, std::string_view field, int64_t min,
                                    int64_t max) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null())
    return std::nullopt;
  if (!it->is_number_integer())
    throw app_error(errc::invalid_argument,
                    "field '" + std::string{field} + "' must be an integer");
  auto v = it->get<int64_t>();
  if (v < min || v > max)
    throw app_error(errc::invalid_argument, "field '" + std::string{field} + "' must be between " +
                                                std::to_string(min) + " and " +
                                                std::to_string(max));
  return v;
}

std::optional<std::string> optional_http_url(const nlohmann::json& body, std::string_view field) {
  auto url = optional_string(body, field, 512);
  if (url && url->rfind("https://", 0) != 0 && url->rfind("http://", 0) != 0)
    throw app_error(errc::invalid_argument,
                    "field '" + std::string{field} + "' must be an http:// or https:// URL");
  return url;
}

void only_fields(const nlohmann::json& body, std::initializer_list<std::string_view> allowed) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool known = false;
    for (auto a : allowed)
      known = known || it.key() == a;
    if (!known) {
      std::string list;
      for (auto a : allowed)
        list += (list.empty() ? "" : ", ") + std::string{a};
      throw app_error(errc::invalid_argument,
                      "unknown field '" + it.key() + "'; allowed fields: " + list);
    }
  }
}

bool is_uuid(std::string_view s) {
  return domain::is_uuid(s);
}

std::string uuid_param(const http::request& req, const std::string& name, std::string_view what) {
  auto it = req.params.find(name);
  if (it == req.params.end() || !is_uuid(it->second))
    throw app_error(errc::not_found, std::string{what} + " not found");
  std::string id = it->second;
  for (auto& c : id)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return id;
}

std::string bearer_token(const http::request& req) {
  auto h = req.header("authorization");
  if (h.empty())
    throw app_error(errc::unauthorized,
                    "missing credentials: send the header 'Authorization: Bearer <token>'");
  constexpr std::string_view prefix = "Bearer ";
  if (h.size() <= prefix.size() || h.substr(0, prefix.size()) != prefix)
    throw app_error(errc::unauthorized,
                    "malformed Authorization header: expected 'Bearer <token>'");
  return std::string{h.substr(prefix.size())};
}

void with_tenant(const context_ptr& ctx, const http::request& req, http::responder respond,
                 std::function<void(const std::string& tenant_id)> then) {
  authenticate(ctx, req, respond, tenant_api_roles,
               [then](const principal& p) { then(p.tenant_id); });
}

page_request page_params(const http::request& req) {
  page_request p;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    int v = 0;
    auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec != std::errc{} || ptr != it->second.data() + it->second.size() || v < 1 || v > 500)
      throw app_error(errc::invalid_argument, "query parameter 'limit' must be an integer 1..500");
    p.limit = v;
  }
  if (auto it = req.query.find("cursor"); it != req.query.end() && !it->second.empty()) {
    auto raw = crypto::base64url_decode(it->second);
    nlohmann::json c;
    if (raw && !domain::json_text_nests_deeper_than(*raw, 4)) // cursors are flat objects
      c = nlohmann::json::parse(*raw, nullptr, false);
    if (!raw || !c.is_object() || !c.contains("t") || !c["t"].is_string() || !c.contains("id") ||
        !c["id"].is_string() || !is_uuid(c["id"].get<std::string>()))
      throw app_error(errc::invalid_argument,
                      "query parameter 'cursor' is not a cursor this API returned");
    p.after_time = c["t"].get<std::string>();
    p.after_id = c["id"].get<std::string>();
  }
  return p;
}

nlohmann::json page_response(nlohmann::json rows, int limit) {
  nlohmann::json next = nullptr;
  if (rows.is_array() && rows.size() > static_cast<size_t>(limit)) {
    rows.erase(rows.begin() + limit, rows.end());
    const auto& last = rows.back();
    nlohmann::json c{{"t", last["_cursor_time"]}, {"id", last["id"]}};
    next = crypto::base64url_encode(c.dump());
  }
  if (!rows.is_array())
    rows = nlohmann::json::array();
  for (auto& r : rows)
    r.erase("_cursor_time");
  return {{"data", std::move(rows)}, {"next_cursor", next}};
}

void run_page(const context_ptr& ctx, persistence::db_job job, int limit, http::responder respond) {
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [respond, limit](nlohmann::json& rows) {
        respond(http::response::json(200, page_response(std::move(rows), limit)));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      std::move(job));
}

void ask_tenant(const context_ptr& ctx, std::string tenant_id, http::responder respond,
                std::function<void(const caf::actor& tenant)> then) {
  runtime::ask<caf::actor>(
      *ctx->relays, ctx->tenants->get(), ctx->actor_timeout,
      [then](caf::actor& tenant) { then(tenant); },
      [respond](caf::error& err) { reply_error(respond, err); }, tenant_atom::value,
      std::move(tenant_id));
}

void run_job(const context_ptr& ctx, persistence::db_job job, http::responder respond, int status) {
  runtime::ask<nlohmann::json>(
      *ctx->relays, ctx->db->get(), ctx->db_timeout,
      [respond, status](nlohmann::json& body) {
        respond(status == 204 ? http::response::no_content() : http::response::json(status, body));
      },
      [respond](caf::error& err) { reply_error(respond, err); }, persistence::exec_atom::value,
      std::move(job));
}

} // namespace parley::edge
