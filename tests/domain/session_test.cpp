#include "domain/session.hpp"

#include <gtest/gtest.h>

namespace {

using namespace parley::session;

TEST(refresh_token, random_and_hashed) {
  auto a = new_refresh_token();
  auto b = new_refresh_token();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("rt_", 0), 0u);
  EXPECT_EQ(refresh_token_hash(a).size(), 64u);
  EXPECT_EQ(refresh_token_hash(a), refresh_token_hash(a));
  EXPECT_NE(refresh_token_hash(a), refresh_token_hash(b));
}

TEST(refresh_token, rotation_and_reuse_detection) {
  EXPECT_EQ(decide({}), refresh_decision::reject);
  EXPECT_EQ(decide({true, false, false, true}), refresh_decision::rotate);
  // A token that was already rotated (or logged out) coming back: revoke the family.
  EXPECT_EQ(decide({true, true, false, true}), refresh_decision::revoke_family);
  EXPECT_EQ(decide({true, true, true, false}), refresh_decision::revoke_family);
  EXPECT_EQ(decide({true, false, true, true}), refresh_decision::reject);
  EXPECT_EQ(decide({true, false, false, false}), refresh_decision::reject);
}

TEST(lockout, grows_exponentially_and_is_capped) {
  lockout_policy p{5, 30, 3600};
  for (int f = 0; f < 5; ++f)
    EXPECT_EQ(lockout_seconds(f, p), 0) << f;
  EXPECT_EQ(lockout_seconds(5, p), 30);
  EXPECT_EQ(lockout_seconds(6, p), 60);
  EXPECT_EQ(lockout_seconds(7, p), 120);
  EXPECT_EQ(lockout_seconds(12, p), 3600);
  EXPECT_EQ(lockout_seconds(1'000'000, p), 3600);
}

TEST(lockout, degenerate_policies) {
  EXPECT_EQ(lockout_seconds(1, lockout_policy{1, 10, 5}), 5);    // cap below base wins
  EXPECT_EQ(lockout_seconds(100, lockout_policy{0, 10, 60}), 0); // disabled
}

} // namespace
