// The reconnect delays of the writers and the journal: 50 ms first, doubling to the cap, each
// with up to 25 % jitter, back to the start once connected.
#include "persistence/reconnect_backoff.hpp"

#include <gtest/gtest.h>

namespace parley::persistence {
namespace {

using namespace std::chrono_literals;

TEST(ReconnectBackoff, DoublesUpToTheCapWithAQuarterOfJitterAndStartsOver) {
  reconnect_backoff b{300ms};
  for (int i = 0; i < 50; ++i) {
    auto d = b.next();
    EXPECT_GE(d, 50ms);
    EXPECT_LE(d, 62ms);
  }
  b.failed();
  EXPECT_EQ(b.current(), 100ms);
  b.failed();
  EXPECT_EQ(b.current(), 200ms);
  b.failed();
  EXPECT_EQ(b.current(), 300ms) << "capped";
  b.failed();
  EXPECT_EQ(b.current(), 300ms);
  auto d = b.next();
  EXPECT_GE(d, 300ms);
  EXPECT_LE(d, 375ms);
  b.reset();
  EXPECT_EQ(b.current(), 50ms);
}

TEST(ReconnectBackoff, ACapBelowTheFirstDelayWins) {
  reconnect_backoff b{10ms};
  EXPECT_EQ(b.current(), 10ms);
  b.failed();
  EXPECT_EQ(b.current(), 10ms);
}

} // namespace
} // namespace parley::persistence
