#include "persistence/isolation_check.hpp"

#include <stdexcept>

#include <pqxx/nontransaction>

#include "persistence/connection.hpp"

namespace parley::persistence {

namespace {

constexpr const char* select_role = "SELECT current_user, r.rolsuper, r.rolbypassrls FROM pg_roles "
                                    "r WHERE r.rolname = current_user";

// The same selection of tenant tables as parley_secure_tenant_tables() in migration 0006.
constexpr const char* select_tenant_tables = R"(
  SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity,
         pg_has_role(current_user, c.relowner, 'MEMBER')
  FROM pg_class c
  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
    AND (c.relname = 'tenants'
         OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                      AND a.attname = 'tenant_id' AND NOT a.attisdropped))
  ORDER BY c.relname)";

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items)
    out += (out.empty() ? "" : ", ") + i;
  return out;
}

} // namespace

std::string isolation_report::bypass_reason() const {
  if (superuser)
    return "role '" + role + "' is a superuser";
  if (bypassrls)
    return "role '" + role + "' has BYPASSRLS";
  if (!owned_tables.empty())
    return "role '" + role + "' owns (or is a member of the owner of) " + joined(owned_tables);
  return {};
}

isolation_report inspect_isolation(const std::string& url) {
  connection_options opts;
  opts.application_name = "parley-check";
  isolation_report out;
  try {
    auto conn = connect(url, opts);
    pqxx::nontransaction tx{*conn};
    auto role = tx.exec1(select_role);
    out.role = role[0].c_str();
    out.superuser = role[1].as<bool>();
    out.bypassrls = role[2].as<bool>();
    for (const auto& row : tx.exec(select_tenant_tables)) {
      std::string name = row[0].c_str();
      if (!row[1].as<bool>())
        out.unprotected_tables.push_back(name);
      if (row[2].as<bool>())
        out.owned_tables.push_back(name);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("isolation check: " + scrub(e.what(), url));
  }
  // A superuser "owns" everything; name the real reason only.
  if (out.superuser)
    out.owned_tables.clear();
  return out;
}

} // namespace parley::persistence
