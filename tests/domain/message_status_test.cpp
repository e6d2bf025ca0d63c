#include "domain/message_status.hpp"
#include "domain/window.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using namespace parley::domain;
using ms = message_status;

namespace {

constexpr std::array<ms, 8> all_statuses = {ms::pending, ms::sent,   ms::delivered, ms::read,
                                            ms::played,  ms::failed, ms::received,  ms::deleted};

// Folds a sequence of reported statuses the way every writer must: keep the current one unless
// the next one advances it.
ms fold(ms start, const std::vector<ms>& reports) {
  ms current = start;
  for (ms next : reports)
    if (status_advances(current, next))
      current = next;
  return current;
}

int outbound_rank(ms s) {
  switch (s) {
  case ms::pending:
    return 0;
  case ms::sent:
    return 1;
  case ms::delivered:
    return 2;
  case ms::read:
    return 3;
  case ms::played:
    return 4;
  default:
    return -1;
  }
}

} // namespace

TEST(message_status, names_round_trip) {
  for (ms s : all_statuses) {
    const auto name = to_string(s);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(parse_message_status(name), s) << name;
  }
  EXPECT_EQ(to_string(ms::delivered), "delivered");
  EXPECT_EQ(to_string(ms::received), "received");
}

TEST(message_status, parses_meta_strings_and_nothing_else) {
  EXPECT_EQ(parse_message_status("sent"), ms::sent);
  EXPECT_EQ(parse_message_status("delivered"), ms::delivered);
  EXPECT_EQ(parse_message_status("read"), ms::read);
  EXPECT_EQ(parse_message_status("played"), ms::played);
  EXPECT_EQ(parse_message_status("failed"), ms::failed);
  EXPECT_EQ(parse_message_status("deleted"), ms::deleted);
  for (const std::string& bad : std::vector<std::string>{
           "", "SENT", "Sent", "sent ", " sent", "sen", "sentx", "unknown", "warning", "RINGING",
           "deliverd", "reads", std::string("sent\0", 5)})
    EXPECT_FALSE(parse_message_status(bad).has_value()) << bad;
}

TEST(message_status, advance_table_is_exactly_as_specified) {
  // Rows: from; columns: to, in all_statuses order
  // (pending, sent, delivered, read, played, failed, received, deleted).
  constexpr bool T = true, F = false;
  constexpr bool expected[8][8] = {
      /* pending   */ {F, T, T, T, T, T, F, T},
      /* sent      */ {F, F, T, T, T, T, F, T},
      /* delivered */ {F, F, F, T, T, T, F, T},
      /* read      */ {F, F, F, F, T, T, F, T},
      /* played    */ {F, F, F, F, F, T, F, T},
      /* failed    */ {F, F, F, F, F, F, F, F},
      /* received  */ {F, F, F, F, F, T, F, T},
      /* deleted   */ {F, F, F, F, F, F, F, F},
  };
  for (size_t i = 0; i < all_statuses.size(); ++i)
    for (size_t j = 0; j < all_statuses.size(); ++j)
      EXPECT_EQ(status_advances(all_statuses[i], all_statuses[j]), expected[i][j])
          << to_string(all_statuses[i]) << " -> " << to_string(all_statuses[j]);
}

TEST(message_status, advance_is_a_strict_order) {
  for (ms a : all_statuses) {
    EXPECT_FALSE(status_advances(a, a)) << "duplicates are not advances: " << to_string(a);
    for (ms b : all_statuses) {
      if (status_advances(a, b)) {
        EXPECT_FALSE(status_advances(b, a)) << to_string(a) << " <-> " << to_string(b);
      }
      for (ms c : all_statuses) {
        if (status_advances(a, b) && status_advances(b, c)) {
          EXPECT_TRUE(status_advances(a, c))
              << to_string(a) << " < " << to_string(b) << " < " << to_string(c);
        }
      }
    }
  }
}

TEST(message_status, terminal_statuses) {
  EXPECT_TRUE(is_terminal(ms::failed));
  EXPECT_TRUE(is_terminal(ms::deleted));
  for (ms s : all_statuses) {
    EXPECT_FALSE(status_advances(ms::failed, s)) << to_string(s);
    EXPECT_FALSE(status_advances(ms::deleted, s)) << to_string(s);
    if (!is_terminal(s)) {
      EXPECT_TRUE(status_advances(s, ms::failed)) << to_string(s);
      EXPECT_TRUE(status_advances(s, ms::deleted)) << to_string(s);
    }
  }
}

