// The rate limiter's in-process path with an injected clock: all-or-nothing takes over the key
// and tenant buckets, the scope and wait of a refusal, the failed-authentication block per
// address, Redis fallback, and client addresses behind trusted proxies.
#include "actors/rate_limiter.hpp"

#include <gtest/gtest.h>

namespace parley {
namespace {

using namespace std::chrono_literals;

struct rate_limiter_test : ::testing::Test {
  domain::steady_time now{};
  metrics::registry registry;
  config::ratelimit_config cfg = [] {
    config::ratelimit_config c;
    c.ip_failures_per_minute = 6; // one every 10 s
    c.ip_failure_burst = 3;
    return c;
  }();

  std::unique_ptr<rate_limiter> make(std::string redis_url = {}) {
    return std::make_unique<rate_limiter>(cfg, std::move(redis_url), registry,
                                          [this] { return now; });
  }

  static rate_verdict take(rate_limiter& l, std::vector<rate_bucket> b) {
    rate_verdict out;
    bool called = false;
    l.take(std::move(b), [&](rate_verdict v) {
      out = v;
      called = true;
    });
    EXPECT_TRUE(called) << "the local path answers synchronously";
    return out;
  }

  static std::vector<rate_bucket> api(const std::string& key, const std::string& tenant,
                                      double rate, double burst) {
    return {{"api_key", key, rate, burst}, {"tenant", tenant, rate, burst}};
  }

  double refused(const std::string& scope) {
    return registry.get_counter("parley_rate_limited_total", "", {{"scope", scope}}).value();
  }
};

TEST_F(rate_limiter_test, burst_then_refusal_with_the_wait_until_the_next_token) {
  auto l = make();
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(take(*l, api("k1", "t1", 1, 3)).allowed) << i;
  auto v = take(*l, api("k1", "t1", 1, 3));
  EXPECT_FALSE(v.allowed);
  EXPECT_NEAR(std::chrono::duration<double>(v.retry_after).count(), 1.0, 1e-6);
  EXPECT_EQ(refused("api_key") + refused("tenant"), 1);
  now += 1s;
  EXPECT_TRUE(take(*l, api("k1", "t1", 1, 3)).allowed);
}

// Regression: threads read the clock before they take the limiter's lock, so a decision can
// carry an instant earlier than one already applied to the bucket. With tokens to spare that
// must not be a refusal (it was: the wait "up to the later instant" counted as one, and a
// tenant allowed 1,000,000 requests/s got an occasional 429 under load).
TEST_F(rate_limiter_test, an_instant_earlier_than_the_last_one_seen_is_no_refusal) {
  auto l = make();
  now += 10ms;
  ASSERT_TRUE(take(*l, api("k1", "t1", 1e6, 1e6)).allowed);
  now -= 1ms;
  auto v = take(*l, api("k1", "t1", 1e6, 1e6));
  EXPECT_TRUE(v.allowed) << "refused by " << v.scope << " for " << v.retry_after.count() << " ns";
  EXPECT_EQ(refused("api_key") + refused("tenant"), 0);
}

TEST_F(rate_limiter_test, the_tenant_bucket_caps_all_its_keys) {
  auto l = make();
  EXPECT_TRUE(take(*l, api("k1", "t1", 1, 2)).allowed);
  EXPECT_TRUE(take(*l, api("k2", "t1", 1, 2)).allowed);
  auto v = take(*l, api("k3", "t1", 1, 2));
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.scope, "tenant");
  // Other tenants are untouched.
  EXPECT_TRUE(take(*l, api("k4", "t2", 1, 2)).allowed);
}

TEST_F(rate_limiter_test, a_refusal_takes_nothing_from_the_other_buckets) {
  auto l = make();
  EXPECT_TRUE(take(*l, api("k1", "t1", 1, 1)).allowed);
  // k2 is fresh but t1 is empty: refused, and k2 keeps its token.
  EXPECT_FALSE(take(*l, api("k2", "t1", 1, 1)).allowed);
  now += 1s;
  EXPECT_TRUE(take(*l, api("k2", "t1", 1, 1)).allowed);
}

TEST_F(rate_limiter_test, a_changed_plan_applies_to_existing_buckets) {
  auto l = make();
  EXPECT_TRUE(take(*l, api("k1", "t1", 0.001, 1)).allowed);
  EXPECT_FALSE(take(*l, api("k1", "t1", 0.001, 1)).allowed);
  // A bigger burst does not grant tokens retroactively, but the faster rate refills sooner.
  EXPECT_FALSE(take(*l, api("k1", "t1", 100, 100)).allowed);
  now += 100ms;
  EXPECT_TRUE(take(*l, api("k1", "t1", 100, 100)).allowed);
}

TEST_F(rate_limiter_test, failed_authentication_blocks_an_address_until_it_refills) {
  auto l = make();
  std::chrono::nanoseconds wait{0};
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(l->ip_blocked("10.0.0.1", wait));
    bool allowed = false;
    l->ip_failed("10.0.0.1", [&](rate_verdict v) { allowed = v.allowed; });
    EXPECT_TRUE(allowed) << "failure " << i << " is within the burst";
  }
  bool allowed = true;
  l->ip_failed("10.0.0.1", [&](rate_verdict v) { allowed = v.allowed; });
  EXPECT_FALSE(allowed);
  EXPECT_TRUE(l->ip_blocked("10.0.0.1", wait));
  EXPECT_NEAR(std::chrono::duration<double>(wait).count(), 10.0, 1e-6);
  EXPECT_FALSE(l->ip_blocked("10.0.0.2", wait)) << "other addresses are unaffected";
  now += 10s;
  EXPECT_FALSE(l->ip_blocked("10.0.0.1", wait));
  EXPECT_GE(refused("ip"), 2);
}

