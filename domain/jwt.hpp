#pragma once
// Access tokens: compact JWS with HS256 only (RFC 7515/7519). The algorithm is fixed by the
// verifier, never taken from the token, so "alg":"none" and algorithm-confusion tricks are refused
// before any claim is read. Time is injected, so expiry is tested without waiting.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace parley::jwt {

/// Why a token was refused. Callers answer 401 for all of them; the reason is for logs and tests.
enum class failure {
  malformed,       ///< not three base64url parts, or header/payload not JSON objects
  wrong_algorithm, ///< header alg is not "HS256" (none, RS256, ...) or carries "crit"
  bad_signature,   ///< HMAC does not match
  expired,         ///< now >= exp + leeway, or exp missing
  not_yet_valid,   ///< nbf or iat lies in the future beyond the leeway
  wrong_issuer,    ///< iss differs from the expected issuer
  wrong_audience,  ///< aud does not name the expected audience
};

/// Readable name of a failure, e.g. "expired" (no token content, safe to log).
std::string_view to_string(failure f);

/// What the verifier requires besides a valid signature.
struct expectations {
  std::string issuer;
  std::string audience;
  int64_t now = 0;          ///< seconds since the epoch, injected by the caller
  int64_t leeway_s = 30;    ///< tolerated clock skew for exp, nbf and iat
  size_t max_length = 4096; ///< longer tokens are refused as malformed before any decoding
};

/// Either the verified claims or why the token was refused.
struct verified {
  std::optional<nlohmann::json> claims;
  failure reason = failure::malformed;
  explicit operator bool() const { return claims.has_value(); }
};

/// Signs `claims` (a JSON object) as header {"alg":"HS256","typ":"JWT"}.payload.signature.
std::string sign_hs256(const nlohmann::json& claims, std::string_view secret);

/// Verifies signature, algorithm and registered claims; see `failure` for each refusal.
verified verify_hs256(std::string_view token, std::string_view secret, const expectations& want);

/// True when `token` has the shape of a compact JWS (three non-empty dot-separated parts), which
/// is how the edge tells a user token from an API key before doing any work.
bool looks_like_jwt(std::string_view token);

} // namespace parley::jwt
