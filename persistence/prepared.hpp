#pragma once
// The group-commit statements run hundreds of times a second with the same text: prepared once
// per connection they are planned once, not per batch (planning was 15-30 % of their PostgreSQL
// time, and up to 0.8 ms per batch for the inbound message statement).
#include <string>
#include <utility>

#include <pqxx/transaction_base>

namespace parley::persistence {

/// Executes `sql` as the prepared statement `name` on the transaction's connection, preparing it
/// on first use. A name must always carry the same text (libpqxx refuses a redefinition); a new
/// connection (after a reconnect) prepares again on its first use.
template <class... Args>
pqxx::result exec_prepared_sql(pqxx::transaction_base& tx, const std::string& name,
                               const std::string& sql, Args&&... args) {
  tx.conn().prepare(name, sql); // registered lazily; repeating the same definition is a no-op
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}

} // namespace parley::persistence
