#pragma once
// SQL of sign-in: password check with per-account lockout, refresh-token rotation with reuse
// detection, logout. Outcomes the client must not tell apart (unknown email, wrong password,
// locked or disabled account) come back as {"ok":false}; they are not errors, because the failure
// counter they update must commit.
#include <optional>
#include <string>

#include "domain/password.hpp"
#include "domain/session.hpp"
#include "persistence/messages.hpp"

namespace parley::session_store {

struct login_request {
  std::string email;
  std::string password;
  std::string new_refresh_hash; ///< the refresh token to issue on success, hashed
  int refresh_ttl_s = 0;
  session::lockout_policy lockout;
  password::scrypt_params hashing; ///< current parameters: older hashes are upgraded on success
};

/// {"ok":true,"user_id","tenant_id"|null,"role","family_id"} or {"ok":false,"locked":bool}.
persistence::db_job login(login_request req);

/// Rotates: {"ok":true, ...as login} with `new_hash` stored in the same family, or
/// {"ok":false,"reuse":bool}; a reused token revokes its whole family.
persistence::db_job refresh(std::string presented_hash, std::string new_hash, int refresh_ttl_s);

/// Revokes the family of the presented token (if any); always {"ok":true}.
persistence::db_job logout(std::string presented_hash);

/// A hash of a random password with the given parameters: verified against when the email is
/// unknown, so an unknown email costs as much time as a wrong password.
const std::string& dummy_hash(const password::scrypt_params& p);

} // namespace parley::session_store
