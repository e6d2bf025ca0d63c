#pragma once
// Password hashing with scrypt (OpenSSL 3 EVP_PBE_scrypt), a memory-hard KDF: guessing costs
// 128 * r * N bytes of memory per attempt. The stored form names its own parameters,
// "scrypt$<log2 N>$<r>$<p>$<salt>$<hash>" (salt and hash base64url), so the defaults can be raised
// later while old hashes still verify (needs_rehash tells when to upgrade one at sign-in).
#include <optional>
#include <string>
#include <string_view>

namespace parley::password {

/// scrypt cost parameters. Production default: N = 2^15, r = 8, p = 1 (32 MiB, measured in
/// docs/security.md). Tests use a small log_n for speed.
struct scrypt_params {
  int log_n = 15;
  int r = 8;
  int p = 1;
};

/// Hashes with a fresh 16-byte random salt; throws std::invalid_argument for parameters outside
/// the accepted bounds (log_n 1..20, r 1..32, p 1..16, memory <= 256 MiB).
std::string hash(std::string_view password, const scrypt_params& params = {});

/// Checks `password` against a stored hash in constant time (for the hash comparison). False for
/// any malformed or out-of-bounds stored value: a tampered row cannot make the server allocate
/// gigabytes.
bool verify(std::string_view password, std::string_view encoded);

/// The parameters of a stored hash, or nullopt when it is not one of ours.
std::optional<scrypt_params> params_of(std::string_view encoded);

/// True when a stored hash uses other parameters than `wanted` (rehash after a good sign-in).
bool needs_rehash(std::string_view encoded, const scrypt_params& wanted);

/// Minimum length policy shared by every place that sets a password (API and CLI).
inline constexpr size_t min_length = 10;
inline constexpr size_t max_length = 1024;

} // namespace parley::password
