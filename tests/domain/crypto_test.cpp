#include "domain/crypto.hpp"

#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace parley::crypto;

namespace {

std::string key32() {
  return *hex_decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
}

// Flips one bit of the decoded sealed blob at `index` and re-encodes it.
std::string tamper(const std::string& sealed, size_t index) {
  auto blob = *base64_decode(sealed.substr(3));
  blob[index] = static_cast<char>(blob[index] ^ 0x01);
  return "v1:" + base64_encode(blob);
}

} // namespace

TEST(crypto, hmac_rfc4231_test_case_2) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(crypto, hmac_rfc4231_test_case_1_and_empty_key) {
  EXPECT_EQ(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // HMAC with an empty key is well defined (RFC 2104); the wrapper must not choke on it.
  EXPECT_EQ(hmac_sha256_hex("", ""),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(crypto, hmac_is_safe_to_call_from_many_threads) {
  const auto expected = hmac_sha256_hex("Jefe", "what do ya want for nothing?");
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < mismatches.size(); ++t)
    threads.emplace_back([t, expected, &mismatches] {
      for (int i = 0; i < 2000; ++i)
        if (hmac_sha256_hex("Jefe", "what do ya want for nothing?") != expected)
          ++mismatches[t];
    });
  for (auto& th : threads)
    th.join();
  for (int m : mismatches)
    EXPECT_EQ(m, 0);
}

TEST(crypto, sha256_known_vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(crypto, meta_signature) {
  const std::string secret = "app-secret";
  const std::string body = R"({"object":"whatsapp_business_account","entry":[]})";
  const std::string sig = hmac_sha256_hex(secret, body);
  EXPECT_TRUE(verify_meta_signature(secret, body, "sha256=" + sig));

  std::string upper = sig;
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(verify_meta_signature(secret, body, "sha256=" + upper));

  EXPECT_FALSE(verify_meta_signature(secret, body + " ", "sha256=" + sig));
  EXPECT_FALSE(verify_meta_signature("other-secret", body, "sha256=" + sig));
  EXPECT_FALSE(verify_meta_signature("", body, "sha256=" + hmac_sha256_hex("", body)));
  EXPECT_FALSE(verify_meta_signature(secret, body, sig));
  EXPECT_FALSE(verify_meta_signature(secret, body, "sha1=" + sig));
  EXPECT_FALSE(verify_meta_signature(secret, body, "SHA256=" + sig));
  EXPECT_FALSE(verify_meta_signature(secret, body, "sha256=" + sig.substr(2)));
  EXPECT_FALSE(verify_meta_signature(secret, body, "sha256=" + sig + "00"));
  EXPECT_FALSE(verify_meta_signature(secret, body, "sha256=" + sig.substr(1) + "g"));
  EXPECT_FALSE(verify_meta_signature(secret, body, " sha256=" + sig));
  EXPECT_FALSE(verify_meta_signature(secret, body, ""));
  std::string flipped = sig;
  flipped[10] = flipped[10] == '0' ? '1' : '0';
  EXPECT_FALSE(verify_meta_signature(secret, body, "sha256=" + flipped));
}

TEST(crypto, constant_time_equal) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_TRUE(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(crypto, hex_round_trip_and_rejects) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  EXPECT_EQ(hex_decode(hex_encode(all)), all);
  EXPECT_EQ(hex_encode("\x01\xab\xff"), "01abff");
  EXPECT_EQ(hex_decode("01ABff"), std::string("\x01\xab\xff"));
  EXPECT_EQ(hex_decode(""), std::string());
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
  EXPECT_FALSE(hex_decode("0x12"));
  EXPECT_FALSE(hex_decode("12 34"));
}

TEST(crypto, base64_known_vectors) {
  // RFC 4648 section 10.
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), std::string(plain));
  }
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_decode("-_8"), std::string("\xfb\xff"));
}

