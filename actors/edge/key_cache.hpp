#pragma once
// Resolved API keys, kept for a few seconds. Every tenant API request presents its key, and the
// look-up (key, tenant status, plan rates) cost half a millisecond of PostgreSQL per request in
// the outbound benchmark. A revocation, suspension or plan change on this node clears the cache
// at once; on other nodes it takes effect within `ttl` (documented in docs/security.md).
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace parley::edge {

class api_key_cache {
public:
  using clock = std::chrono::steady_clock;

  explicit api_key_cache(std::chrono::milliseconds ttl, size_t max_entries = 100000)
      : ttl_(ttl)
      , max_entries_(max_entries) {}

  /// The resolution of `key_hash` ({"tenant_id","key_id","api_rps"?,"api_burst"?}) if fresh.
  std::optional<nlohmann::json> find(const std::string& key_hash) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto it = entries_.find(key_hash);
    if (it == entries_.end())
      return std::nullopt;
    if (clock::now() >= it->second.expires) {
      entries_.erase(it);
      return std::nullopt;
    }
    return it->second.who;
  }

  /// Only successful resolutions are kept: unknown keys always reach the database (and the
  /// failed-authentication limit).
  void put(const std::string& key_hash, nlohmann::json who) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (entries_.size() >= max_entries_)
      entries_.clear(); // a flood of distinct valid keys is not a case worth an LRU
    entries_[key_hash] = entry{std::move(who), clock::now() + ttl_};
  }

  /// After a revocation, a tenant's suspension or deletion, or a plan change.
  void clear() {
    std::lock_guard<std::mutex> guard{mtx_};
    entries_.clear();
  }

private:
  struct entry {
    nlohmann::json who;
    clock::time_point expires;
  };
  std::chrono::milliseconds ttl_;
  size_t max_entries_;
  std::mutex mtx_;
  std::unordered_map<std::string, entry> entries_;
};

} // namespace parley::edge
