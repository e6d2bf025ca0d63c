#include "domain/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

using namespace parley::domain;
using namespace std::chrono_literals;

namespace {

const steady_time t0 = steady_time{} + 1000h;

double seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

// The most grants any window [grant i, grant j] holds beyond rate * its length. The window holds
// j - i + 1 grants; with f(k) = k - rate * t_k the excess is f(j) - f(i) + 1, so a running minimum
// of f checks every window in one pass. The bucket promises a result <= capacity.
long double worst_excess(const std::vector<steady_time>& grants, double rate) {
  long double min_f = std::numeric_limits<long double>::max();
  long double worst = 0;
  for (size_t j = 0; j < grants.size(); ++j) {
    const long double f =
        static_cast<long double>(j) - static_cast<long double>(rate) * seconds(grants[j] - t0);
    min_f = std::min(min_f, f);
    worst = std::max(worst, f - min_f + 1);
  }
  return worst;
}

} // namespace

TEST(token_bucket, starts_full_and_empties) {
  token_bucket b(10, 3, t0);
  EXPECT_DOUBLE_EQ(b.tokens(t0), 3);
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_FALSE(b.try_take(t0));
  EXPECT_EQ(b.rate(), 10);
  EXPECT_EQ(b.capacity(), 3);
}

TEST(token_bucket, refills_at_rate_up_to_capacity) {
  token_bucket b(10, 3, t0);
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(b.try_take(t0));
  EXPECT_NEAR(b.tokens(t0 + 50ms), 0.5, 1e-9);
  EXPECT_FALSE(b.try_take(t0 + 50ms));
  EXPECT_TRUE(b.try_take(t0 + 100ms));
  EXPECT_NEAR(b.tokens(t0 + 10s), 3, 1e-12);
  EXPECT_TRUE(b.full(t0 + 10s));
}

TEST(token_bucket, wait_time_is_zero_when_available_and_exact_otherwise) {
  token_bucket b(4, 1, t0);
  EXPECT_EQ(b.wait_time(t0), 0ns);
  ASSERT_TRUE(b.try_take(t0));
  const auto w = b.wait_time(t0);
  EXPECT_NEAR(seconds(w), 0.25, 1e-6);
  EXPECT_FALSE(b.try_take(t0 + w - 1ms));
  EXPECT_TRUE(b.try_take(t0 + w));
}

TEST(token_bucket, wait_time_always_keeps_its_promise) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> rate(0.01, 5000);
  std::uniform_real_distribution<double> cap(1, 50);
  std::uniform_int_distribution<int64_t> step_ns(0, 2'000'000'000);
  for (int round = 0; round < 2000; ++round) {
    token_bucket b(rate(rng), cap(rng), t0);
    steady_time now = t0;
    while (b.try_take(now)) {
    }
    now += std::chrono::nanoseconds{step_ns(rng) % 1000};
    const auto w = b.wait_time(now);
    ASSERT_TRUE(b.try_take(now + w)) << "rate " << b.rate() << " wait " << w.count();
  }
}

TEST(token_bucket, time_going_backwards_counts_as_no_time) {
  token_bucket b(1, 1, t0 + 10s);
  ASSERT_TRUE(b.try_take(t0 + 10s));
  EXPECT_FALSE(b.try_take(t0));
  EXPECT_DOUBLE_EQ(b.tokens(t0), 0);
  // From an earlier instant the wait includes the time up to the last one seen.
  EXPECT_NEAR(seconds(b.wait_time(t0 + 9s)), 2, 1e-6);
  EXPECT_TRUE(b.try_take(t0 + 11s));
}

TEST(token_bucket, reconfigure_keeps_tokens_clamped_to_new_capacity) {
  token_bucket b(10, 10, t0);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(b.try_take(t0));
  b.reconfigure(1, 20, t0);
  EXPECT_DOUBLE_EQ(b.tokens(t0), 6);
  EXPECT_NEAR(b.tokens(t0 + 1s), 7, 1e-9);
  b.reconfigure(100, 2, t0 + 1s);
  EXPECT_DOUBLE_EQ(b.tokens(t0 + 1s), 2);
  EXPECT_EQ(b.rate(), 100);
  EXPECT_EQ(b.capacity(), 2);
}

TEST(token_bucket, refuses_parameters_that_cannot_work) {
  EXPECT_THROW(token_bucket(0, 1, t0), std::invalid_argument);
  EXPECT_THROW(token_bucket(-1, 1, t0), std::invalid_argument);
  EXPECT_THROW(token_bucket(NAN, 1, t0), std::invalid_argument);
  EXPECT_THROW(token_bucket(INFINITY, 1, t0), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, 0.5, t0), std::invalid_argument);
  EXPECT_THROW(token_bucket(1, INFINITY, t0), std::invalid_argument);
  token_bucket b(1, 1, t0);
  EXPECT_THROW(b.reconfigure(1, 0, t0), std::invalid_argument);
  EXPECT_EQ(b.capacity(), 1);
}

TEST(token_bucket, absurdly_slow_rate_does_not_overflow_the_wait) {
  token_bucket b(1e-300, 1, t0);
  ASSERT_TRUE(b.try_take(t0));
  EXPECT_GT(b.wait_time(t0), 24h * 365 * 10);
}

// Meta's default throughput is 80 messages/s: a sender taking whenever it may must get 80/s
// within 5% over 30 simulated seconds.
TEST(token_bucket, take_whenever_possible_at_80_per_second_is_accurate) {
  token_bucket b(80, 80, t0);
  // Drain the initial burst so the measurement sees the rate alone.
  while (b.try_take(t0)) {
  }
  steady_time now = t0;
  int taken = 0;
  while (now < t0 + 30s) {
    now += b.wait_time(now);
    if (b.try_take(now))
      ++taken;
  }
  EXPECT_NEAR(taken, 80 * 30, 80 * 30 * 0.05);
  EXPECT_LE(taken, 80 * 30 + 1);
}

