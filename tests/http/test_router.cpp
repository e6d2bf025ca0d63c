#include "http/router.hpp"

#include <stdexcept>

#include <gtest/gtest.h>

using namespace parley::http;

namespace {

// Handlers that identify themselves through the responder, so a test can tell which one matched.
handler tagged(std::string tag) {
  return [tag](request&&, responder r) {
    response res;
    res.body = tag;
    r(std::move(res));
  };
}

std::string run(const route_match& m) {
  std::string got;
  (*m.target)(request{}, responder([&](response r) { got = r.body; }));
  return got;
}

} // namespace

TEST(Router, LiteralAndCapture) {
  router r;
  r.add("GET", "/v1/tenants", tagged("list"));
  r.add("GET", "/v1/tenants/{id}", tagged("get"));
  r.add("POST", "/v1/tenants/{id}/api-keys", tagged("keys"));
  EXPECT_EQ(r.size(), 3u);

  auto m = r.match("GET", "/v1/tenants");
  ASSERT_TRUE(m.found());
  EXPECT_EQ(run(m), "list");
  EXPECT_EQ(m.pattern, "/v1/tenants");
  EXPECT_TRUE(m.params.empty());

  m = r.match("GET", "/v1/tenants/t-42");
  ASSERT_TRUE(m.found());
  EXPECT_EQ(run(m), "get");
  EXPECT_EQ(m.pattern, "/v1/tenants/{id}");
  EXPECT_EQ(m.params.at("id"), "t-42");

  m = r.match("POST", "/v1/tenants/7/api-keys");
  ASSERT_TRUE(m.found());
  EXPECT_EQ(m.params.at("id"), "7");
}

TEST(Router, CapturesArePercentDecoded) {
  router r;
  r.add("GET", "/files/{name}", tagged("f"));
  auto m = r.match("GET", "/files/a%20b%2Fc");
  ASSERT_TRUE(m.found());
  EXPECT_EQ(m.params.at("name"), "a b/c");
  EXPECT_FALSE(r.match("GET", "/files/%zz").found());
}

TEST(Router, NotFoundVersusMethodNotAllowed) {
  router r;
  r.add("GET", "/v1/tenants/{id}", tagged("get"));
  r.add("PATCH", "/v1/tenants/{id}", tagged("patch"));
  r.add("DELETE", "/v1/tenants/{id}", tagged("delete"));

  auto m = r.match("POST", "/v1/tenants/1");
  EXPECT_EQ(m.result, route_match::outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "DELETE, GET, HEAD, PATCH"); // HEAD rides on GET
  EXPECT_EQ(m.target, nullptr);

  m = r.match("GET", "/v1/nothing");
  EXPECT_EQ(m.result, route_match::outcome::not_found);
  EXPECT_TRUE(m.allow.empty());
}

TEST(Router, HeadUsesTheGetRouteUnlessOneClaimsHead) {
  router r;
  r.add("GET", "/v1/tenants/{id}", tagged("get"));
  r.add("POST", "/v1/things", tagged("post"));
  r.add("GET", "/probe", tagged("get-probe"));
  r.add("HEAD", "/probe", tagged("head-probe"));
  auto m = r.match("HEAD", "/v1/tenants/1");
  ASSERT_TRUE(m.found());
  EXPECT_EQ(m.pattern, "/v1/tenants/{id}");
  EXPECT_EQ(m.params.at("id"), "1");
  m = r.match("HEAD", "/v1/things");
  EXPECT_EQ(m.result, route_match::outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");
  m = r.match("HEAD", "/probe");
  ASSERT_TRUE(m.found());
  m = r.match("GET", "/probe");
  ASSERT_TRUE(m.found());
  EXPECT_FALSE(r.match("HEAD", "/nowhere").found());
}

TEST(Router, LiteralBeatsCapture) {
  router r;
  r.add("GET", "/v1/users/{id}", tagged("by-id"));
  r.add("GET", "/v1/users/me", tagged("me"));
  r.add("GET", "/a/{x}/c", tagged("capture-first"));
  r.add("GET", "/a/b/{y}", tagged("literal-first"));
  EXPECT_EQ(run(r.match("GET", "/v1/users/me")), "me");
  EXPECT_EQ(run(r.match("GET", "/v1/users/u1")), "by-id");
  EXPECT_EQ(run(r.match("GET", "/a/b/c")), "literal-first");
  EXPECT_EQ(run(r.match("GET", "/a/z/c")), "capture-first");
}

TEST(Router, SegmentsMustMatchExactly) {
  router r;
  r.add("GET", "/", tagged("root"));
  r.add("GET", "/v1/tenants/{id}", tagged("get"));
  EXPECT_EQ(run(r.match("GET", "/")), "root");
  EXPECT_FALSE(r.match("GET", "/v1/tenants/").found());   // captures are never empty
  EXPECT_FALSE(r.match("GET", "/v1/tenants/1/").found()); // trailing slash is a different path
  EXPECT_FALSE(r.match("GET", "/v1/tenants/1/x").found());
  EXPECT_FALSE(r.match("GET", "/v1/tenants").found());
  EXPECT_FALSE(r.match("GET", "").found());
  EXPECT_FALSE(r.match("GET", "v1/tenants/1").found());
  EXPECT_FALSE(r.match("get", "/").found()); // methods are case-sensitive (RFC 9110)
}

TEST(Router, RejectsBadPatterns) {
  router r;
  EXPECT_THROW(r.add("GET", "", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "no-slash", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a/{}", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a/{b-c}", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a/{x}/{x}", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("GET", "/a/x{y}", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add("", "/a", tagged("x")), std::invalid_argument);
  r.add("GET", "/a/{x}", tagged("x"));
  EXPECT_THROW(r.add("GET", "/a/{y}", tagged("y")), std::invalid_argument); // same shape
  r.add("POST", "/a/{y}", tagged("y"));
  EXPECT_EQ(r.size(), 2u);
}
