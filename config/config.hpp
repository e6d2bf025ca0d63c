#pragma once
// Typed configuration of a Parley node. Parsed once at start-up from an optional JSON file, then
// overridden by PARLEY_* environment variables, then validated; any problem refuses start-up with
// a message naming the key and the expected form. Every key is documented in docs/operations.md.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace parley::config {

struct http_config {
  std::string address = "127.0.0.1"; ///< http.address / PARLEY_HTTP_ADDRESS
  uint16_t port = 8080;              ///< http.port / PARLEY_HTTP_PORT (0 = pick a free port)
  int io_threads = 1;                ///< http.io_threads: Asio threads running Beast
  size_t body_limit = 1 << 20;       ///< http.body_limit bytes; larger bodies get 413
  size_t header_limit = 16 * 1024;   ///< http.header_limit bytes; larger headers get 431
  int read_timeout_ms = 10000;       ///< http.read_timeout_ms: a request must arrive within this
  int idle_timeout_ms =
      60000; ///< http.idle_timeout_ms: keep-alive connections idle longer are closed
  int request_timeout_ms = 10000; ///< http.request_timeout_ms: handler answer deadline (then 503)
  int drain_timeout_ms =
      10000; ///< http.drain_timeout_ms: on SIGTERM, wait this long for in-flight requests
  /// http.trusted_proxies: comma-separated proxy IPs whose X-Forwarded-For is believed (the
  /// client is its right-most address not in this list); empty = use the peer address.
  std::string trusted_proxies;
  /// http.max_event_streams_per_tenant: open GET /v1/events streams a tenant may hold on a node
  /// (each holds a connection and up to 1 MiB of queue); more get 429.
  int max_event_streams_per_tenant = 100;
  /// http.event_stream_recheck_s: how often an open GET /v1/events stream re-validates the
  /// credential that opened it (a revoked key or ended session ends the stream).
  int event_stream_recheck_s = 60;
  /// http.cors_allowed_origins: comma-separated web origins (scheme://host[:port]) whose pages
  /// may call the API from a browser, or "*" for any; empty = no CORS headers.
  std::string cors_allowed_origins;
};

struct db_config {
  std::string url;               ///< db.url / PARLEY_DB_URL: libpq URI (required)
  int pool_size = 4;             ///< db.pool_size: blocking connections for reads and admin writes
  int batch_max_rows = 1000;     ///< db.batch_max_rows: group commit flushes at this many rows...
  int batch_max_delay_ms = 2;    ///< db.batch_max_delay_ms: ...or after this many ms
  int writers = 2;               ///< db.writers: group-commit writer actors (see operations.md)
  int connect_timeout_ms = 3000; ///< db.connect_timeout_ms
  int statement_timeout_ms = 5000; ///< db.statement_timeout_ms: server-side statement timeout
  int reconnect_max_backoff_ms =
      5000;                      ///< db.reconnect_max_backoff_ms: cap of the reconnect backoff
  int request_timeout_ms = 5000; ///< db.request_timeout_ms: callers get an error after this
  /// db.migrate_url / PARLEY_DB_MIGRATE_URL: the tables' owner, used only to apply migrations;
  /// empty = db.url (then db.url must be allowed to create tables).
  std::string migrate_url;
  /// db.allow_rls_bypass: serve even when db.url is a superuser, BYPASSRLS or the tables' owner
  /// (Row Level Security then protects nothing; logged loudly). Default: refuse to start.
  bool allow_rls_bypass = false;
};

struct redis_config {
  std::string url; ///< redis.url / PARLEY_REDIS_URL: redis://host:port (optional)
};

