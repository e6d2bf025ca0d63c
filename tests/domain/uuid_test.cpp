#include "domain/uuid.hpp"

#include <gtest/gtest.h>

namespace parley::domain {
namespace {

TEST(uuid, round_trips_the_canonical_form_in_lowercase) {
  auto u = uuid::parse("0f8fad5b-d9cb-469f-a165-70867728950e");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->str(), "0f8fad5b-d9cb-469f-a165-70867728950e");
  auto upper = uuid::parse("0F8FAD5B-D9CB-469F-A165-70867728950E");
  ASSERT_TRUE(upper);
  EXPECT_EQ(*upper, *u);
  EXPECT_EQ(upper->str(), u->str());
  EXPECT_EQ(uuid::parse("00000000-0000-0000-0000-000000000000")->str(),
            "00000000-0000-0000-0000-000000000000");
  EXPECT_EQ(uuid::parse("ffffffff-ffff-ffff-ffff-ffffffffffff")->str(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff");
}

TEST(uuid, anything_else_is_refused) {
  for (const char* bad :
       {"", "tenant-1", "0f8fad5bd9cb469fa16570867728950e", "0f8fad5b-d9cb-469f-a165-70867728950",
        "0f8fad5b-d9cb-469f-a165-70867728950e0", "0f8fad5b-d9cb-469f-a165-70867728950g",
        "{0f8fad5b-d9cb-469f-a165-7086772895}"})
    EXPECT_FALSE(uuid::parse(bad)) << bad;
}

} // namespace
} // namespace parley::domain
