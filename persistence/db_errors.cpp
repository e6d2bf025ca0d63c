#include "persistence/db_errors.hpp"

#include <exception>

#include <nlohmann/json.hpp>
#include <pqxx/except>

#include "persistence/connection.hpp"

namespace parley::persistence {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

db_failure from_sqlstate(const std::string& state, std::string msg) {
  db_failure f;
  f.message = std::move(msg);
  auto cls = state.substr(0, 2);
  if (cls == "08" || state == "57P01" || state == "57P02" || state == "57P03") {
    // Connection exceptions and administrator/crash shutdown: the session is gone.
    f.code = errc::storage_unavailable;
    f.connection_lost = true;
    f.message = "database unavailable: " + f.message;
  } else if (state == "23505") {
    f.code = errc::conflict;
    f.row_specific = true;
  } else if (cls == "22" || cls == "23") {
    // Data exceptions and integrity violations are caused by the values written.
    f.code = errc::invalid_argument;
    f.row_specific = true;
  } else if (state == "57014") {
    f.code = errc::timeout;
    f.message = "database statement timed out: " + f.message;
  } else if (cls == "40" || cls == "53" || state == "55P03") {
    // Serialisation failures, deadlocks, lock timeouts and resource exhaustion pass; retry later.
    f.code = errc::storage_unavailable;
  } else {
    f.code = errc::internal;
  }
  return f;
}

} // namespace

db_failure classify_current_exception(std::string_view url) {
  try {
    throw;
  } catch (const app_error& e) {
    return {e.code, e.message, false, false, true};
  } catch (const pqxx::in_doubt_error& e) {
    return {errc::storage_unavailable,
            "database connection lost during COMMIT; the outcome is unknown: " +
                trimmed(scrub(e.what(), url)),
            true, true, false};
  } catch (const pqxx::broken_connection& e) {
    return {errc::storage_unavailable, "database unavailable: " + trimmed(scrub(e.what(), url)),
            true, false, false};
  } catch (const pqxx::sql_error& e) {
    return from_sqlstate(e.sqlstate(), trimmed(scrub(e.what(), url)));
  } catch (const nlohmann::json::exception& e) {
    // A row lacking a field or holding the wrong type: the caller's data, not the database.
    return {errc::invalid_argument, e.what(), false, false, true};
  } catch (const std::exception& e) {
    return {errc::internal, trimmed(scrub(e.what(), url)), false, false, false};
  } catch (...) {
    return {errc::internal, "unknown exception in database job", false, false, false};
  }
}

} // namespace parley::persistence
