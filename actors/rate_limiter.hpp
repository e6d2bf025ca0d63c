#pragma once
// API rate limits: token buckets per API key and per tenant (rates from the tenant's plan) and,
// for failed authentication only, per client IP. With Redis the buckets live there (one atomic
// Lua script per decision, pipelined from one thread) so limits hold across nodes; without Redis,
// or while it is unreachable, in process. Redis trouble never fails a request: the decision is
// then taken locally, and logs and metrics say so.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"
#include "domain/token_bucket.hpp"
#include "runtime/logging.hpp"
#include "runtime/metrics.hpp"

namespace parley {

/// One bucket to take a token from.
struct rate_bucket {
  std::string scope; ///< "api_key", "tenant" or "ip": metrics label and part of the key
  std::string id;    ///< key id, tenant id or address
  double rate = 1;   ///< tokens per second (> 0)
  double burst = 1;  ///< capacity (>= 1)
};

/// The outcome of one decision.
struct rate_verdict {
  bool allowed = true;
  std::chrono::nanoseconds retry_after{0}; ///< when refused: until the emptiest bucket has a token
  std::string scope;                       ///< when refused: the scope of that bucket
};

class rate_limiter {
public:
  using clock_fn = std::function<domain::steady_time()>;
  using done_fn = std::function<void(rate_verdict)>;

  /// `redis_url` empty = in process only. `now` is injectable for tests. `m` must outlive this.
  rate_limiter(
      const config::ratelimit_config& cfg, std::string redis_url, metrics::registry& m,
      clock_fn now = [] { return std::chrono::steady_clock::now(); });
  ~rate_limiter();
  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  /// Takes one token from every bucket, or from none when any is empty (all or nothing), and
  /// calls `done` once, possibly on the Redis thread. Disabled limiter: allowed at once.
  void take(std::vector<rate_bucket> buckets, done_fn done);

  /// An IP that exhausted its failed-authentication bucket: refused until it refills. Local and
  /// synchronous, so a flood of forged credentials costs a map look-up each. Sets retry_after.
  bool ip_blocked(const std::string& ip, std::chrono::nanoseconds& retry_after);

  /// Counts a failed authentication from `ip` (bad API key, admin token, login, webhook
  /// signature). `done` (optional) learns whether the IP is now over its limit.
  void ip_failed(const std::string& ip, done_fn done = {});

  /// Whether decisions currently go to Redis.
  bool redis_active() const;

  /// Stops the Redis thread (decisions already queued are taken first); later decisions are
  /// local. The destructor does it too; call it earlier when the thread's callbacks must be over,
  /// e.g. before the actor system they use goes away.
  void stop();

private:
  struct local_bucket {
    domain::token_bucket bucket;
    double rate;
    double burst;
  };
  struct pending {
    std::vector<rate_bucket> buckets;
    done_fn done;
  };

  rate_verdict take_local(const std::vector<rate_bucket>& buckets);
  void finish(const std::vector<rate_bucket>& buckets, rate_verdict v, const done_fn& done);
  void redis_loop();
  bool redis_connect();
  void redis_down(const std::string& why);
  void count_refusal(const std::string& scope);

  config::ratelimit_config cfg_;
  std::string redis_url_;
  metrics::registry& metrics_;
  clock_fn now_;
  log::logger lg_{"ratelimit"};

  std::mutex local_mu_; ///< guards the in-process buckets and the blocked-IP map
  std::unordered_map<std::string, local_bucket> local_;
  std::unordered_map<std::string, domain::steady_time> blocked_until_;

  // Redis: one thread owns the connection; callers enqueue.
  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<pending> queue_;
  bool stopping_ = false;
  std::atomic<bool> redis_up_{false};
  struct redis_conn;
  std::unique_ptr<redis_conn> conn_;
  std::string script_sha_;
  std::thread worker_;

  metrics::gauge* backend_redis_ = nullptr;
  metrics::gauge* backend_local_ = nullptr;
  metrics::counter* redis_errors_ = nullptr;
};

/// The client address of a request: the peer, or, when the peer is one of `trusted_proxies`
/// (comma-separated), the right-most X-Forwarded-For address that is not a trusted proxy.
std::string client_ip(const std::string& peer, std::string_view forwarded_for,
                      std::string_view trusted_proxies);

} // namespace parley
