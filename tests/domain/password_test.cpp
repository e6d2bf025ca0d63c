#include "domain/password.hpp"

#include <chrono>
#include <iostream>
#include <vector>

#include <gtest/gtest.h>

namespace {

using namespace parley;

// Small N keeps the suite fast; production uses log_n 15 (see docs/security.md).
const password::scrypt_params fast{10, 8, 1};

TEST(password, verifies_the_right_password_only) {
  auto h = password::hash("correct horse battery", fast);
  EXPECT_TRUE(password::verify("correct horse battery", h));
  EXPECT_FALSE(password::verify("correct horse batterY", h));
  EXPECT_FALSE(password::verify("", h));
}

TEST(password, encoded_form_names_its_parameters) {
  auto h = password::hash("pw-0123456789", fast);
  EXPECT_EQ(h.rfind("scrypt$10$8$1$", 0), 0u) << h;
  auto p = password::params_of(h);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->log_n, 10);
  EXPECT_FALSE(password::needs_rehash(h, fast));
  EXPECT_TRUE(password::needs_rehash(h, password::scrypt_params{}));
}

TEST(password, salt_is_per_hash) {
  EXPECT_NE(password::hash("same password", fast), password::hash("same password", fast));
}

TEST(password, malformed_or_hostile_stored_values_fail_closed) {
  auto h = password::hash("pw-0123456789", fast);
  const std::string tail = h.substr(h.rfind('$') + 1);
  const std::vector<std::string> hostile = {"",
                                            "scrypt",
                                            "bcrypt$10$8$1$a$b",
                                            h.substr(0, h.size() - 1),
                                            h + "$",
                                            "scrypt$30$8$1$AAAA$" +
                                                tail, // 2^30 * 1 KiB would be a terabyte
                                            "scrypt$20$32$16$AAAA$" + tail, // over the memory bound
                                            "scrypt$10$8$1$$" + tail,       // no salt
                                            "scrypt$x$8$1$AAAA$AAAA"};
  for (const auto& bad : hostile)
    EXPECT_FALSE(password::verify("pw-0123456789", bad)) << bad;
}

TEST(password, parameter_bounds) {
  EXPECT_THROW(password::hash("x", password::scrypt_params{21, 8, 1}), std::invalid_argument);
  EXPECT_THROW(password::hash("x", password::scrypt_params{10, 0, 1}), std::invalid_argument);
}

// Not an assertion on time (machines differ): prints the production cost for docs/security.md.
TEST(password, production_cost_is_reported) {
  auto started = std::chrono::steady_clock::now();
  auto h = password::hash("measure me please");
  EXPECT_TRUE(password::verify("measure me please", h));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started)
                .count();
  std::cout << "scrypt N=2^15 r=8 p=1: hash + verify took " << ms << " ms\n";
}

} // namespace
