// parse_json_fast builds exactly what nlohmann::json::parse builds (values and number kinds), and
// refuses rather than guesses where simdjson cannot represent the text.
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "domain/json_fast_parse.hpp"

using nlohmann::json;
using parley::domain::parse_json_fast;

namespace {

/// At the webhook parser's depth limit.
std::optional<json> parse_fast(std::string_view text) {
  return parse_json_fast(text, 64);
}

/// Same value and, node by node, the same kind (dump() shows a kind difference only sometimes).
void expect_identical(const json& fast, const json& slow, const std::string& where) {
  ASSERT_EQ(fast.type(), slow.type()) << where;
  ASSERT_EQ(fast, slow) << where;
  if (fast.is_object())
    for (auto it = slow.begin(); it != slow.end(); ++it)
      expect_identical(fast.at(it.key()), it.value(), where + "." + it.key());
  if (fast.is_array())
    for (size_t i = 0; i < slow.size(); ++i)
      expect_identical(fast[i], slow[i], where + "[" + std::to_string(i) + "]");
}

void expect_same_as_nlohmann(const std::string& text) {
  auto fast = parse_fast(text);
  ASSERT_TRUE(fast.has_value()) << text;
  expect_identical(*fast, json::parse(text), text);
}

TEST(JsonFastParse, BuildsWhatNlohmannBuilds) {
  for (const std::string text :
       {R"({})",
        R"([])",
        R"(null)",
        R"(true)",
        R"("x")",
        R"(0)",
        R"(42)",
        R"(-42)",
        R"(1.5)",
        R"(-0.0)",
        R"(1e2)",
        R"(2.5E-3)",
        R"(9223372036854775807)",
        R"(9223372036854775808)",
        R"(18446744073709551615)",
        R"(-9223372036854775808)",
        R"(1.7976931348623157e308)",
        R"({"a":1,"b":[1,2,{"c":null}],"d":{"e":"f"}})",
        R"(["\u00e9\ud83d\ude00", "tab\tand\nnewline", "quote\" slash\\ \/", "\u0000inside"])",
        "  {\"spaced\" : [ 1 , 2 ] }  ",
        R"({"":""})",
        R"([[[[[[[[[[]]]]]]]]]])",
        R"({"wa_id":"16315551234","timestamp":"1669233778","n":1669233778})"})
    expect_same_as_nlohmann(text);
}

TEST(JsonFastParse, MinusZeroIsTheSameZeroOfAnotherKind) {
  // The one kind difference: simdjson does not tell "-0" from "0", nlohmann makes it signed.
  // Equal as values and written alike, so nothing downstream can tell.
  auto fast = parse_fast("[-0]");
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(*fast, json::parse("[-0]"));
  EXPECT_EQ(fast->dump(), json::parse("[-0]").dump());
}

TEST(JsonFastParse, ARepeatedKeyKeepsTheLastValueLikeNlohmann) {
  expect_same_as_nlohmann(R"({"k":1,"k":{"x":2}})");
  EXPECT_EQ(parse_fast(R"({"k":1,"k":2})")->at("k"), 2);
}

TEST(JsonFastParse, RefusesInvalidJson) {
  for (const std::string text :
       {"", " ", "{", "[1,]", "{\"a\":}", "{'a':1}", "nul", "01", "1.", "\"unterminated",
        "\"bad \\x escape\"", "[1] trailing", "\"\xff\xfe invalid utf-8\"", "\"raw\ncontrol\"",
        "NaN", "Infinity", "[1 2]"})
    EXPECT_FALSE(parse_fast(text).has_value()) << text;
}

TEST(JsonFastParse, LeavesToNlohmannWhatSimdjsonCannotRepresent) {
  // Integers past 64 bits (nlohmann reads them as doubles) and a UTF-8 byte-order mark (nlohmann
  // skips it): refused here, so callers fall back and answer as nlohmann does.
  EXPECT_FALSE(parse_fast("123456789012345678901234567890").has_value());
  EXPECT_FALSE(parse_fast("\xEF\xBB\xBF{}").has_value());
}