TEST(crypto, base64_round_trip_all_lengths) {
  for (size_t n = 0; n < 70; ++n) {
    auto data = random_bytes(n);
    EXPECT_EQ(base64_decode(base64_encode(data)), data) << n;
    EXPECT_EQ(base64url_decode(base64url_encode(data)), data) << n;
  }
}

TEST(crypto, base64_rejects) {
  EXPECT_FALSE(base64_decode("Zg"));   // missing padding
  EXPECT_FALSE(base64_decode("Zg="));  // short padding
  EXPECT_FALSE(base64_decode("Z===")); // too much padding
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("Zm=v")); // padding in the middle
  EXPECT_FALSE(base64_decode("Zh==")); // non-zero trailing bits
  EXPECT_FALSE(base64_decode("Zm9v\n"));
  EXPECT_FALSE(base64_decode("Zm9v YmFy"));
  EXPECT_FALSE(base64_decode("-_8="));    // url alphabet in the standard decoder
  EXPECT_FALSE(base64url_decode("+/8"));  // standard alphabet in the url decoder
  EXPECT_FALSE(base64url_decode("Zg==")); // padding in the url decoder
  EXPECT_FALSE(base64url_decode("Z"));    // impossible length
  EXPECT_FALSE(base64url_decode("Zh"));   // non-zero trailing bits
}

TEST(crypto, random_values) {
  EXPECT_EQ(random_bytes(0).size(), 0u);
  EXPECT_EQ(random_bytes(33).size(), 33u);
  auto hex = random_hex(16);
  EXPECT_EQ(hex.size(), 32u);
  EXPECT_TRUE(hex_decode(hex));
  auto token = random_token(24);
  EXPECT_EQ(token.size(), 32u);
  EXPECT_EQ(
      token.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i)
    seen.insert(random_hex(16));
  EXPECT_EQ(seen.size(), 100u);
}

TEST(crypto, api_keys) {
  auto key = generate_api_key();
  EXPECT_EQ(key.rfind("pk_live_", 0), 0u);
  EXPECT_EQ(key.size(), 8u + 32u);
  EXPECT_NE(generate_api_key(), key);
  EXPECT_EQ(api_key_hash(key), sha256_hex(key));
  EXPECT_EQ(api_key_hash(key).size(), 64u);
}

TEST(secret_box, round_trip) {
  secret_box box(key32());
  for (const std::string& plain : {std::string(), std::string("EAAG-access-token"),
                                   std::string("\0binary\xff", 8), std::string(10000, 'x')}) {
    auto sealed = box.seal(plain);
    EXPECT_EQ(sealed.rfind("v1:", 0), 0u);
    EXPECT_EQ(sealed.find(plain.empty() ? "\x01" : plain), std::string::npos);
    EXPECT_EQ(box.open(sealed), plain);
  }
  EXPECT_EQ(box.seal("").size(), 3u + 40u); // base64 of 12 + 0 + 16 bytes
}

TEST(secret_box, fresh_nonce_per_seal) {
  secret_box box(key32());
  auto a = box.seal("same");
  auto b = box.seal("same");
  EXPECT_NE(a, b);
  EXPECT_NE(base64_decode(a.substr(3))->substr(0, 12), base64_decode(b.substr(3))->substr(0, 12));
  EXPECT_EQ(box.open(a), "same");
  EXPECT_EQ(box.open(b), "same");
}

TEST(secret_box, tampering_is_detected) {
  secret_box box(key32());
  const std::string plain = "channel-secret";
  auto sealed = box.seal(plain);
  const size_t blob_size = 12 + plain.size() + 16;
  ASSERT_EQ(base64_decode(sealed.substr(3))->size(), blob_size);
  for (size_t i = 0; i < blob_size; ++i) // every nonce, ciphertext and tag byte
    EXPECT_FALSE(box.open(tamper(sealed, i))) << "byte " << i;
  EXPECT_FALSE(box.open(sealed.substr(0, sealed.size() - 4)));
  auto blob = *base64_decode(sealed.substr(3));
  EXPECT_FALSE(box.open("v1:" + base64_encode(blob + "x")));
  EXPECT_FALSE(box.open("v1:" + base64_encode(blob.substr(0, blob.size() - 1))));
}

