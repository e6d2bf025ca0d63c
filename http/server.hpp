#pragma once
// The HTTP/1.1 server: Boost.Beast on Asio threads, one strand per connection. Beast stays in
// server.cpp; this header only speaks in http::request / http::response.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "http/cors.hpp"
#include "http/message.hpp"
#include "http/router.hpp"

namespace parley::http {

/// Listening address, thread count, limits and timeouts of a server.
struct server_options {
  std::string address = "127.0.0.1";
  uint16_t port = 0; ///< 0 picks a free port (see server::port())
  int io_threads = 1;
  size_t body_limit = 1 << 20;     ///< larger bodies get 413, then the connection closes
  size_t header_limit = 16 * 1024; ///< larger header sections get 431
  /// From the first byte of a request (or from accept) until it is fully read; then the
  /// connection is closed. Bounds slow clients (slowloris). Also bounds writing a response.
  std::chrono::milliseconds read_timeout{10000};
  /// How long a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60000};
  /// How long a handler may take to answer; then 503 `upstream_timeout` and the late answer is
  /// dropped.
  std::chrono::milliseconds request_timeout{10000};
  /// A streamed response (response::stream) sends its heartbeat after this long without output,
  /// and is ended when one of its writes has not completed for read_timeout by then.
  std::chrono::milliseconds stream_heartbeat{15000};
  /// Bytes a streamed response may have queued for a slow client; past it the stream ends (an
  /// SSE client reconnects with Last-Event-ID and is replayed what it missed).
  size_t stream_queue_limit = 1 << 20;
  /// Browser origins allowed to call the API (CORS); off by default.
  cors_policy cors;
};

/// Options from the typed configuration section `http`.
server_options make_server_options(const config::http_config& cfg);

/// Called once per completed request (for metrics and access logs), on an I/O thread, after
/// the response was written (or the write failed). Must be quick and must not throw.
struct request_observer {
  virtual ~request_observer() = default;
  /// `req` has no body; `req.route` is "" when no route matched or the request was malformed.
  virtual void on_complete(const request& req, int status, std::chrono::nanoseconds latency) = 0;
};

/// An HTTP/1.1 server with keep-alive. Lifecycle: start() -> (stop_accepting() -> drain()) ->
/// stop(). Responders that outlive the server are harmless, but must not be called while the
/// server object is being destroyed.
class server {
public:
  server(server_options opts, std::shared_ptr<const router> routes,
         std::shared_ptr<request_observer> observer = nullptr);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and starts the I/O threads. Throws std::runtime_error naming the endpoint and the
  /// cause ("127.0.0.1:8080 is already in use").
  void start();

  /// The bound port (the real one when the options asked for 0). Valid after start().
  uint16_t port() const;

  /// Shutdown step 1: closes the listening socket; new connections are refused. Idempotent.
  void stop_accepting();

  /// Shutdown step 2: closes idle keep-alive connections, lets in-flight requests finish (their
  /// responses carry `Connection: close`) and waits until every connection is gone or `timeout`
  /// passes. Returns true if everything drained. Implies stop_accepting().
  bool drain(std::chrono::milliseconds timeout);

  /// Stops the I/O threads and joins them; open connections are dropped. Idempotent.
  void stop();

  /// Requests handed to a handler whose responses are not yet written.
  size_t in_flight() const;

  /// Open client connections.
  size_t connections() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace parley::http