/// API rate limits. The per-key and per-tenant rates come from the tenant's plan (api_rps,
/// api_burst); this section holds the node-wide knobs and the failed-authentication limit per IP.
struct ratelimit_config {
  bool enabled = true; ///< ratelimit.enabled: false turns every limit off
  int ip_failures_per_minute =
      30;                    ///< ratelimit.ip_failures_per_minute: refill of an IP's failure bucket
  int ip_failure_burst = 20; ///< ratelimit.ip_failure_burst: failures an IP may make at once
  int max_keys = 100000;     ///< ratelimit.max_keys: buckets kept in process per scope
  int redis_timeout_ms = 100; ///< ratelimit.redis_timeout_ms: slower answers fall back to local
};

struct admin_config {
  std::string token; ///< admin.token / PARLEY_ADMIN_TOKEN (secret; required)
};

struct whatsapp_config {
  std::string app_secret;   ///< whatsapp.app_secret / PARLEY_WHATSAPP_APP_SECRET (secret)
  std::string verify_token; ///< whatsapp.verify_token / PARLEY_WHATSAPP_VERIFY_TOKEN (secret)
  std::string graph_base_url = "https://graph.facebook.com"; ///< whatsapp.graph_base_url
  std::string graph_version = "v21.0";                       ///< whatsapp.graph_version
  /// whatsapp.graph_ca_file: extra PEM CA bundle trusted for the Graph API besides the system's
  /// (sandboxes, TLS-inspecting proxies, tests); certificates are always verified.
  std::string graph_ca_file;
};

/// Sending to Meta: retries, concurrency and the health of each WhatsApp session.
struct outbound_config {
  int max_attempts =
      8; ///< outbound.max_attempts: calls per message before it fails (retryable errors)
  int backoff_base_ms = 500; ///< outbound.backoff_base_ms: first retry delay (doubles, with jitter)
  int backoff_max_ms = 60000; ///< outbound.backoff_max_ms: cap of the retry delay
  int request_timeout_ms =
      10000;              ///< outbound.request_timeout_ms: one Graph API call, connect to answer
  int max_in_flight = 16; ///< outbound.max_in_flight: concurrent Graph calls per channel
  int pair_burst = 10;    ///< outbound.pair_burst: messages to one recipient in a burst...
  int pair_interval_ms =
      6000; ///< outbound.pair_interval_ms: ...then one per this interval (Meta's pair rate limit)
  int health_interval_s =
      60; ///< outbound.health_interval_s: session health check against the Graph API
  int breaker_open_ms = 2000; ///< outbound.breaker_open_ms: first pause after the circuit breaker
                              ///< opens (doubles, max 60 s)
  /// outbound.http_connections: keep-alive connections per Graph API host. A node sends at most
  /// this many messages per Graph answer time (256 at 200 ms: 1,280/s).
  int http_connections = 256;
};

struct security_config {
  /// security.master_key / PARLEY_MASTER_KEY: 32 bytes as 64 hex chars; encrypts channel secrets.
  std::string master_key;
  /// security.master_key_version: the version number of master_key; sealed values carry it
  /// ("v<N>:..."), so a rotation bumps it (see docs/security.md, key rotation).
  int master_key_version = 1;
  /// security.previous_master_keys / PARLEY_SECURITY_PREVIOUS_MASTER_KEYS (secret): older keys
  /// that can still open stored secrets, "v1:<64 hex>,v2:<64 hex>"; empty when never rotated.
  std::string previous_master_keys;
  /// security.jwt_secret / PARLEY_SECURITY_JWT_SECRET (secret, >= 32 chars): HS256 key of access
  /// tokens. Empty: derived from master_key (HMAC-SHA256, see docs/security.md).
  std::string jwt_secret;
  int access_token_ttl_s = 900;         ///< security.access_token_ttl_s: access JWT lifetime
  int refresh_token_ttl_s = 30 * 86400; ///< security.refresh_token_ttl_s: refresh token lifetime
  int login_max_failures = 5;           ///< security.login_max_failures: failures before a lock
  int login_lockout_base_s = 30;  ///< security.login_lockout_base_s: first lock, then doubling
  int login_lockout_max_s = 3600; ///< security.login_lockout_max_s: longest lock
  int password_scrypt_log_n = 15; ///< security.password_scrypt_log_n: scrypt N = 2^value
};

