#pragma once
// Maps (method, path) to a handler. Pure: no sockets, unit-tested and fuzzed directly.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace parley::http {

/// Outcome of `router::match`.
struct route_match {
  enum class outcome {
    found,              ///< `target`, `pattern` and `params` are set
    not_found,          ///< no pattern matches the path (404)
    method_not_allowed, ///< the path exists for other methods (405); `allow` lists them
  };
  outcome result = outcome::not_found;
  const handler* target = nullptr;           ///< points into the router; valid while it lives
  std::string pattern;                       ///< e.g. "/v1/tenants/{id}"
  std::map<std::string, std::string> params; ///< percent-decoded captures
  std::string allow;                         ///< "GET, POST" for 405

  bool found() const { return result == outcome::found; }
};

/// Routes by exact method and by pattern. A pattern is a '/'-separated list of literal segments
/// and `{name}` captures (one non-empty segment each). When several patterns match a path the
/// most specific one wins: at the first segment where they differ, a literal beats a capture
/// (so "/v1/users/me" beats "/v1/users/{id}"). Built once at start-up, then shared read-only
/// between I/O threads.
class router {
public:
  /// Registers a route. Throws std::invalid_argument for a malformed pattern (not starting with
  /// '/', an empty or duplicate capture name, braces inside a literal) or an exact duplicate.
  void add(std::string method, std::string pattern, handler h);

  /// Looks up `raw_path` (still percent-encoded; segments are decoded before comparison).
  route_match match(std::string_view method, std::string_view raw_path) const;

  /// Number of registered routes.
  size_t size() const { return routes_.size(); }

private:
  struct segment {
    bool capture;
    std::string text; ///< literal text, or the capture's name
  };
  struct route {
    std::string method;
    std::string pattern;
    std::vector<segment> segments;
    handler h;
  };
  std::vector<route> routes_;
};

} // namespace parley::http
