#include "actors/key_rotation.hpp"

#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "persistence/connection.hpp"
#include "runtime/logging.hpp"

namespace parley {

crypto::secret_box make_secret_box(const config::security_config& sec) {
  std::map<int, std::string> previous;
  for (const auto& [version, hex] : config::previous_master_keys(sec))
    previous.emplace(version, *crypto::hex_decode(hex)); // validated as hex by the config
  return crypto::secret_box{sec.master_key_version, *crypto::hex_decode(sec.master_key), previous};
}

std::string jwt_secret_of(const config::security_config& sec) {
  if (!sec.jwt_secret.empty())
    return sec.jwt_secret;
  return crypto::hmac_sha256(*crypto::hex_decode(sec.master_key), "parley.jwt.v1");
}

namespace {

struct rotation_counts {
  int64_t channels = 0;
  int64_t resealed = 0;        ///< secrets sealed anew under the current key
  int64_t already_current = 0; ///< secrets that already were
  int64_t unreadable = 0;      ///< secrets no configured key opens
};

/// Re-seals one stored value; nullopt when it already uses the current key.
std::optional<std::string> reseal(const crypto::secret_box& box, const std::string& sealed,
                                  rotation_counts& n, bool& unreadable) {
  if (crypto::secret_box::version_of(sealed) == box.current_version()) {
    ++n.already_current;
    return std::nullopt;
  }
  auto plain = box.open(sealed);
  if (!plain) {
    ++n.unreadable;
    unreadable = true;
    return std::nullopt;
  }
  ++n.resealed;
  return box.seal(*plain);
}

} // namespace

int rotate_keys(const config::parley_config& cfg) {
  log::init(cfg.log.level);
  log::logger lg{"rotate-keys"};
  try {
    auto box = make_secret_box(cfg.security);
    auto conn =
        persistence::connect(cfg.db.url, persistence::options_from(cfg.db, "parley rotate-keys"));
    pqxx::work tx{*conn};
    // Whole-table work: no statement timeout, and rows locked so a concurrent channel update
    // cannot be overwritten with an older secret.
    tx.exec0("SET LOCAL statement_timeout = 0");
    // Every tenant's channels: platform scope, the setting Row Level Security reads.
    tx.exec("SELECT set_config('parley.scope', 'platform', true)");
    rotation_counts n;
    nlohmann::json unreadable_channels = nlohmann::json::array();
    auto rows = tx.exec("SELECT id::text, access_token_enc, app_secret_enc FROM channels "
                        "ORDER BY id FOR UPDATE");
    for (const auto& row : rows) {
      ++n.channels;
      bool unreadable = false;
      const std::string id = row[0].c_str();
      auto token = reseal(box, row[1].c_str(), n, unreadable);
      std::optional<std::string> secret;
      if (!row[2].is_null())
        secret = reseal(box, row[2].c_str(), n, unreadable);
      if (unreadable)
        unreadable_channels.push_back(id);
      if (token || secret)
        tx.exec_params("UPDATE channels SET access_token_enc = coalesce($2, access_token_enc), "
                       "app_secret_enc = coalesce($3, app_secret_enc), updated_at = now() "
                       "WHERE id = $1::uuid",
                       id, token, secret);
    }
    nlohmann::json report{{"current_key_version", box.current_version()},
                          {"channels", n.channels},
                          {"secrets_resealed", n.resealed},
                          {"secrets_already_current", n.already_current},
                          {"secrets_unreadable", n.unreadable}};
    if (n.unreadable > 0) {
      // Half a rotation would leave the operator unsure which key opens what: change nothing.
      tx.abort();
      report["unreadable_channels"] = unreadable_channels;
      report["error"] = "some secrets open with no configured key: add their key to "
                        "security.previous_master_keys (PARLEY_SECURITY_PREVIOUS_MASTER_KEYS); "
                        "nothing was changed";
      std::cout << report.dump() << "\n";
      lg.error("key rotation aborted", report);
      return 1;
    }
    tx.commit();
    std::cout << report.dump() << "\n";
    lg.info("key rotation done", report);
    return 0;
  } catch (const std::exception& e) {
    lg.error("key rotation failed", {{"error", e.what()}});
    std::cerr << "parley rotate-keys: " << e.what() << "\n";
    return 1;
  }
}

} // namespace parley