// The defining property: over any window of length t, at most rate * t + capacity grants.
TEST(token_bucket, never_grants_more_than_rate_times_t_plus_capacity) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 40; ++round) {
    const double rate = std::uniform_real_distribution<double>(0.5, 200)(rng);
    const double capacity = std::uniform_real_distribution<double>(1, 30)(rng);
    const auto max_gap_ns = static_cast<int64_t>(3e9 / rate);
    std::uniform_int_distribution<int64_t> gap(0, max_gap_ns);
    token_bucket b(rate, capacity, t0);
    std::vector<steady_time> grants;
    steady_time now = t0;
    for (int i = 0; i < 20000; ++i) {
      now += std::chrono::nanoseconds{gap(rng) / (i % 7 == 0 ? 1 : 50)};
      if (b.try_take(now))
        grants.push_back(now);
    }
    ASSERT_GT(grants.size(), 100u);
    EXPECT_LE(worst_excess(grants, rate), capacity + 1e-6)
        << "rate " << rate << " capacity " << capacity;
  }
}

TEST(keyed_token_buckets, keys_are_independent) {
  keyed_token_buckets k(1, 2, 100);
  EXPECT_TRUE(k.try_take("a", t0));
  EXPECT_TRUE(k.try_take("a", t0));
  EXPECT_FALSE(k.try_take("a", t0));
  EXPECT_TRUE(k.try_take("b", t0));
  EXPECT_EQ(k.size(), 2u);
  EXPECT_EQ(k.wait_time("unknown", t0), 0ns);
  EXPECT_EQ(k.wait_time("b", t0), 0ns);
  EXPECT_NEAR(seconds(k.wait_time("a", t0)), 1, 1e-6);
  EXPECT_TRUE(k.try_take("a", t0 + k.wait_time("a", t0)));
}

TEST(keyed_token_buckets, sweep_forgets_only_full_buckets) {
  keyed_token_buckets k(1, 1, 100);
  ASSERT_TRUE(k.try_take("a", t0));
  ASSERT_TRUE(k.try_take("b", t0 + 1500ms));
  k.sweep(t0 + 2s); // a is full again, b is not
  EXPECT_EQ(k.size(), 1u);
  EXPECT_NEAR(seconds(k.wait_time("b", t0 + 2s)), 0.5, 1e-6); // b kept its state
  EXPECT_TRUE(k.try_take("a", t0 + 2s));                      // new full bucket: same as before
  k.sweep(t0 + 100s);
  EXPECT_EQ(k.size(), 0u);
}

TEST(keyed_token_buckets, at_max_keys_full_buckets_go_first) {
  keyed_token_buckets k(1, 1, 3);
  ASSERT_TRUE(k.try_take("a", t0));
  ASSERT_TRUE(k.try_take("b", t0 + 10s));
  ASSERT_TRUE(k.try_take("c", t0 + 10s));
  // At t0 + 10s only a is full again; d replaces it and b, c keep their empty buckets.
  ASSERT_TRUE(k.try_take("d", t0 + 10s));
  EXPECT_EQ(k.size(), 3u);
  EXPECT_FALSE(k.try_take("b", t0 + 10s));
  EXPECT_FALSE(k.try_take("c", t0 + 10s));
  EXPECT_FALSE(k.try_take("d", t0 + 10s));
}

TEST(keyed_token_buckets, at_max_keys_without_full_buckets_the_fullest_goes) {
  keyed_token_buckets k(1, 1, 2);
  ASSERT_TRUE(k.try_take("a", t0));
  ASSERT_TRUE(k.try_take("b", t0 + 500ms));
  // At t0 + 800ms a holds 0.8 tokens, b 0.3: a is evicted, the new key still gets its token.
  ASSERT_TRUE(k.try_take("c", t0 + 800ms));
  EXPECT_EQ(k.size(), 2u);
  EXPECT_FALSE(k.try_take("b", t0 + 800ms));
  EXPECT_TRUE(k.try_take("a", t0 + 800ms)); // forgotten: a fresh bucket (the documented excess)
  EXPECT_EQ(k.size(), 2u);
}

TEST(keyed_token_buckets, memory_stays_bounded_under_many_keys) {
  keyed_token_buckets k(1, 1, 50);
  std::mt19937_64 rng(3);
  steady_time now = t0;
  for (int i = 0; i < 20000; ++i) {
    now += std::chrono::microseconds{rng() % 1000};
    k.try_take("key" + std::to_string(rng() % 5000), now);
    ASSERT_LE(k.size(), 50u);
  }
}

TEST(keyed_token_buckets, per_key_bound_holds_while_keys_fit) {
  // With room for every key nothing is evicted, so each key obeys the single-bucket bound.
  keyed_token_buckets k(2, 3, 1000);
  std::mt19937_64 rng(11);
  std::vector<std::vector<steady_time>> grants(20);
  steady_time now = t0;
  for (int i = 0; i < 50000; ++i) {
    now += std::chrono::microseconds{rng() % 20000};
    const size_t key = rng() % grants.size();
    if (k.try_take("k" + std::to_string(key), now))
      grants[key].push_back(now);
    if (i % 1000 == 0)
      k.sweep(now);
  }
  for (const auto& g : grants)
    EXPECT_LE(worst_excess(g, 2), 3 + 1e-6);
}
