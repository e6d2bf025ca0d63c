#pragma once
// Cross-origin requests from browsers (CORS, the Fetch standard): which web origins may call the
// API from a page, and the headers that say so. Off unless origins are configured
// (http.cors_allowed_origins): Parley's credentials are bearer tokens, never cookies, so allowing
// an origin only lets that origin's pages use tokens they already hold.
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace parley::http {

class cors_policy {
public:
  cors_policy() = default;
  /// Exact origins ("https://console.example.com", scheme://host[:port]) or "*" for any.
  explicit cors_policy(std::vector<std::string> origins);
  /// Parses http.cors_allowed_origins: comma-separated, spaces around entries ignored.
  static cors_policy from_list(std::string_view comma_separated);

  bool enabled() const { return !origins_.empty() || any_; }
  bool allows(std::string_view origin) const;

  /// Adds the headers of an answer to a request from the allowed `origin`.
  static void add_headers(std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view origin);
  /// The answer to a preflight request (OPTIONS with Access-Control-Request-Method) from
  /// `origin`: 204 with what may be sent when allowed, else 403 saying which setting decides.
  response preflight(std::string_view origin) const;

private:
  std::vector<std::string> origins_;
  bool any_ = false;
};

} // namespace parley::http
