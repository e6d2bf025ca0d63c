#include "domain/utc_time.hpp"

#include <gtest/gtest.h>

using parley::domain::utc_timestamp;

TEST(UtcTime, FormatsLikeTheApi) {
  EXPECT_EQ(utc_timestamp(1), "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(utc_timestamp(1700000000), "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(utc_timestamp(32503679999), "2999-12-31T23:59:59.000Z");
}

TEST(UtcTime, OutOfRangeIsNone) {
  EXPECT_FALSE(utc_timestamp(0));
  EXPECT_FALSE(utc_timestamp(-5));
  EXPECT_FALSE(utc_timestamp(32503680000));
  EXPECT_FALSE(utc_timestamp(INT64_MAX));
}
