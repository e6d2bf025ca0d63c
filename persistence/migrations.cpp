#include "persistence/migrations.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <stdexcept>

#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "persistence/connection.hpp"
#include "runtime/logging.hpp"

namespace parley::persistence {

namespace {

// Any fixed key works as long as every Parley process uses the same one ("parley_m" in ASCII).
constexpr long long migrate_lock_key = 0x7061726c65795f6dLL;

constexpr const char* create_schema_migrations = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                                 "  version    integer PRIMARY KEY,"
                                                 "  name       text NOT NULL,"
                                                 "  applied_at timestamptz NOT NULL DEFAULT now())";
constexpr const char* select_applied = "SELECT version FROM schema_migrations";
constexpr const char* insert_applied =
    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";

std::string label(const migration& m) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d", m.version);
  return std::string{buf} + "_" + m.name;
}

} // namespace

int migrate(const std::string& db_url) {
  return migrate(db_url, embedded_migrations());
}

int migrate(const std::string& db_url, const std::vector<migration>& migrations) {
  log::logger lg{"persistence"};
  auto sorted = migrations;
  std::sort(sorted.begin(), sorted.end(),
            [](const migration& a, const migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].version == sorted[i - 1].version)
      throw std::runtime_error("two migrations share version " + std::to_string(sorted[i].version));

  // Migrations may rewrite large tables and wait for the lock: no statement timeout here.
  connection_options opts;
  opts.connect_timeout_ms = 10000;
  opts.statement_timeout_ms = 0;
  opts.application_name = "parley-migrate";
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = connect(db_url, opts);
  } catch (const std::exception& e) {
    // Kept a broken_connection so callers can tell "not up yet" from a failing migration.
    throw pqxx::broken_connection(std::string{"migrate: "} + e.what()); // already scrubbed
  }

  // Session-level lock: held across the per-migration transactions, released when the
  // connection closes even if we throw.
  std::set<int> applied;
  try {
    pqxx::nontransaction tx{*conn};
    tx.exec_params("SELECT pg_advisory_lock($1)", migrate_lock_key);
    // "relation already exists, skipping" notices are expected on every start but the first.
    tx.exec("SET client_min_messages = warning");
    // Checked first: a role without CREATE on the schema (the application role) may still run
    // `parley migrate` when nothing is pending.
    if (tx.exec1("SELECT to_regclass('schema_migrations') IS NULL")[0].as<bool>())
      tx.exec(create_schema_migrations);
    for (const auto& row : tx.exec(select_applied))
      applied.insert(row[0].as<int>());
  } catch (const std::exception& e) {
    throw std::runtime_error("migrate: " + scrub(e.what(), db_url));
  }

  int count = 0;
  for (const auto& m : sorted) {
    if (applied.count(m.version) != 0)
      continue;
    try {
      pqxx::work tx{*conn};
      tx.exec(m.sql);
      tx.exec_params(insert_applied, m.version, m.name);
      tx.commit();
    } catch (const std::exception& e) {
      throw std::runtime_error("migration " + label(m) + " failed: " + scrub(e.what(), db_url));
    }
    lg.info("migration applied", {{"version", m.version}, {"name", m.name}});
    ++count;
  }
  if (count > 0) {
    // Row Level Security for tenant tables a later migration added without it (0006 defines the
    // function; it is idempotent).
    try {
      pqxx::work tx{*conn};
      if (!tx.exec1("SELECT to_regproc('parley_secure_tenant_tables') IS NULL")[0].as<bool>())
        tx.exec("SELECT parley_secure_tenant_tables()");
      tx.commit();
    } catch (const std::exception& e) {
      throw std::runtime_error("migrate: securing tenant tables failed: " +
                               scrub(e.what(), db_url));
    }
  }
  try {
    pqxx::nontransaction tx{*conn};
    tx.exec_params("SELECT pg_advisory_unlock($1)", migrate_lock_key);
  } catch (const std::exception&) {
    // Everything is committed; closing the connection releases the lock anyway.
  }
  return count;
}

} // namespace parley::persistence
