// Property tests of status ordering: Meta delivers status webhooks out of order and more than
// once, so whatever order and repetition the reports arrive in, folding them must end where the
// sorted sequence ends.
#include "domain/message_status.hpp"

#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

using namespace parley::domain;
using ms = message_status;

namespace {

ms fold(ms start, const std::vector<ms>& reports) {
  ms current = start;
  for (ms next : reports)
    if (status_advances(current, next))
      current = next;
  return current;
}

// The order statuses happen in: the outbound path, failed last (it ends everything).
int position(ms s) {
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
  case ms::failed:
    return 5;
  default:
    return 6;
  }
}

std::vector<ms> random_reports(std::mt19937_64& rng, const std::vector<ms>& alphabet) {
  std::vector<ms> reports(rng() % 12);
  for (auto& r : reports)
    r = alphabet[rng() % alphabet.size()];
  return reports;
}

} // namespace

TEST(message_status_property, outbound_reports_fold_to_the_sorted_result) {
  const std::vector<ms> alphabet = {ms::sent, ms::delivered, ms::read, ms::played, ms::failed};
  std::mt19937_64 rng(2024);
  for (int round = 0; round < 20000; ++round) {
    std::vector<ms> reports = random_reports(rng, alphabet);
    std::vector<ms> sorted = reports;
    std::sort(sorted.begin(), sorted.end(), [](ms a, ms b) { return position(a) < position(b); });
    const ms expected = fold(ms::pending, sorted);
    std::shuffle(reports.begin(), reports.end(), rng);
    ASSERT_EQ(fold(ms::pending, reports), expected);
    // Duplicating any report changes nothing.
    if (!reports.empty()) {
      auto duplicated = reports;
      duplicated.insert(duplicated.begin() + static_cast<long>(rng() % duplicated.size()),
                        reports[rng() % reports.size()]);
      ASSERT_EQ(fold(ms::pending, duplicated), expected);
    }
    // The result is the furthest status reported, or failed if failed was reported at all.
    const bool any_failed = std::find(reports.begin(), reports.end(), ms::failed) != reports.end();
    ms furthest = ms::pending;
    for (ms r : reports)
      if (position(r) > position(furthest))
        furthest = r;
    ASSERT_EQ(expected, any_failed ? ms::failed : furthest);
  }
}

TEST(message_status_property, failed_is_terminal) {
  const std::vector<ms> alphabet = {ms::pending, ms::sent,   ms::delivered, ms::read,
                                    ms::played,  ms::failed, ms::received,  ms::deleted};
  std::mt19937_64 rng(99);
  for (int round = 0; round < 5000; ++round) {
    const ms start = alphabet[rng() % alphabet.size()];
    auto reports = random_reports(rng, alphabet);
    reports.insert(reports.begin() + static_cast<long>(rng() % (reports.size() + 1)), ms::failed);
    const ms result = fold(start, reports);
    ASSERT_TRUE(is_terminal(result));
    // Once failed is reached, nothing after it changes the result.
    ms current = start;
    bool reached_failed = false;
    for (ms next : reports) {
      if (status_advances(current, next))
        current = next;
      if (current == ms::failed)
        reached_failed = true;
      if (reached_failed) {
        ASSERT_EQ(current, ms::failed);
      }
    }
  }
}

TEST(message_status_property, inbound_reports_fold_order_independently) {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 5000; ++round) {
    auto reports = random_reports(rng, {ms::received, ms::deleted});
    const bool any_deleted =
        std::find(reports.begin(), reports.end(), ms::deleted) != reports.end();
    std::shuffle(reports.begin(), reports.end(), rng);
    ASSERT_EQ(fold(ms::received, reports), any_deleted ? ms::deleted : ms::received);
  }
}

TEST(message_status_property, no_status_moves_backwards) {
  const std::vector<ms> path = {ms::pending, ms::sent, ms::delivered, ms::read, ms::played};
  for (size_t from = 0; from < path.size(); ++from)
    for (size_t to = 0; to < path.size(); ++to)
      EXPECT_EQ(status_advances(path[from], path[to]), to > from)
          << to_string(path[from]) << " -> " << to_string(path[to]);
}
