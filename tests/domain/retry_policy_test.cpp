#include "domain/retry_policy.hpp"

#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

using namespace parley::domain;
using namespace std::chrono_literals;

TEST(retry_policy, may_retry_counts_all_attempts) {
  retry_policy p;
  EXPECT_TRUE(may_retry(p, 0));
  EXPECT_TRUE(may_retry(p, 7));
  EXPECT_FALSE(may_retry(p, 8));
  EXPECT_FALSE(may_retry(p, 100));
  p.max_attempts = 1;
  EXPECT_TRUE(may_retry(p, 0));
  EXPECT_FALSE(may_retry(p, 1));
}

TEST(retry_policy, equal_jitter_bounds_double_until_the_cap) {
  const retry_policy p; // base 500 ms, cap 60 s
  const std::pair<int, int64_t> expected[] = {{1, 500},   {2, 1000},  {3, 2000},  {4, 4000},
                                              {5, 8000},  {6, 16000}, {7, 32000}, {8, 60000},
                                              {9, 60000}, {50, 60000}};
  for (auto [failures, d] : expected) {
    EXPECT_EQ(retry_delay(p, failures, 0.0).count(), d / 2) << failures;
    EXPECT_EQ(retry_delay(p, failures, 0.5).count(), d / 2 + d / 4) << failures;
    EXPECT_LE(retry_delay(p, failures, 0.999999).count(), d) << failures;
    EXPECT_GE(retry_delay(p, failures, 0.999999).count(), d - 1) << failures;
  }
}

TEST(retry_policy, huge_failure_counts_do_not_overflow) {
  retry_policy p;
  p.cap = std::chrono::milliseconds{std::numeric_limits<int64_t>::max()};
  const auto d = retry_delay(p, std::numeric_limits<int>::max(), 0.0);
  EXPECT_GT(d.count(), 0);
  EXPECT_LE(d, p.cap);
  EXPECT_EQ(retry_delay(retry_policy{}, std::numeric_limits<int>::max(), 0.0), 30000ms);
}

TEST(retry_policy, odd_inputs_stay_in_range) {
  const retry_policy p;
  EXPECT_EQ(retry_delay(p, 0, 0.0), 250ms); // < 1 counts as 1
  EXPECT_EQ(retry_delay(p, -5, 0.0), 250ms);
  EXPECT_EQ(retry_delay(p, 1, -3.0), 250ms); // clamped
  EXPECT_EQ(retry_delay(p, 1, NAN), 250ms);
  EXPECT_LT(retry_delay(p, 1, 7.0), 501ms);
  retry_policy negative{3, -5ms, -1ms};
  EXPECT_EQ(retry_delay(negative, 4, 0.7), 0ms);
}

TEST(retry_policy, retry_after_is_a_floor_even_beyond_the_cap) {
  const retry_policy p;
  EXPECT_EQ(retry_delay(p, 1, 0.0, 10s), 10s);
  EXPECT_EQ(retry_delay(p, 1, 0.0, 120s), 120s);
  EXPECT_EQ(retry_delay(p, 8, 0.0, 1s), 30s); // the backoff is longer: it wins
  EXPECT_EQ(retry_delay(p, 1, 0.0, std::nullopt), 250ms);
}

TEST(retry_policy, delay_is_monotonic_in_the_random_input_and_within_bounds) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  const retry_policy p;
  for (int failures = 1; failures < 20; ++failures) {
    const auto low = retry_delay(p, failures, 0.0);
    for (int i = 0; i < 100; ++i) {
      const auto d = retry_delay(p, failures, unit(rng));
      EXPECT_GE(d, low);
      EXPECT_LE(d, 2 * low + 1ms);
    }
  }
}
