#pragma once
// Token buckets for outbound throughput: Meta limits messages per second per business number
// (throughput) and per recipient (the "pair rate limit", error 131056). Time is injected, so the
// buckets never read a clock and tests are exact.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace parley::domain {

using steady_time = std::chrono::steady_clock::time_point;

/// A classic token bucket: refills continuously at `rate` tokens per second up to `capacity`,
/// starts full. Over any interval of length t it grants at most rate * t + capacity tokens.
/// A `now` earlier than a previous one (a caller mixing clocks) counts as no time passing; the
/// bucket never moves backwards.
class token_bucket {
public:
  /// Throws std::invalid_argument unless rate_per_s > 0 and capacity >= 1 (both finite):
  /// configuration validation must reject such values before they reach here.
  token_bucket(double rate_per_s, double capacity, steady_time now);

  /// Takes one token if a whole one is available.
  bool try_take(steady_time now);

  /// How long until a whole token is available (0 when one is): try_take(now + wait_time(now))
  /// succeeds if nothing else takes in between.
  std::chrono::nanoseconds wait_time(steady_time now) const;

  /// Tokens available at `now` (fractional, <= capacity).
  double tokens(steady_time now) const;

  /// New rate and capacity from `now` on; the tokens already earned are kept, clamped to the new
  /// capacity. Same preconditions (and exception) as the constructor.
  void reconfigure(double rate_per_s, double capacity, steady_time now);

  double rate() const { return rate_; }
  double capacity() const { return capacity_; }

  /// Whether the bucket has refilled completely at `now`, i.e. is indistinguishable from a new one.
  bool full(steady_time now) const { return tokens(now) >= capacity_; }

private:
  void refill(steady_time now);

  double rate_;
  double capacity_;
  double tokens_;
  steady_time last_;
};

/// One bucket per key (e.g. the recipient's wa_id for Meta's per-recipient pair rate limit) with
/// bounded memory. A key seen for the first time gets a full bucket, so forgetting a full bucket
/// loses no information.
///
/// When `max_keys` buckets exist and a new key arrives, the full buckets are dropped first (a
/// sweep). If none is full, the bucket holding the most tokens is evicted: its key may then get
/// up to (capacity - its tokens) more than the limit, the least excess any eviction allows.
/// Refusing new keys instead would stall sends to every new recipient, which is worse than a rare
/// 131056 from Meta (retried). Sends are never refused for lack of memory.
class keyed_token_buckets {
public:
  /// Same preconditions as token_bucket; max_keys 0 is treated as 1.
  keyed_token_buckets(double rate_per_s, double capacity, size_t max_keys);

  bool try_take(std::string_view key, steady_time now);

  /// 0 for an unknown key (its bucket would start full).
  std::chrono::nanoseconds wait_time(std::string_view key, steady_time now) const;

  /// Forgets buckets that have refilled completely (no information lost). Linear in size().
  void sweep(steady_time now);

  size_t size() const { return buckets_.size(); }
  size_t max_keys() const { return max_keys_; }

private:
  struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void make_room(steady_time now);

  double rate_;
  double capacity_;
  size_t max_keys_;
  std::unordered_map<std::string, token_bucket, string_hash, std::equal_to<>> buckets_;
};

} // namespace parley::domain
