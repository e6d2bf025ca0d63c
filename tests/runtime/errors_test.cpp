#include "runtime/errors.hpp"

#include <caf/sec.hpp>
#include <gtest/gtest.h>

using namespace parley;

TEST(errors, parley_errors_keep_code_and_message) {
  auto err = make_error(errc::not_found, "tenant 42 not found");
  EXPECT_EQ(code_of(err), errc::not_found);
  EXPECT_EQ(message_of(err), "tenant 42 not found");
  EXPECT_EQ(http_status(code_of(err)), 404);
  EXPECT_EQ(api_code(errc::not_found), "not_found");
}

TEST(errors, caf_timeouts_map_to_503_not_500) {
  caf::error err = caf::make_error(caf::sec::request_timeout);
  EXPECT_EQ(code_of(err), errc::timeout);
  EXPECT_EQ(http_status(code_of(err)), 503);
}

TEST(errors, no_error_is_none) {
  EXPECT_EQ(code_of(caf::error{}), errc::none);
}
