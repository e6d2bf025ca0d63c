#include "domain/session.hpp"

#include <algorithm>

#include "domain/crypto.hpp"

namespace parley::session {

std::string new_refresh_token() {
  return "rt_" + crypto::random_token(32);
}

std::string refresh_token_hash(std::string_view token) {
  return crypto::sha256_hex(token);
}

refresh_decision decide(const refresh_state& s) {
  if (!s.found)
    return refresh_decision::reject;
  if (s.revoked)
    return refresh_decision::revoke_family;
  if (s.expired || !s.user_active)
    return refresh_decision::reject;
  return refresh_decision::rotate;
}

int64_t lockout_seconds(int failures, const lockout_policy& policy) {
  if (policy.max_failures < 1 || failures < policy.max_failures)
    return 0;
  int64_t seconds = std::max<int64_t>(policy.base_s, 1);
  // Doubling stops at the cap, so huge failure counts cannot overflow.
  for (int i = policy.max_failures; i < failures && seconds < policy.max_s; ++i)
    seconds *= 2;
  return std::min(seconds, policy.max_s);
}

} // namespace parley::session
