#pragma once
// An asynchronous HTTP/1.1 + HTTPS client for outbound calls (Meta's Graph API): a keep-alive
// pool per scheme://host:port, bounded connections with a FIFO queue of waiting requests, one
// deadline per request and certificate + host-name verification. Beast, Asio and OpenSSL stay in
// client.cpp; this header speaks plain strings.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace parley::http {

/// Threads, pool bounds, timeouts and trust settings of a client.
struct client_options {
  int io_threads = 1;                   ///< Asio threads the client owns (at least 1)
  size_t max_connections_per_host = 32; ///< keep-alive pool per scheme://host:port (at least 1)
  /// Bounds name resolution + TCP connect + TLS handshake of a new connection.
  std::chrono::milliseconds connect_timeout{3000};
  /// Whole request (queueing + connect + TLS + write + read) unless client_request::timeout is set.
  std::chrono::milliseconds default_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000}; ///< pooled connections idle longer are closed
  size_t max_response_body = 4 << 20;            ///< larger bodies fail with kind::too_large
  /// Extra PEM CA bundle to trust (tests, corporate proxies); the system default paths are always
  /// trusted too. An unreadable file makes the constructor throw.
  std::string ca_file;
  /// Certificate chain + host-name verification (SNI is always sent for names). Only tests may
  /// turn it off.
  bool verify_peer = true;
};

/// One outbound request.
struct client_request {
  std::string method = "POST";
  std::string url; ///< http://host[:port]/path?query or https://...; a #fragment is dropped
  /// Extra headers. Host, Content-Length, Transfer-Encoding and Connection are the client's own
  /// and ignored here; User-Agent defaults to "parley/<version>".
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::chrono::milliseconds> timeout; ///< overrides client_options::default_timeout
};

/// A complete response, whatever its status.
struct client_response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers; ///< arrival order, lower-case names
  std::string body;
  /// The request went out twice: the first time on a pooled keep-alive connection that the peer
  /// closed before answering (see client.cpp, may_retry). The server may have acted on both;
  /// callers whose requests are not idempotent count it.
  bool resent = false;

  /// Value of the first header with this lower-case name; "" when absent.
  std::string header(std::string_view lower_name) const;
};

/// Why a request produced no response.
struct client_error {
  enum class kind {
    invalid_url, ///< the URL, method or a header is malformed; nothing was sent
    connect,     ///< resolving or connecting failed or timed out (connect_timeout)
    tls,         ///< the TLS handshake or certificate/host-name verification failed
    timeout,     ///< the request's deadline passed (queueing included)
    io,          ///< the connection failed while writing or reading; also "client stopped"
    too_large,   ///< the response body exceeded max_response_body
  };
  kind what = kind::io;
  /// Human-readable, e.g. "connect to graph.facebook.com:443 failed: Connection refused".
  std::string message;
  /// Set once writing the request started on a connection (also by an earlier attempt).
  bool write_started = false;

  /// True when the request may have been sent (writing started): callers count possible
  /// duplicates instead of assuming the server never saw it.
  bool may_have_reached_server() const { return write_started; }
};

using client_result = std::variant<client_response, client_error>;
/// Runs exactly once per request on a client I/O thread (after stop(): on the caller's thread);
/// must not block. Exceptions escaping it are logged and swallowed.
using client_callback = std::function<void(client_result)>;

/// The client. Requests may be sent before start() (they wait, and their deadlines run).
/// stop() (also run by the destructor) must not be called from a callback of this client's own
/// I/O threads if the client is then destroyed there: joining would wait on itself.
class client {
public:
  /// Throws std::runtime_error when `ca_file` cannot be loaded.
  explicit client(client_options o);
  ~client(); ///< stops and joins
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Starts the I/O threads. Idempotent; a stopped client stays stopped.
  void start();

  /// Pending requests complete with client_error (io, "client stopped"); connections close; the
  /// I/O threads are joined (unless called on one of them). Idempotent.
  void stop();

  /// Thread-safe; never throws for bad input (invalid_url comes through the callback).
  void send(client_request req, client_callback cb);

  struct stats {
    size_t open_connections; ///< including ones still connecting
    size_t idle_connections; ///< pooled, waiting for a request
    size_t in_flight;        ///< requests not completed yet, queued ones included
  };
  stats current_stats() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace parley::http
