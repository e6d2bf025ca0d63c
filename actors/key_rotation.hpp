#pragma once
// The node's secret material derived from configuration, and `parley rotate-keys`: re-sealing
// every stored channel secret under the current master key (see docs/security.md, key rotation).
#include <string>

#include "config/config.hpp"
#include "domain/crypto.hpp"

namespace parley {

/// The current master key (security.master_key, version security.master_key_version) plus every
/// key of security.previous_master_keys, for opening values sealed before a rotation.
crypto::secret_box make_secret_box(const config::security_config& sec);

/// security.jwt_secret, or when empty HMAC-SHA256(master key, "parley.jwt.v1"): a separate key
/// derived one way, so a leaked access-token key does not reveal the master key.
std::string jwt_secret_of(const config::security_config& sec);

/// `parley rotate-keys`: in one transaction, re-seals every channel secret not yet under the
/// current key. Idempotent. Prints counts as JSON on stdout; exit code 0, or 1 when a secret
/// cannot be opened with any configured key (nothing is changed then) or the database fails.
int rotate_keys(const config::parley_config& cfg);

} // namespace parley
