// append_json must write exactly what nlohmann's dump writes for anything valid (PostgreSQL
// reads it back), and replace what PostgreSQL cannot hold (U+0000, invalid UTF-8) with U+FFFD.
#include "persistence/json_text.hpp"

#include <random>

#include <gtest/gtest.h>

namespace parley::persistence {
namespace {

std::string text_of(const nlohmann::json& v) {
  std::string out;
  append_json(out, v);
  return out;
}

TEST(JsonText, SameAsDumpForEveryKindOfValue) {
  nlohmann::json v{{"null", nullptr},
                   {"t", true},
                   {"f", false},
                   {"int", -9223372036854775807LL - 1},
                   {"uint", 18446744073709551615ULL},
                   {"float", 0.1},
                   {"empty_object", nlohmann::json::object()},
                   {"empty_array", nlohmann::json::array()},
                   {"nested", {{"b", {1, "two", {{"c", nullptr}}}}, {"a", ""}}},
                   {"escapes", "quote\" backslash\\ slash/ \b\f\n\r\t \x01\x1f \x7f"},
                   {"utf8", "ß € 😀 \xe2\x80\xa8 Привет 你好"}};
  EXPECT_EQ(text_of(v), v.dump());
}

TEST(JsonText, SameAsDumpForRandomValidStrings) {
  // Code points from every UTF-8 length, controls and the characters JSON escapes.
  const std::vector<std::string> pieces{"a",
                                        "Z",
                                        " ",
                                        "\"",
                                        "\\",
                                        "/",
                                        "\n",
                                        "\x01",
                                        "\x1f",
                                        "\x7f",
                                        "\xc2\x80",
                                        "\xdf\xbf",
                                        "\xe0\xa0\x80",
                                        "\xed\x9f\xbf",
                                        "\xee\x80\x80",
                                        "\xef\xbf\xbf",
                                        "\xf0\x90\x80\x80",
                                        "\xf4\x8f\xbf\xbf",
                                        "plain text "};
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string s;
    for (int n = rng() % 40; n > 0; --n)
      s += pieces[rng() % pieces.size()];
    nlohmann::json v{{"k" + s, s}};
    ASSERT_EQ(text_of(v), v.dump()) << round;
  }
}

TEST(JsonText, NulAndInvalidUtf8BecomeReplacementCharacters) {
  const std::string r = "\xef\xbf\xbd";
  const std::vector<std::pair<std::string, std::string>> cases{
      {std::string("a\0b", 3), "a" + r + "b"},
      {"\xff", r},
      {"\xc0\xaf", r + r},                 // overlong '/'
      {"\xed\xa0\x80", r + r + r},         // a UTF-16 surrogate
      {"\xf4\x90\x80\x80", r + r + r + r}, // above U+10FFFF
      {"ok\xe2\x82", "ok" + r + r},        // cut short at the end
      {"\xe2\x82"
       "x",
       r + r + "x"}, // cut short before ASCII
  };
  for (const auto& [in, expected] : cases) {
    auto text = text_of(in);
    auto back = nlohmann::json::parse(text); // valid JSON whatever came in
    EXPECT_EQ(back.get<std::string>(), expected) << text;
    EXPECT_EQ(text.find("\\u0000"), std::string::npos) << text;
  }
}

} // namespace
} // namespace parley::persistence
