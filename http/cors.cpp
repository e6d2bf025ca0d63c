#include "http/cors.hpp"

#include <algorithm>

namespace parley::http {

namespace {

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

} // namespace

cors_policy::cors_policy(std::vector<std::string> origins) {
  for (auto& o : origins) {
    if (o == "*")
      any_ = true;
    else if (!o.empty())
      origins_.push_back(std::move(o));
  }
}

cors_policy cors_policy::from_list(std::string_view comma_separated) {
  std::vector<std::string> out;
  while (!comma_separated.empty()) {
    auto comma = comma_separated.find(',');
    auto entry = trimmed(comma_separated.substr(0, comma));
    if (!entry.empty())
      out.emplace_back(entry);
    if (comma == std::string_view::npos)
      break;
    comma_separated.remove_prefix(comma + 1);
  }
  return cors_policy{std::move(out)};
}

bool cors_policy::allows(std::string_view origin) const {
  if (origin.empty() || origin == "null") // sandboxed frames and file:// pages
    return false;
  return any_ || std::find(origins_.begin(), origins_.end(), origin) != origins_.end();
}

void cors_policy::add_headers(std::vector<std::pair<std::string, std::string>>& headers,
                              std::string_view origin) {
  // The origin itself rather than "*" even when any is allowed: one rule for every answer, and
  // caches keep answers apart by Origin (Vary).
  headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
  headers.emplace_back("Vary", "Origin");
  headers.emplace_back("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, Location");
}

response cors_policy::preflight(std::string_view origin) const {
  if (!allows(origin))
    return response::error(403, "forbidden",
                           "pages of origin '" + std::string(origin) +
                               "' may not call this API (http.cors_allowed_origins)");
  response r;
  r.status = 204;
  r.content_type.clear();
  add_headers(r.headers, origin);
  r.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE");
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         "Authorization, Content-Type, Last-Event-ID, X-Request-Id");
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  return r;
}

} // namespace parley::http
