#include "actors/session_store.hpp"

#include <map>
#include <mutex>

#include <pqxx/pqxx>

#include "domain/crypto.hpp"
#include "runtime/errors.hpp"

namespace parley::session_store {

namespace {

nlohmann::json session_of(const pqxx::row& row, const std::string& family_id) {
  return {{"ok", true},
          {"user_id", row["id"].c_str()},
          {"tenant_id", row["tenant_id"].is_null() ? nlohmann::json(nullptr)
                                                   : nlohmann::json(row["tenant_id"].c_str())},
          {"role", row["role"].c_str()},
          {"family_id", family_id}};
}

void issue(pqxx::work& tx, const std::string& family_id, const std::string& user_id,
           const std::string& hash, int ttl_s) {
  tx.exec_params("INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) "
                 "VALUES ($1::uuid, $2::uuid, $3, now() + make_interval(secs => $4))",
                 family_id, user_id, hash, ttl_s);
}

} // namespace

const std::string& dummy_hash(const password::scrypt_params& p) {
  static std::mutex mu;
  static std::map<int, std::string> by_log_n;
  std::lock_guard<std::mutex> lock(mu);
  auto it = by_log_n.find(p.log_n);
  if (it == by_log_n.end())
    it = by_log_n.emplace(p.log_n, password::hash(crypto::random_token(16), p)).first;
  return it->second;
}

persistence::db_job login(login_request req) {
  return {
      "", false, [req](pqxx::work& tx) {
        // Built before the look-up, so the first sign-in of a process pays for it whether the
        // email exists or not.
        const auto& dummy = dummy_hash(req.hashing);
        // FOR UPDATE serialises attempts on one account, so the failure count is exact.
        auto r = tx.exec_params(
            "SELECT u.id::text AS id, u.tenant_id::text AS tenant_id, u.role, u.password_hash, "
            "u.failed_logins, (u.locked_until IS NOT NULL AND u.locked_until > now()) AS locked, "
            "(u.disabled OR (u.tenant_id IS NOT NULL AND t.status <> 'active')) AS inactive "
            "FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id "
            "WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL FOR UPDATE OF u",
            req.email);
        if (r.empty()) {
          password::verify(req.password, dummy);
          return nlohmann::json{{"ok", false}, {"locked", false}};
        }
        const auto& row = r[0];
        const std::string user_id = row["id"].c_str();
        const std::string stored = row["password_hash"].c_str();
        bool locked = row["locked"].as<bool>();
        bool inactive = row["inactive"].as<bool>();
        // Always verify: a locked or disabled account answers as slowly as any other.
        bool good = password::verify(req.password, stored);
        if (locked || inactive)
          return nlohmann::json{{"ok", false}, {"locked", locked}};
        if (!good) {
          int failures = row["failed_logins"].as<int>() + 1;
          auto lock_s = session::lockout_seconds(failures, req.lockout);
          tx.exec_params("UPDATE users SET failed_logins = $2, locked_until = CASE WHEN $3 > 0 "
                         "THEN now() + make_interval(secs => $3) ELSE locked_until END "
                         "WHERE id = $1::uuid",
                         user_id, failures, lock_s);
          return nlohmann::json{{"ok", false}, {"locked", lock_s > 0}, {"user_id", user_id}};
        }
        std::optional<std::string> rehashed;
        if (password::needs_rehash(stored, req.hashing))
          rehashed = password::hash(req.password, req.hashing);
        tx.exec_params("UPDATE users SET failed_logins = 0, locked_until = NULL, "
                       "last_login_at = now(), password_hash = coalesce($2, password_hash) "
                       "WHERE id = $1::uuid",
                       user_id, rehashed);
        const std::string family = tx.exec1("SELECT gen_random_uuid()::text")[0].c_str();
        issue(tx, family, user_id, req.new_refresh_hash, req.refresh_ttl_s);
        return session_of(row, family);
      }};
}

persistence::db_job refresh(std::string presented_hash, std::string new_hash, int refresh_ttl_s) {
  return {
      "", false, [=](pqxx::work& tx) {
        auto r = tx.exec_params(
            "SELECT rt.id::text AS token_id, rt.family_id::text AS family_id, "
            "(rt.revoked_at IS NOT NULL) AS revoked, (rt.expires_at <= now()) AS expired, "
            "u.id::text AS id, u.tenant_id::text AS tenant_id, u.role, "
            "(u.deleted_at IS NULL AND NOT u.disabled "
            " AND (u.tenant_id IS NULL OR t.status = 'active')) AS active "
            "FROM refresh_tokens rt JOIN users u ON u.id = rt.user_id "
            "LEFT JOIN tenants t ON t.id = u.tenant_id "
            "WHERE rt.token_hash = $1 FOR UPDATE OF rt",
            presented_hash);
        session::refresh_state st;
        st.found = !r.empty();
        if (st.found) {
          st.revoked = r[0]["revoked"].as<bool>();
          st.expired = r[0]["expired"].as<bool>();
          st.user_active = r[0]["active"].as<bool>();
        }
        switch (session::decide(st)) {
        case session::refresh_decision::reject:
          return nlohmann::json{{"ok", false}, {"reuse", false}};
        case session::refresh_decision::revoke_family: {
          const std::string family = r[0]["family_id"].c_str();
          tx.exec_params("UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = 'reuse' "
                         "WHERE family_id = $1::uuid AND revoked_at IS NULL",
                         family);
          return nlohmann::json{{"ok", false},
                                {"reuse", true},
                                {"family_id", family},
                                {"user_id", r[0]["id"].c_str()}};
        }
        case session::refresh_decision::rotate:
          break;
        }
        const std::string family = r[0]["family_id"].c_str();
        tx.exec_params("UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = 'rotated' "
                       "WHERE id = $1::uuid",
                       std::string{r[0]["token_id"].c_str()});
        issue(tx, family, r[0]["id"].c_str(), new_hash, refresh_ttl_s);
        return session_of(r[0], family);
      }};
}

persistence::db_job logout(std::string presented_hash) {
  return {"", false, [presented_hash](pqxx::work& tx) {
            tx.exec_params("UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = 'logout' "
                           "WHERE revoked_at IS NULL AND family_id = "
                           "(SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
                           presented_hash);
            return nlohmann::json{{"ok", true}};
          }};
}

} // namespace parley::session_store