TEST(message_status, random_outbound_sequences_end_at_the_maximum_and_failed_wins) {
  const std::array<ms, 6> outbound = {ms::pending, ms::sent,   ms::delivered,
                                      ms::read,    ms::played, ms::failed};
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> pick(0, outbound.size() - 1);
  std::uniform_int_distribution<size_t> length(0, 24);
  for (int round = 0; round < 20000; ++round) {
    std::vector<ms> reports(length(rng));
    for (auto& r : reports)
      r = outbound[pick(rng)];
    const ms final_status = fold(ms::pending, reports);

    const bool any_failed = std::find(reports.begin(), reports.end(), ms::failed) != reports.end();
    ms expected = ms::pending;
    for (ms r : reports)
      if (r != ms::failed && outbound_rank(r) > outbound_rank(expected))
        expected = r;
    if (any_failed)
      expected = ms::failed;
    ASSERT_EQ(final_status, expected) << "round " << round;

    // Order of arrival does not matter: Meta delivers out of order.
    std::shuffle(reports.begin(), reports.end(), rng);
    ASSERT_EQ(fold(ms::pending, reports), expected) << "round " << round << " shuffled";
    // Replays (every report twice) change nothing.
    auto twice = reports;
    twice.insert(twice.end(), reports.begin(), reports.end());
    ASSERT_EQ(fold(ms::pending, twice), expected) << "round " << round << " replayed";
  }
}

TEST(message_status, random_sequences_over_all_statuses_stop_at_the_first_terminal) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, all_statuses.size() - 1);
  for (int round = 0; round < 20000; ++round) {
    std::vector<ms> reports(1 + round % 16);
    for (auto& r : reports)
      r = all_statuses[pick(rng)];
    const ms start = reports.front();
    const ms final_status = fold(start, reports);
    const auto first_terminal = std::find_if(reports.begin(), reports.end(), is_terminal);
    if (first_terminal != reports.end()) {
      ASSERT_EQ(final_status, *first_terminal) << "round " << round;
    } else if (start == ms::received) {
      ASSERT_EQ(final_status, ms::received) << "round " << round;
    } else {
      // Outbound start: received never replaces it, so the result is the outbound maximum.
      ms expected = start;
      for (ms r : reports)
        if (r != ms::received && outbound_rank(r) > outbound_rank(expected))
          expected = r;
      ASSERT_EQ(final_status, expected) << "round " << round;
    }
  }
}

TEST(window, expiry_is_24_hours_after_the_last_inbound_message) {
  static_assert(customer_service_window_s == 86400);
  static_assert(window_expires_at(1'700'000'000) == 1'700'086'400);
  static_assert(within_window(1'700'000'000, 1'700'000'000));
  EXPECT_EQ(window_expires_at(0), 86400);
  const int64_t last = 1'697'043'223;
  EXPECT_TRUE(within_window(last, last));
  EXPECT_TRUE(within_window(last + 3600, last));
  EXPECT_TRUE(within_window(last + 86399, last));
  EXPECT_FALSE(within_window(last + 86400, last)) << "the expiry instant is outside";
  EXPECT_FALSE(within_window(last + 86401, last));
  EXPECT_FALSE(within_window(last + 7 * 86400, last));
  // Clock skew: an inbound time slightly ahead of our clock still opens the window.
  EXPECT_TRUE(within_window(last - 30, last));
}

TEST(window, no_inbound_message_means_no_window) {
  EXPECT_FALSE(within_window(1'700'000'000, 0));
  EXPECT_FALSE(within_window(0, 0));
  EXPECT_FALSE(within_window(10, -5));
  EXPECT_FALSE(
      within_window(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min()));
}

TEST(window, absurd_times_saturate_instead_of_overflowing) {
  constexpr auto max = std::numeric_limits<int64_t>::max();
  static_assert(window_expires_at(max) == max);
  static_assert(window_expires_at(max - customer_service_window_s) == max);
  static_assert(window_expires_at(max - customer_service_window_s - 1) == max - 1);
  EXPECT_TRUE(within_window(max - 1, max));
  EXPECT_FALSE(within_window(max, max)) << "expiry is exclusive, even when saturated";
}