TEST(secret_box, wrong_key_fails) {
  secret_box box(key32());
  auto other_key = key32();
  other_key[0] = static_cast<char>(other_key[0] ^ 0x80);
  secret_box other(other_key);
  EXPECT_FALSE(other.open(box.seal("secret")));
}

TEST(secret_box, bad_formats) {
  secret_box box(key32());
  auto sealed = box.seal("x");
  EXPECT_FALSE(box.open(""));
  EXPECT_FALSE(box.open("v1:"));
  EXPECT_FALSE(box.open("v2:" + sealed.substr(3)));
  EXPECT_FALSE(box.open(sealed.substr(3)));
  EXPECT_FALSE(box.open("v1:not base64!"));
  EXPECT_FALSE(box.open("v1:" + base64_encode(std::string(27, 'a')))); // shorter than nonce + tag
  EXPECT_FALSE(box.open("v1:" + base64_encode(std::string(28, 'a')))); // empty plaintext, bad tag
  EXPECT_FALSE(box.open(" " + sealed));
  EXPECT_FALSE(box.open(sealed + "\n"));
}

TEST(secret_box, key_must_be_32_bytes) {
  EXPECT_THROW(secret_box(std::string(31, 'k')), std::invalid_argument);
  EXPECT_THROW(secret_box(std::string(64, 'a')), std::invalid_argument); // hex, not raw
  EXPECT_NO_THROW(secret_box(std::string(32, 'k')));
}

TEST(secret_box, copies_interoperate) {
  secret_box box(key32());
  secret_box copy = box;
  EXPECT_EQ(copy.open(box.seal("shared")), "shared");
}

namespace {

using parley::crypto::secret_box;

std::string other_key(char fill) {
  return std::string(32, fill);
}

TEST(secret_box_versions, seals_under_the_current_version) {
  secret_box v2(2, other_key('b'), {{1, other_key('a')}});
  auto sealed = v2.seal("token");
  EXPECT_EQ(sealed.rfind("v2:", 0), 0u);
  EXPECT_EQ(secret_box::version_of(sealed), 2);
  EXPECT_EQ(v2.current_version(), 2);
  EXPECT_EQ(v2.open(sealed), "token");
}

TEST(secret_box_versions, opens_values_of_previous_keys) {
  secret_box v1(other_key('a'));
  auto old = v1.seal("sealed before the rotation");
  secret_box v2(2, other_key('b'), {{1, other_key('a')}});
  EXPECT_EQ(v2.open(old), "sealed before the rotation");
  // Without the old key, the old value is unreadable; a v1-only box cannot read v2 values.
  secret_box v2_only(2, other_key('b'), {});
  EXPECT_FALSE(v2_only.open(old));
  EXPECT_FALSE(v1.open(v2.seal("new")));
}

TEST(secret_box_versions, a_version_prefix_cannot_redirect_to_another_key) {
  secret_box v2(2, other_key('b'), {{1, other_key('a')}});
  auto sealed = v2.seal("x");
  EXPECT_FALSE(v2.open("v1:" + sealed.substr(3)));
}

TEST(secret_box_versions, version_parsing) {
  EXPECT_EQ(secret_box::version_of("v1:abc"), 1);
  EXPECT_EQ(secret_box::version_of("v123:abc"), 123);
  for (const char* bad : {"", "v", "v:", "1:abc", "v0:abc", "v01:abc", "vx:abc", "v1abc", "V1:abc"})
    EXPECT_FALSE(secret_box::version_of(bad)) << bad;
}

TEST(secret_box_versions, bad_key_sets) {
  EXPECT_THROW(secret_box(2, other_key('b'), {{2, other_key('a')}}), std::invalid_argument);
  EXPECT_THROW(secret_box(0, other_key('b'), {}), std::invalid_argument);
  EXPECT_THROW(secret_box(2, other_key('b'), {{1, std::string(31, 'a')}}), std::invalid_argument);
}

} // namespace
