#include "domain/jwt.hpp"

#include <gtest/gtest.h>

#include "domain/crypto.hpp"

namespace {

using namespace parley;

const std::string secret = "0123456789abcdef0123456789abcdef";
constexpr int64_t now = 1'700'000'000;

jwt::expectations want() {
  jwt::expectations w;
  w.issuer = "parley";
  w.audience = "parley-api";
  w.now = now;
  w.leeway_s = 30;
  return w;
}

nlohmann::json claims() {
  return {{"iss", "parley"}, {"aud", "parley-api"}, {"sub", "u1"},
          {"iat", now},      {"nbf", now},          {"exp", now + 900}};
}

std::string b64(const std::string& s) {
  return crypto::base64url_encode(s);
}

/// A token with an arbitrary header, signed with HS256 over exactly what it carries.
std::string forge(const std::string& header, const nlohmann::json& body, const std::string& key) {
  auto input = b64(header) + "." + b64(body.dump());
  return input + "." + b64(crypto::hmac_sha256(key, input));
}

jwt::failure reason(const std::string& token, jwt::expectations w = want()) {
  auto v = jwt::verify_hs256(token, secret, w);
  EXPECT_FALSE(v) << token;
  return v.reason;
}

TEST(jwt, round_trip) {
  auto token = jwt::sign_hs256(claims(), secret);
  auto v = jwt::verify_hs256(token, secret, want());
  ASSERT_TRUE(v);
  EXPECT_EQ((*v.claims)["sub"], "u1");
  EXPECT_TRUE(jwt::looks_like_jwt(token));
}

TEST(jwt, header_is_hs256) {
  auto token = jwt::sign_hs256(claims(), secret);
  auto header = crypto::base64url_decode(token.substr(0, token.find('.')));
  ASSERT_TRUE(header);
  EXPECT_EQ(nlohmann::json::parse(*header)["alg"], "HS256");
}

TEST(jwt, alg_none_is_refused) {
  auto unsigned_token = b64(R"({"alg":"none","typ":"JWT"})") + "." + b64(claims().dump()) + ".";
  EXPECT_EQ(reason(unsigned_token), jwt::failure::malformed); // empty signature part
  // Even with something in the signature slot, "none" is never accepted.
  EXPECT_EQ(reason(unsigned_token + "AAAA"), jwt::failure::wrong_algorithm);
  EXPECT_EQ(reason(forge(R"({"alg":"none"})", claims(), secret)), jwt::failure::wrong_algorithm);
  EXPECT_EQ(reason(forge(R"({"alg":"None"})", claims(), secret)), jwt::failure::wrong_algorithm);
}

TEST(jwt, other_algorithms_are_refused) {
  for (auto alg : {"HS384", "HS512", "RS256", "ES256", "hs256", "HS256 "})
    EXPECT_EQ(reason(forge(std::string(R"({"alg":")") + alg + R"("})", claims(), secret)),
              jwt::failure::wrong_algorithm)
        << alg;
  EXPECT_EQ(reason(forge(R"({"typ":"JWT"})", claims(), secret)), jwt::failure::wrong_algorithm);
  EXPECT_EQ(reason(forge(R"({"alg":["HS256"]})", claims(), secret)), jwt::failure::wrong_algorithm);
  EXPECT_EQ(reason(forge(R"({"alg":"HS256","crit":["exp"]})", claims(), secret)),
            jwt::failure::wrong_algorithm);
}

TEST(jwt, forged_signature_is_refused) {
  auto token = jwt::sign_hs256(claims(), "another secret of the same length!!");
  EXPECT_EQ(reason(token), jwt::failure::bad_signature);
  // Changing the payload breaks the signature.
  auto good = jwt::sign_hs256(claims(), secret);
  auto first = good.find('.');
  auto second = good.find('.', first + 1);
  auto elevated = claims();
  elevated["role"] = "platform_admin";
  auto tampered = good.substr(0, first + 1) + b64(elevated.dump()) + good.substr(second);
  EXPECT_EQ(reason(tampered), jwt::failure::bad_signature);
  // A signature of the wrong length decodes but cannot match.
  EXPECT_EQ(reason(good + "AAAA"), jwt::failure::bad_signature);
  EXPECT_FALSE(jwt::verify_hs256(good.substr(0, good.size() - 2), secret, want()));
}

TEST(jwt, malformed_tokens) {
  for (std::string t : {"", ".", "..", "a.b", "a.b.c.d", "abc", "e30.e30.", "!!!.e30.AAAA",
                        "e30.!!!.AAAA", "e30.e30.AA=A"})
    EXPECT_FALSE(jwt::verify_hs256(t, secret, want())) << t;
  EXPECT_EQ(reason(b64("[]") + "." + b64("{}") + ".AAAA"), jwt::failure::malformed);
  EXPECT_EQ(reason(b64("not json") + "." + b64("{}") + ".AAAA"), jwt::failure::malformed);
  // A well-signed payload that is not an object.
  auto input = b64(R"({"alg":"HS256"})") + "." + b64("[1,2]");
  EXPECT_EQ(reason(input + "." + b64(crypto::hmac_sha256(secret, input))), jwt::failure::malformed);
  // Oversized tokens are refused before decoding.
  auto big = claims();
  big["pad"] = std::string(5000, 'x');
  EXPECT_EQ(reason(jwt::sign_hs256(big, secret)), jwt::failure::malformed);
}

TEST(jwt, expiry_with_leeway) {
  auto c = claims();
  c["exp"] = now - 31;
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::expired);
  c["exp"] = now - 29; // within the leeway
  EXPECT_TRUE(jwt::verify_hs256(jwt::sign_hs256(c, secret), secret, want()));
  c.erase("exp");
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::expired);
  c["exp"] = "tomorrow";
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::expired);
}

TEST(jwt, not_yet_valid) {
  auto c = claims();
  c["nbf"] = now + 31;
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::not_yet_valid);
  c = claims();
  c["iat"] = now + 3600;
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::not_yet_valid);
  c["iat"] = now + 10; // small skew is tolerated
  EXPECT_TRUE(jwt::verify_hs256(jwt::sign_hs256(c, secret), secret, want()));
}

TEST(jwt, issuer_and_audience) {
  auto c = claims();
  c["iss"] = "someone-else";
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::wrong_issuer);
  c = claims();
  c.erase("iss");
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::wrong_issuer);
  c = claims();
  c["aud"] = "other-api";
  EXPECT_EQ(reason(jwt::sign_hs256(c, secret)), jwt::failure::wrong_audience);
  c["aud"] = nlohmann::json::array({"other-api", "parley-api"});
  EXPECT_TRUE(jwt::verify_hs256(jwt::sign_hs256(c, secret), secret, want()));
}

TEST(jwt, shape_detection) {
  EXPECT_TRUE(jwt::looks_like_jwt("a.b.c"));
  EXPECT_FALSE(jwt::looks_like_jwt("pk_live_abc"));
  EXPECT_FALSE(jwt::looks_like_jwt("a..c"));
  EXPECT_FALSE(jwt::looks_like_jwt(".b.c"));
  EXPECT_FALSE(jwt::looks_like_jwt("a.b."));
  EXPECT_FALSE(jwt::looks_like_jwt("a.b.c.d"));
}

} // namespace
