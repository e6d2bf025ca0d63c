#pragma once
// What an answer of Meta's Graph API to `POST /{version}/{phone_number_id}/messages` (or the
// mark-as-read call on the same endpoint) means for the message and the channel. Follows Meta's
// Cloud API error code list: build on `error.code` and `error.error_data.details`, not on titles.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace parley::domain {

/// What the sender does next.
enum class graph_outcome {
  sent,          ///< Meta accepted the request (wamid set for messages)
  retry,         ///< temporary: server error, network, throttling; try again later
  failed,        ///< permanent for this message: retrying the same request cannot succeed
  token_invalid, ///< the access token is expired/revoked: the channel needs a new one
};

/// The classified answer. error_* fields are set for every outcome but sent.
struct graph_result {
  graph_outcome outcome = graph_outcome::retry;
  std::string wamid; ///< outcome sent: messages[0].id (empty for the mark-as-read answer)
  std::optional<int> error_code, error_subcode;
  /// Short human text: error.error_user_title, else error.message without its "(#123) " prefix,
  /// else "HTTP <status>". At most 512 bytes (cut on a UTF-8 boundary).
  std::string error_title;
  std::string error_details; ///< error.error_data.details when present (at most 2048 bytes)
  /// Rate limited: HTTP 429 or a throttling code (4, 17, 32, 613, 80007, 130429, 131048, 131056,
  /// 133016). Always comes with outcome retry; the channel degrades but does not open its breaker.
  bool throttled = false;
  /// Never filled from the body; the caller sets it from a Retry-After header.
  std::optional<std::chrono::milliseconds> retry_after;
};

/// Classifies an HTTP answer. Never throws, whatever the body:
/// - 2xx with messages[0].id -> sent; 2xx with {"success":true} -> sent with empty wamid;
///   any other 2xx -> failed ("unexpected response", see the .cpp for why not retry).
/// - error.code 190 or 0, or HTTP 401 with error.type OAuthException -> token_invalid.
/// - HTTP 429 or a throttling code -> retry + throttled.
/// - Temporary codes 1, 2, 131000, 131016, 131057, 133004, and any HTTP 5xx -> retry.
/// - Any other error (131047, 131026, 100, 131051, 132000, 131008, 131009, 368, ...) -> failed.
/// - Bodies that are not a Graph error (HTML from a proxy, empty): 5xx/429 -> retry, status 0
///   (no answer) -> retry, anything else -> failed; title "HTTP <status>".
graph_result classify_graph_response(int http_status, std::string_view body);

/// A request that got no HTTP answer (connect/TLS/timeout): retry, title "network error: <what>".
graph_result classify_network_error(std::string_view what);

/// "sent", "retry", "failed", "token_invalid".
std::string_view to_string(graph_outcome o);

} // namespace parley::domain
