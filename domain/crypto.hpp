#pragma once
// Cryptographic primitives Parley needs: webhook signatures (HMAC-SHA256), API keys (random tokens,
// SHA-256 hashes) and encryption of stored channel secrets (AES-256-GCM). Thin wrappers over
// OpenSSL 3 EVP so no other module touches OpenSSL directly. All functions are thread-safe.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace parley::crypto {

/// HMAC-SHA256 of `data` under `key`, as 64 lowercase hex characters.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// HMAC-SHA256 of `data` under `key`, the raw 32 bytes (JWT signatures, key derivation).
std::string hmac_sha256(std::string_view key, std::string_view data);

/// Compares without data-dependent early exit (CRYPTO_memcmp); only the lengths may leak.
bool constant_time_equal(std::string_view a, std::string_view b);

/// Checks Meta's `X-Hub-Signature-256` header ("sha256=" + 64 hex, either case) against the
/// HMAC-SHA256 of the raw body. False for any malformed header and for an empty app secret
/// (an empty key would let anyone forge signatures).
bool verify_meta_signature(std::string_view app_secret, std::string_view raw_body,
                           std::string_view header_value);

/// SHA-256 of `data` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view data);

/// `n` bytes from the OpenSSL CSPRNG; throws std::runtime_error if it cannot deliver.
std::string random_bytes(size_t n);

/// Frees what OpenSSL keeps for the calling thread (its random generators, error queue). For
/// threads whose end the process does not wait for (CAF's detached actors: the actor system
/// stops waiting for them before their thread-local destructors run): called while the actor
/// ends, so that state is not still being torn down when the process exits (LeakSanitizer reports
/// it then). Harmless if the thread uses OpenSSL again: the state is made anew.
void release_thread_state();

/// `n_bytes` random bytes as 2 * n_bytes lowercase hex characters.
std::string random_hex(size_t n_bytes);

/// `n_bytes` random bytes as base64url without padding (URL- and header-safe).
std::string random_token(size_t n_bytes);

/// Lowercase hex.
std::string hex_encode(std::string_view bytes);

/// Decodes hex of either case; nullopt for odd length or any non-hex character.
std::optional<std::string> hex_decode(std::string_view hex);

/// Standard base64 (RFC 4648 section 4) with '=' padding.
std::string base64_encode(std::string_view bytes);

/// Strict standard base64: padding required, no whitespace, no non-zero trailing bits.
std::optional<std::string> base64_decode(std::string_view text);

/// base64url (RFC 4648 section 5) without padding, as used by JWTs and tokens.
std::string base64url_encode(std::string_view bytes);

/// Strict base64url without padding; nullopt for '=' or any character outside the alphabet.
std::optional<std::string> base64url_decode(std::string_view text);

/// Authenticated encryption of small secrets (channel access tokens, app secrets) under the
/// node's versioned master keys: AES-256-GCM with a fresh random 96-bit nonce per seal. Sealed
/// form is "v<N>:" + base64(nonce[12] | ciphertext | tag[16]) where N is the version of the master
/// key that sealed it. seal() always uses the current key; open() accepts every key it was given,
/// so values sealed before a rotation stay readable until `parley rotate-keys` re-seals them.
/// Immutable after construction, so one instance may be shared between threads.
class secret_box {
public:
  /// `key32` is the raw 32-byte key (e.g. hex_decode(config.security.master_key)), version 1;
  /// throws std::invalid_argument for any other length.
  explicit secret_box(std::string key32);
  /// Current key `key32` with version `version` (>= 1), plus older keys by version that open()
  /// still accepts. Throws std::invalid_argument for a wrong key length or a duplicate version.
  secret_box(int version, std::string key32, const std::map<int, std::string>& previous);
  secret_box(const secret_box&) = default;
  secret_box& operator=(const secret_box&) = default;
  secret_box(secret_box&&) = default;
  secret_box& operator=(secret_box&&) = default;
  ~secret_box();

  /// Encrypts `plaintext` under the current key; never returns the same output twice.
  std::string seal(std::string_view plaintext) const;

  /// Decrypts a value from seal() under whichever known key its version names; nullopt on a bad
  /// format, an unknown version, a wrong key or any tampering.
  std::optional<std::string> open(std::string_view sealed) const;

  /// Version of the key seal() uses.
  int current_version() const { return version_; }

  /// The key version a sealed value names ("v7:..." -> 7); nullopt when the prefix is malformed.
  static std::optional<int> version_of(std::string_view sealed);

private:
  int version_ = 1;
  std::map<int, std::string> keys_; ///< version -> raw 32-byte key, the current one included
};

/// A new tenant API key: "pk_live_" + random_token(24). Shown once, stored only as api_key_hash.
std::string generate_api_key();

/// What is stored for an API key: sha256_hex(key). Keys carry 192 random bits, so an unsalted
/// fast hash is enough and lets the key be looked up by its hash.
std::string api_key_hash(std::string_view key);

} // namespace parley::crypto
