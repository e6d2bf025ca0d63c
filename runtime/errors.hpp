#pragma once
// Parley's error codes: values that travel between actors as caf::error and map, in one table,
// to HTTP statuses and to the API's snake_case error codes.
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/error.hpp>

namespace parley {

enum class errc : uint8_t {
  none = 0,
  invalid_argument,    ///< 400: malformed JSON or a bad field; the message names the field
  unauthorized,        ///< 401: missing or invalid credentials
  forbidden,           ///< 403: authenticated but not allowed
  not_found,           ///< 404: unknown object (also another tenant's object)
  method_not_allowed,  ///< 405
  conflict,            ///< 409: unique key taken, state conflict
  payload_too_large,   ///< 413
  unsupported_media,   ///< 415: body is not JSON
  unprocessable,       ///< 422: valid JSON, not acceptable now
  outside_window,      ///< 422: free-form message outside the 24-hour customer service window
  rate_limited,        ///< 429
  internal,            ///< 500: a bug; never for client input
  storage_unavailable, ///< 503: PostgreSQL (or Redis) unreachable; retry later
  timeout,             ///< 503: a dependency did not answer in time
  shutting_down,       ///< 503: the node is draining
  plan_limit_exceeded, ///< 403: the tenant's plan does not allow more; the message names the limit
};

/// Builds a caf::error in the "parley" category carrying a human-readable message.
caf::error make_error(errc code, std::string message);

/// The Parley code of an error; errors from CAF itself (timeouts, dead actors) map to
/// errc::timeout / errc::internal so callers can always answer with one table.
errc code_of(const caf::error& err);

/// The message carried by a Parley error, or a generic description of a CAF error.
std::string message_of(const caf::error& err);

/// HTTP status for a code (one table for the whole product).
int http_status(errc code);

/// The snake_case code the public API shows in {"error":{"code":...}}.
std::string_view api_code(errc code);

/// An exception carrying an errc, for code that runs outside actors (database jobs, parsers)
/// and is turned into a caf::error at the actor boundary.
struct app_error : std::exception {
  app_error(errc c, std::string m)
      : code(c)
      , message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
  errc code;
  std::string message;
};

} // namespace parley