TEST_F(rate_limiter_test, disabled_allows_everything) {
  cfg.enabled = false;
  auto l = make();
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(take(*l, api("k1", "t1", 1, 1)).allowed);
  for (int i = 0; i < 10; ++i)
    l->ip_failed("10.0.0.1");
  std::chrono::nanoseconds wait{0};
  EXPECT_FALSE(l->ip_blocked("10.0.0.1", wait));
}

TEST_F(rate_limiter_test, memory_is_bounded) {
  cfg.max_keys = 10;
  auto l = make();
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(take(*l, api("k" + std::to_string(i), "t" + std::to_string(i), 1, 1)).allowed);
}

TEST_F(rate_limiter_test, an_unreachable_redis_means_local_decisions_not_failures) {
  cfg.redis_timeout_ms = 50;
  auto l = make("redis://127.0.0.1:1"); // nothing listens on port 1
  EXPECT_FALSE(l->redis_active());
  EXPECT_TRUE(take(*l, api("k1", "t1", 1, 1)).allowed);
  EXPECT_FALSE(take(*l, api("k1", "t1", 1, 1)).allowed);
  EXPECT_EQ(registry.get_gauge("parley_rate_limit_backend", "", {{"backend", "local"}}).value(), 1);
}

TEST(client_ip, the_peer_unless_it_is_a_trusted_proxy) {
  EXPECT_EQ(client_ip("1.2.3.4", "9.9.9.9", ""), "1.2.3.4");
  EXPECT_EQ(client_ip("1.2.3.4", "9.9.9.9", "10.0.0.1"), "1.2.3.4");
  EXPECT_EQ(client_ip("10.0.0.1", "9.9.9.9", "10.0.0.1"), "9.9.9.9");
  EXPECT_EQ(client_ip("10.0.0.1", "", "10.0.0.1"), "10.0.0.1");
  // Right to left, skipping our own proxies; what the client wrote on the left is not believed.
  EXPECT_EQ(client_ip("10.0.0.1", "6.6.6.6, 9.9.9.9, 10.0.0.2", "10.0.0.1, 10.0.0.2"), "9.9.9.9");
  EXPECT_EQ(client_ip("10.0.0.1", " 10.0.0.2 ", "10.0.0.1,10.0.0.2"), "10.0.0.1");
}

} // namespace
} // namespace parley
