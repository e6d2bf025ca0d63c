#pragma once
// Start-up check of tenant isolation: Row Level Security only isolates tenants when every tenant
// table has it enabled and forced and the node's role cannot bypass it.
#include <string>
#include <vector>

namespace parley::persistence {

/// What the node's database role can see and bypass.
struct isolation_report {
  std::string role;                            ///< current_user of the connection
  bool superuser = false;                      ///< superusers bypass RLS
  bool bypassrls = false;                      ///< BYPASSRLS roles bypass RLS
  std::vector<std::string> owned_tables;       ///< tenant tables the role owns (may disable RLS)
  std::vector<std::string> unprotected_tables; ///< tenant tables without RLS enabled and forced

  /// The role can read across tenants whatever the per-transaction setting says.
  bool can_bypass() const { return superuser || bypassrls || !owned_tables.empty(); }
  /// Why, for the start-up error or warning.
  std::string bypass_reason() const;
};

/// Inspects the role of `url` and every tenant table (schema public: `tenants` and every table
/// with a tenant_id column). Throws std::runtime_error (credentials scrubbed) when unreachable.
isolation_report inspect_isolation(const std::string& url);

} // namespace parley::persistence
