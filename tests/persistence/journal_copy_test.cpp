// The journal's COPY stream, byte for byte (no database needed).
#include <gtest/gtest.h>

#include "persistence/journal.hpp"

namespace parley::persistence {
namespace {

TEST(JournalCopyData, IsPostgresBinaryCopyFormat) {
  journal_entry a;
  a.body = std::string("{\"x\":1}\xff\x00z", 10);
  a.request_id = "r1";
  journal_entry b;
  b.body = "";
  b.channel_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  b.request_id = "";
  auto data = raw_events_copy_data({a, b}, {7, 258});
  std::string expected("PGCOPY\n\377\r\n\0", 11);
  expected += std::string(8, '\0');                              // flags, extension length
  expected += std::string("\0\4", 2);                            // 4 fields
  expected += std::string("\0\0\0\x08\0\0\0\0\0\0\0\x07", 12);   // id 7
  expected += std::string("\xff\xff\xff\xff", 4);                // channel NULL
  expected += std::string("\0\0\0\x02r1", 6);                    // request id
  expected += std::string("\0\0\0\x0a", 4) + a.body;             // body, bytes as they are
  expected += std::string("\0\4", 2);                            // next row
  expected += std::string("\0\0\0\x08\0\0\0\0\0\0\x01\x02", 12); // id 258
  expected += std::string("\0\0\0\x10", 4) +                     // channel as 16 bytes
              std::string("\x01\x90\xa1\xb2\xc3\xd4\x7e\x5f\x8a\x9b\x0c\x1d\x2e\x3f\x4a\x5b", 16);
  expected += std::string("\0\0\0\0", 4); // empty request id
  expected += std::string("\0\0\0\0", 4); // empty body
  expected += std::string("\xff\xff", 2); // trailer
  EXPECT_EQ(data, expected);
}

} // namespace
} // namespace parley::persistence
