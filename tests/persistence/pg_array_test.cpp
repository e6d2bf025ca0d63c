#include "persistence/pg_array.hpp"

#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace parley::persistence {
namespace {

TEST(PgArray, NumbersAndUnquotedIds) {
  EXPECT_EQ(pg_array(std::vector<int64_t>{}), "{}");
  EXPECT_EQ(pg_array(std::vector<int64_t>{1, -2, 9007199254740993}), "{1,-2,9007199254740993}");
  EXPECT_EQ(pg_array(std::set<std::string>{"b1a5e1b2-0000-4000-8000-000000000002",
                                           "a1a5e1b2-0000-4000-8000-000000000001"}),
            "{a1a5e1b2-0000-4000-8000-000000000001,b1a5e1b2-0000-4000-8000-000000000002}");
}

} // namespace
} // namespace parley::persistence
