#pragma once
// Sign-in sessions: refresh tokens and login throttling, as pure decisions. Refresh tokens are
// random, shown to the client once and stored only as SHA-256; each use rotates them, and a token
// that was already rotated coming back means it was stolen (or replayed), so the whole family
// (every token descended from the same sign-in) is revoked.
#include <cstdint>
#include <string>
#include <string_view>

namespace parley::session {

/// A new refresh token: "rt_" + 32 random bytes base64url (256 bits).
std::string new_refresh_token();

/// What is stored for a refresh token: sha256 hex (like API keys: the token is random enough).
std::string refresh_token_hash(std::string_view token);

/// State of a presented refresh token as the database found it.
struct refresh_state {
  bool found = false;
  bool revoked = false; ///< already rotated or logged out
  bool expired = false;
  bool user_active = false; ///< user exists, not disabled/deleted, tenant active
};

enum class refresh_decision {
  rotate,        ///< issue a new pair, revoke the presented token
  reject,        ///< 401, nothing else to do
  revoke_family, ///< reuse of a rotated token: revoke every token of the family, then 401
};

/// The rotation rule with reuse detection.
refresh_decision decide(const refresh_state& s);

/// Per-account brute-force protection: after `max_failures` consecutive failures the account is
/// locked for base_s * 2^(failures - max_failures) seconds, capped at max_s.
struct lockout_policy {
  int max_failures = 5;
  int64_t base_s = 30;
  int64_t max_s = 3600;
};

/// Seconds to lock the account after `failures` consecutive failures (0: no lock).
int64_t lockout_seconds(int failures, const lockout_policy& policy);

} // namespace parley::session
