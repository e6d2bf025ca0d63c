#include "http/uri.hpp"

#include <gtest/gtest.h>

using namespace parley::http;

TEST(Uri, SplitTarget) {
  auto p = split_target("/v1/x?a=1&b=2");
  EXPECT_EQ(p.path, "/v1/x");
  EXPECT_EQ(p.query, "a=1&b=2");
  p = split_target("/only");
  EXPECT_EQ(p.path, "/only");
  EXPECT_EQ(p.query, "");
  p = split_target("/p?q=1#frag");
  EXPECT_EQ(p.path, "/p");
  EXPECT_EQ(p.query, "q=1");
  p = split_target("/p?a=?b");
  EXPECT_EQ(p.query, "a=?b");
}

TEST(Uri, PercentDecode) {
  EXPECT_EQ(percent_decode("a%20b"), "a b");
  EXPECT_EQ(percent_decode("%2f%2F"), "//");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%00x").value(), std::string("\0x", 2));
  EXPECT_EQ(percent_decode("%E2%82%AC"), "\xE2\x82\xAC");
  EXPECT_EQ(percent_decode(""), "");
}

TEST(Uri, PercentDecodeRejectsMalformedEscapes) {
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("abc%2"));
  EXPECT_FALSE(percent_decode("%zz"));
  EXPECT_FALSE(percent_decode("%g0"));
}

TEST(Uri, ParseQuery) {
  auto q = parse_query("a=1&b=x%20y&c=p+q&flag&&d=&a=2");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("a"), "2"); // last one wins
  EXPECT_EQ(q->at("b"), "x y");
  EXPECT_EQ(q->at("c"), "p q");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_EQ(q->at("d"), "");
  EXPECT_EQ(q->size(), 5u);
}

TEST(Uri, ParseQueryDecodesReservedCharacters) {
  auto q = parse_query("k%26=v%3D1%26x&hub.challenge=abc");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("k&"), "v=1&x");
  EXPECT_EQ(q->at("hub.challenge"), "abc");
  EXPECT_EQ(q->size(), 2u);
}

TEST(Uri, ParseQueryEmptyAndMalformed) {
  ASSERT_TRUE(parse_query(""));
  EXPECT_TRUE(parse_query("")->empty());
  EXPECT_FALSE(parse_query("a=%4"));
  EXPECT_FALSE(parse_query("%zz=1"));
}
