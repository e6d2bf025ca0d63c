#pragma once
// Building libpq connection strings and keeping credentials out of anything we print.
// libpq accepts either a URI (postgresql://...) or "key=value" pairs; both are handled here so an
// operator can use either form in db.url.
#include <memory>
#include <string>
#include <string_view>

#include <pqxx/connection>

#include "config/config.hpp"

namespace parley::persistence {

/// Per-connection settings added to the configured URL.
struct connection_options {
  int connect_timeout_ms = 3000;           ///< libpq connect_timeout (rounded up to whole seconds)
  int statement_timeout_ms = 5000;         ///< server-side statement_timeout; 0 = none
  std::string application_name = "parley"; ///< shows in pg_stat_activity (and lets tests find us)
  /// Group-commit writers: sequential scans, hash and merge joins are disabled for the session.
  /// Their statements are prepared once per connection, and a generic plan made while a table
  /// was still small (a fresh install, a bench) kept hash-joining a sequential scan of it as it
  /// grew (32 ms per batch at 16,000 conversations); every writer statement is designed as
  /// per-row index look-ups, so this only removes the wrong choices.
  bool index_plans_only = false;
};

/// Options for one role ("parley-pool", "parley-writer") from the db config section.
connection_options options_from(const config::db_config& cfg, std::string application_name);

/// `url` plus connect_timeout, statement_timeout (via `options=-c ...`), application_name and TCP
/// keepalives. Keys the URL already sets win, so an operator can override any of them.
std::string connection_string(const std::string& url, const connection_options& opts);

/// The same server and credentials with another database name (scratch databases, tooling).
std::string with_database(const std::string& url, const std::string& dbname);

/// `text` with passwords removed: URI user-info passwords, password=... pairs, and (when `url` is
/// given) every occurrence of that URL's password. Use on anything that reaches a log or a reply.
std::string scrub(std::string_view text, std::string_view url = {});

/// Opens a connection. Failures throw pqxx::broken_connection whose text is already scrubbed.
std::unique_ptr<pqxx::connection> connect(const std::string& url, const connection_options& opts);

} // namespace parley::persistence
