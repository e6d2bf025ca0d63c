// The journal statement's parameters, byte for byte (no database needed): PostgreSQL's binary
// array format, which the server parses without escaping or text conversion.
#include <gtest/gtest.h>

#include "persistence/journal.hpp"

namespace parley::persistence {
namespace {

/// The array header: one dimension, may hold NULLs, element type, length, lower bound 1.
std::string header(uint32_t oid, uint32_t n) {
  auto be = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
                       static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
  };
  return be(1) + be(1) + be(oid) + be(n) + be(1);
}

TEST(JournalArrays, AreBinaryArraysOfIdsChannelsRequestIdsAndBodies) {
  journal_entry a;
  a.body = std::string("{\"x\":1}\xff\x00z", 10); // bytes as they came, NUL and all
  a.request_id = "r1";
  journal_entry b;
  b.channel_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  auto p = raw_event_arrays({a, b}, {7, 258});
  EXPECT_EQ(p[0], header(20, 2) + std::string("\0\0\0\x08\0\0\0\0\0\0\0\x07", 12) +
                      std::string("\0\0\0\x08\0\0\0\0\0\0\x01\x02", 12));
  EXPECT_EQ(p[1], header(2950, 2) + std::string("\xff\xff\xff\xff", 4) + // no channel: NULL
                      std::string("\0\0\0\x10", 4) +
                      std::string(
                          "\x01\x90\xa1\xb2\xc3\xd4\x7e\x5f\x8a\x9b\x0c\x1d\x2e\x3f\x4a\x5b", 16));
  EXPECT_EQ(p[2], header(25, 2) + std::string("\0\0\0\x02r1", 6) + std::string("\0\0\0\0", 4));
  EXPECT_EQ(p[3],
            header(17, 2) + std::string("\0\0\0\x0a", 4) + a.body + std::string("\0\0\0\0", 4));
}

TEST(JournalArrays, EmptyBatchIsAnEmptyArray) {
  auto p = raw_event_arrays({}, {});
  EXPECT_EQ(p[0], header(20, 0));
  EXPECT_EQ(p[3], header(17, 0));
}

} // namespace
} // namespace parley::persistence