std::string nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonFastParse, RefusesNestingDeeperThanTheLimit) {
  EXPECT_TRUE(parse_json_fast(nested(10), 10).has_value());
  EXPECT_FALSE(parse_json_fast(nested(11), 10).has_value());
  EXPECT_FALSE(parse_json_fast(R"({"a":{"b":[[1]]}})", 3).has_value());
  // simdjson counts the values of the innermost container as a level of their own: at the limit
  // exactly it may refuse (the caller's fallback then decides), but never lets deeper through.
  EXPECT_FALSE(parse_json_fast(R"({"a":{"b":[1]}})", 3).has_value());
  EXPECT_TRUE(parse_json_fast(R"({"a":{"b":[1]}})", 4).has_value());
  // A parser of this thread switched back to a larger limit takes deep documents again.
  EXPECT_TRUE(parse_json_fast(nested(60), 64).has_value());
  EXPECT_FALSE(parse_json_fast(nested(65), 64).has_value());
}

TEST(JsonFastParse, EveryFixtureParsesToTheSameDocument) {
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(PARLEY_PYWA_FIXTURES)) {
    if (entry.path().extension() != ".json")
      continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    expect_same_as_nlohmann(buf.str());
    ++files;
  }
  EXPECT_GT(files, 0u);
}

} // namespace

namespace {

using parley::domain::json_refusal;
using parley::domain::parse_json_bounded;

TEST(JsonBoundedParse, TakesValidJsonWhicheverParserDecides) {
  auto fast = parse_json_bounded(R"({"a":[1,2]})", 64);
  ASSERT_TRUE(std::holds_alternative<json>(fast));
  EXPECT_EQ(std::get<json>(fast), json::parse(R"({"a":[1,2]})"));
  // simdjson refuses these; nlohmann takes them (a 100-digit integer becomes a double).
  auto big = parse_json_bounded("[" + std::string(100, '7') + "]", 64);
  ASSERT_TRUE(std::holds_alternative<json>(big));
  EXPECT_TRUE(std::get<json>(big)[0].is_number_float());
  EXPECT_TRUE(std::holds_alternative<json>(parse_json_bounded("\xEF\xBB\xBF{}", 64)));
  // At the limit exactly: simdjson may refuse, the depth scan and nlohmann take it.
  EXPECT_TRUE(std::holds_alternative<json>(parse_json_bounded(R"({"a":{"b":[1]}})", 3)));
}

TEST(JsonBoundedParse, RefusesDeepBeforeParsing) {
  auto deep = parse_json_bounded(nested(65), 64);
  ASSERT_TRUE(std::holds_alternative<json_refusal>(deep));
  EXPECT_TRUE(std::get<json_refusal>(deep).too_deep);
  // Deep and broken: the depth is what is reported (nothing is parsed).
  EXPECT_TRUE(std::get<json_refusal>(parse_json_bounded(std::string(100000, '['), 64)).too_deep);
}

TEST(JsonBoundedParse, InvalidJsonSaysWhereAndNeverThrows) {
  auto broken = parse_json_bounded(R"({"name":)", 64);
  ASSERT_TRUE(std::holds_alternative<json_refusal>(broken));
  EXPECT_FALSE(std::get<json_refusal>(broken).too_deep);
  EXPECT_EQ(std::get<json_refusal>(broken).detail, "error at byte 9");
  // Valid syntax, but no double holds the number: nlohmann throws out_of_range, not parse_error.
  for (const char* text : {R"({"n":1e400})", R"({"n":-1e999})"}) {
    auto overflow = parse_json_bounded(text, 64);
    ASSERT_TRUE(std::holds_alternative<json_refusal>(overflow)) << text;
    EXPECT_FALSE(std::get<json_refusal>(overflow).too_deep);
    EXPECT_NE(std::get<json_refusal>(overflow).detail.find("number overflow"), std::string::npos)
        << std::get<json_refusal>(overflow).detail;
  }
}

} // namespace
