#include "domain/uuid.hpp"

#include <set>
#include <string>

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
  EXPECT_EQ(uuid::parse("01234567-89aB-CdEf-0123-456789ABCDEF")->str(),
            "01234567-89ab-cdef-0123-456789abcdef")
      << "every digit, mixed case";
}

TEST(uuid, anything_else_is_refused) {
  for (const char* bad :
       {"", "tenant-1", "0f8fad5bd9cb469fa16570867728950e", "0f8fad5b-d9cb-469f-a165-70867728950",
        "0f8fad5b-d9cb-469f-a165-70867728950e0", "0f8fad5b-d9cb-469f-a165-70867728950g",
        "{0f8fad5b-d9cb-469f-a165-7086772895}"})
    EXPECT_FALSE(uuid::parse(bad)) << bad;
}

TEST(uuid, time_ordered_follows_rfc_9562_version_7) {
  // RFC 9562, appendix A.6: 2022-02-22 19:22:22 UTC and the example's random bits.
  auto u = uuid::time_ordered(0x017F22E279B0,
                              {0x0C, 0xC3, 0x98, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F});
  EXPECT_EQ(u.str(), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
  // The version nibble and the variant bits win over whatever the random bytes say.
  auto ones = uuid::time_ordered(0, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  EXPECT_EQ(ones.str(), "00000000-0000-7fff-bfff-ffffffffffff");
  auto zeros = uuid::time_ordered(0, {});
  EXPECT_EQ(zeros.str(), "00000000-0000-7000-8000-000000000000");
}

TEST(uuid, new_time_ordered_ids_are_distinct_and_sort_by_time) {
  std::set<std::string> seen;
  std::string last_ms;
  for (int i = 0; i < 5000; ++i) { // more than one block of random bytes
    auto text = uuid::new_time_ordered().str();
    ASSERT_TRUE(seen.insert(text).second) << text;
    EXPECT_EQ(text[14], '7') << text;
    EXPECT_NE(std::string("89ab").find(text[19]), std::string::npos) << text;
    auto ms = text.substr(0, 13); // the 48-bit clock, as text
    EXPECT_GE(ms, last_ms) << text;
    last_ms = ms;
  }
}

} // namespace
} // namespace parley::domain