struct log_config {
  std::string level = "info"; ///< log.level / PARLEY_LOG_LEVEL: trace|debug|info|warn|error|off
};

struct runtime_config {
  int scheduler_threads = 2; ///< runtime.scheduler_threads: CAF worker threads
  /// runtime.scheduler_moderate_polls: polls with a 50 us sleep between them that an idle CAF
  /// worker makes before it waits to be woken (CAF's work-stealing.moderate-poll-attempts, 500
  /// by CAF's default). 0: straight from spinning to waiting.
  int scheduler_moderate_polls = 0;
  int supervisor_max_restarts = 5;       ///< runtime.supervisor_max_restarts within...
  int supervisor_window_s = 10;          ///< runtime.supervisor_window_s seconds, else escalate
  int conversation_idle_timeout_s = 300; ///< runtime.conversation_idle_timeout_s: passivation
  /// runtime.tenant_sweep_interval_s / tenant_sweep_horizon_h: how often each node removes rows
  /// that writes in flight committed for tenants deleted within the horizon.
  int tenant_sweep_interval_s = 60;
  int tenant_sweep_horizon_h = 24;
};

struct retention_config {
  /// retention.raw_event_days: processed raw webhook events (Meta's original JSON) older than
  /// this are deleted; 0 keeps them forever. Messages, statuses and conversations are kept.
  int raw_event_days = 30;
};

/// Processing of durable webhooks (actors/ingest.hpp). A webhook is acknowledged once its raw
/// event is committed; these bound the work and memory between that and its messages.
struct ingest_config {
  /// ingest.max_in_flight: raw events processed at once (parsed, routed, being stored).
  int max_in_flight = 2048;
  /// ingest.max_queued_mb: committed bodies waiting for processing kept in memory; past this
  /// they wait in PostgreSQL and are replayed from there (nothing is lost, it costs a read).
  int max_queued_mb = 64;
  /// ingest.batch_interval_ms: the inbound writer starts a batch at most this often (nobody
  /// waits for these commits; longer = larger batches, cheaper per message, later in the API).
  int batch_interval_ms = 20;
  /// ingest.batch_max_rows: rows per inbound batch at most.
  int batch_max_rows = 2000;
};

struct parley_config {
  http_config http;
  db_config db;
  redis_config redis;
  ratelimit_config ratelimit;
  admin_config admin;
  whatsapp_config whatsapp;
  security_config security;
  log_config log;
  runtime_config runtime;
  outbound_config outbound;
  retention_config retention;
  ingest_config ingest;
};

/// Thrown for any configuration problem; `key` is the dotted key (e.g. "http.port").
struct config_error : std::runtime_error {
  config_error(std::string k, const std::string& msg)
      : std::runtime_error(k + ": " + msg)
      , key(std::move(k)) {}
  std::string key;
};

using env_map = std::map<std::string, std::string>;

/// What the configuration is for: `parley migrate` needs only the database, so it does not
/// demand the admin token or the master key.
enum class purpose { serve, migrate };

/// Reads the environment's PARLEY_* variables into a map (testable without touching environ).
env_map environment();

/// Parses `json_text` (may be empty: defaults), applies `env`, validates. Throws config_error.
parley_config parse(const std::string& json_text, const env_map& env, purpose p = purpose::serve);

/// Reads `file` if given (config_error naming "--config" when unreadable) and calls parse().
parley_config load(const std::optional<std::string>& file, const env_map& env,
                   purpose p = purpose::serve);

/// security.previous_master_keys parsed: version -> 64 hex chars. Throws config_error naming the
/// key for a malformed entry, a duplicate version or the current version.
std::map<int, std::string> previous_master_keys(const security_config& sec);

/// The configuration as JSON with every secret replaced by "***" (for logs and `serve
/// --print-config`).
std::string redacted_json(const parley_config& cfg);

} // namespace parley::config
