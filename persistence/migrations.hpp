#pragma once
// Versioned SQL migrations. The files persistence/migrations/NNNN_name.sql are embedded into the
// binary at build time, so `parley migrate` and start-up need nothing on disk.
#include <string>
#include <vector>

namespace parley::persistence {

/// One migration file: version NNNN, name, and its SQL (run in one transaction).
struct migration {
  int version;
  std::string name;
  std::string sql;
};

/// Every embedded migration, sorted by version (generated from persistence/migrations/*.sql).
const std::vector<migration>& embedded_migrations();

/// Applies pending embedded migrations in order, each in its own transaction, recording them in
/// schema_migrations(version, name, applied_at). Safe when several processes start at once: a
/// pg_advisory_lock serialises the whole run. Returns the number applied. Throws
/// std::runtime_error naming the failed migration (credentials scrubbed).
int migrate(const std::string& db_url);

/// The same for an explicit list (tests use it to exercise failures).
int migrate(const std::string& db_url, const std::vector<migration>& migrations);

} // namespace parley::persistence
