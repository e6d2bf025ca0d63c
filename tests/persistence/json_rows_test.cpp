#include "persistence/json_rows.hpp"

#include <gtest/gtest.h>

namespace parley::persistence {
namespace {

const std::vector<nlohmann::json> rows{
    {{"a", 1}, {"b", "two"}, {"wide", {{"x", std::string(100, 'x')}}}},
    {{"a", 3}, {"wide", nullptr}},
};

TEST(JsonRows, WholeRows) {
  EXPECT_EQ(nlohmann::json::parse(json_rows(rows)), nlohmann::json(rows));
}

TEST(JsonRows, KeysPickColumnsAndSkipAbsentOnes) {
  auto text = json_rows(rows, {"b", "a"});
  EXPECT_EQ(nlohmann::json::parse(text), (nlohmann::json{{{"b", "two"}, {"a", 1}}, {{"a", 3}}}));
  EXPECT_EQ(text.find("wide"), std::string::npos) << text;
}

TEST(JsonRows, ExtraMembersPerRow) {
  auto text = json_rows(rows, {"a"}, [](size_t i) {
    return i == 0 ? std::string{} : "\"id\":" + std::to_string(40 + i);
  });
  EXPECT_EQ(nlohmann::json::parse(text), (nlohmann::json{{{"a", 1}}, {{"a", 3}, {"id", 41}}}));
  // A row without any of the keys still gets its extra member.
  EXPECT_EQ(nlohmann::json::parse(json_rows(rows, {"zz"}, [](size_t) { return "\"k\":0"; })),
            (nlohmann::json{{{"k", 0}}, {{"k", 0}}}));
}

TEST(JsonRows, NulAndInvalidUtf8AreReplacedEitherWay) {
  std::vector<nlohmann::json> bad{{{"t", std::string("a\0b", 3)}, {"u", "\xff"}}};
  for (const auto& text : {json_rows(bad), json_rows(bad, {"t", "u"})}) {
    auto back = nlohmann::json::parse(text);
    EXPECT_EQ(back[0]["t"], "a\xef\xbf\xbd"
                            "b")
        << text;
    EXPECT_EQ(back[0]["u"], "\xef\xbf\xbd") << text;
  }
}

} // namespace
} // namespace parley::persistence
