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
  int connect_timeout_ms = 3000;      ///< libpq connect_timeout (rounded up to whole seconds)
  int statement_timeout_ms = 5000;    ///< server-side statement_timeout; 0 = none
  std::string application_name = "parley"; ///< shows in pg_stat_activity (and lets tests find us)
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
