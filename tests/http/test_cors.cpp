// Which browser origins may call the API, and what the answers say to them.
#include "http/cors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using parley::http::cors_policy;

namespace {

std::string header(const parley::http::response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name)
      return v;
  return {};
}

} // namespace

TEST(Cors, OffUnlessOriginsAreConfigured) {
  EXPECT_FALSE(cors_policy{}.enabled());
  EXPECT_FALSE(cors_policy::from_list("").enabled());
  EXPECT_FALSE(cors_policy::from_list(" , ").enabled());
  EXPECT_FALSE(cors_policy{}.allows("https://a.example"));
}

TEST(Cors, ExactOriginsOnly) {
  auto p = cors_policy::from_list(" https://console.example.com ,http://localhost:3000");
  EXPECT_TRUE(p.enabled());
  EXPECT_TRUE(p.allows("https://console.example.com"));
  EXPECT_TRUE(p.allows("http://localhost:3000"));
  EXPECT_FALSE(p.allows("http://console.example.com")); // another scheme is another origin
  EXPECT_FALSE(p.allows("https://console.example.com.evil.test"));
  EXPECT_FALSE(p.allows("http://localhost:3001"));
  EXPECT_FALSE(p.allows(""));
}

TEST(Cors, AnyOriginButNeverNull) {
  auto p = cors_policy::from_list("*");
  EXPECT_TRUE(p.allows("https://anything.example"));
  EXPECT_FALSE(p.allows("null")); // sandboxed frames, file:// pages
}

TEST(Cors, PreflightOfAnAllowedOrigin) {
  auto r = cors_policy::from_list("https://c.example").preflight("https://c.example");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), "https://c.example");
  EXPECT_EQ(header(r, "Vary"), "Origin");
  EXPECT_NE(header(r, "Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  EXPECT_NE(header(r, "Access-Control-Allow-Headers").find("Last-Event-ID"), std::string::npos);
  EXPECT_NE(header(r, "Access-Control-Allow-Methods").find("PATCH"), std::string::npos);
  EXPECT_EQ(header(r, "Access-Control-Max-Age"), "600");
  EXPECT_EQ(header(r, "Access-Control-Allow-Credentials"), ""); // bearer tokens, no cookies
}

TEST(Cors, PreflightOfAnotherOriginIs403SayingWhichSettingDecides) {
  auto r = cors_policy::from_list("https://c.example").preflight("https://evil.example");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), "");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "forbidden");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("http.cors_allowed_origins"),
            std::string::npos);
}
