#pragma once
// The transport's view of one HTTP exchange: a plain request, a plain response and the responder
// that completes it. No Beast (and no CAF) types here, so handlers and their tests stay light.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace parley {
// Declared opaquely so this header does not pull in runtime/errors.hpp (which includes CAF).
enum class errc : uint8_t;
} // namespace parley

namespace parley::http {

/// One parsed HTTP request as handlers see it.
struct request {
  std::string method;                       ///< "GET", "POST", ...
  std::string target;                       ///< raw target including the query
  std::string path;                         ///< percent-decoded path without query
  std::map<std::string, std::string> query; ///< decoded query parameters (last one wins)
  std::vector<std::pair<std::string, std::string>> headers; ///< in arrival order; names lower-cased
  std::string body;       ///< raw bytes (webhook HMACs are computed over exactly these)
  std::string request_id; ///< the client's X-Request-Id if sane, else a generated one
  std::string remote_ip;  ///< peer address of the connection
  std::map<std::string, std::string> params; ///< path parameters captured by the router ("{id}")
  std::string route; ///< the matched pattern, e.g. "/v1/tenants/{id}"; "" when none

  /// Value of the first header with this (lower-case) name; "" when absent.
  std::string_view header(std::string_view lower_name) const;
};

/// The sending side of a streamed response body (Server-Sent Events). Thread-safe; callable from
/// any thread. Bytes go out in the order they were sent. May outlive its server (then it only
/// answers false), like a responder; must not be called while the server is being destroyed.
class stream_writer {
public:
  virtual ~stream_writer() = default;
  /// Queues `bytes` behind what is queued already. False once the stream is over (the client went
  /// away, stopped reading, or the server is draining): the bytes are dropped; stop producing.
  virtual bool send(std::string bytes) = 0;
  /// Ends the stream after what is queued and closes the connection. Idempotent.
  virtual void finish() = 0;
  /// True once the stream is over (or ending).
  virtual bool done() const = 0;
};

/// What a streamed response does once its headers are out (see response::event_stream).
struct stream_hooks {
  /// Called once, on the connection's strand, with the writer of the body. May send at once.
  std::function<void(std::shared_ptr<stream_writer>)> opened;
  /// Called once when the stream ends for any reason (client gone, a write stalled or too much
  /// queued, finish(), the server draining), also when it never opened (the answer came too
  /// late, or the request was not a GET). Must be quick.
  std::function<void()> closed;
  /// Sent whenever nothing was written for server_options::stream_heartbeat (an SSE comment
  /// keeps proxies from timing the connection out and lets the server notice a dead client).
  std::string heartbeat;
  /// When set, the server ends the stream at this time (after sending `last_words`): a stream
  /// must not outlive the credential that opened it. Already past: it ends as soon as it opens.
  std::optional<std::chrono::steady_clock::time_point> ends_at;
  std::string last_words;
  /// When set (with a positive recheck_every), called on the connection's strand every
  /// recheck_every while the stream is open: its owner re-validates what the stream relies on
  /// (the credential that opened it may be revoked meanwhile) and may end it through the writer.
  std::function<void(const std::shared_ptr<stream_writer>&)> recheck;
  std::chrono::steady_clock::duration recheck_every{};
};

/// What a handler answers. Content-Type and X-Request-Id are added by the server.
struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Extra headers (e.g. Allow, Retry-After). Values containing CR or LF are dropped on write.
  std::vector<std::pair<std::string, std::string>> headers;

  /// Set for a streamed answer: the status and headers go out with chunked transfer encoding and
  /// no length, then `stream->opened` gets the writer; the connection closes when it ends.
  std::shared_ptr<stream_hooks> stream;
  /// `status` with `body` serialised as JSON.
  static response json(int status, const nlohmann::json& body);
  /// 200 `text/event-stream`, not cached, streamed through `hooks`.
  static response event_stream(stream_hooks hooks);
  /// 204: no body, so no Content-Type either (nothing claims to be JSON).
  static response no_content();
  /// `{"error":{"code":code,"message":message}}` as API.md prescribes.
  static response error(int status, std::string_view code, std::string_view message);
  /// An error response using the product's one status table (parley::http_status / api_code).
  static response from_error(parley::errc code, std::string_view message);
};

/// Completes one request. Copyable (all copies share one completion), thread-safe and callable
/// from any thread; only the first call has an effect, later ones are ignored. If the last copy
/// is destroyed without a call, the request is answered with 500 `internal_error`, so a lost
/// responder never leaves a client hanging.
class responder {
public:
  using deliver_fn = std::function<void(response)>;

  /// A responder that hands the response to `deliver` (exactly once). The server builds these;
  /// tests of handlers can build their own to capture the response.
  explicit responder(deliver_fn deliver);

  /// Answers the request; thread-safe; no effect after the first call, except that a stream
  /// answer given then still has its close hook run.
  void operator()(response r) const;

  /// True once the request has been answered through any copy.
  bool answered() const;

private:
  struct state;
  std::shared_ptr<state> state_;
};

/// A route handler. Runs on an I/O thread and must return quickly; it answers later (from any
/// thread) through the responder. An exception escaping it becomes 500 `internal_error`.
using handler = std::function<void(request&&, responder)>;

} // namespace parley::http
