// runtime::ask through the relay pool on a real (threaded) actor system: answers, errors and
// timeouts reach their callbacks, a throwing callback leaves its relay serving, and a stopped
// pool lets the system shut down.
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "runtime/ask.hpp"
#include "runtime/relay_pool.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

caf::actor_system_config& quiet(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

/// Answers an int with its successor, fails on negative ones, never answers zero.
caf::behavior counter(caf::event_based_actor* self, int) {
  return {[self](int x) -> caf::result<int> {
    if (x < 0)
      return make_error(errc::invalid_argument, "negative");
    if (x == 0)
      return self->make_response_promise<int>(); // never delivered: the caller times out
    return x + 1;
  }};
}

/// What one ask ended with: the answer, or the error's code.
struct outcome {
  int value = 0;
  std::string error; ///< "" on success
};

outcome ask_once(runtime::relay_pool& relays, const caf::actor& target, int x,
                 caf::timespan timeout = std::chrono::seconds(5)) {
  auto done = std::make_shared<std::promise<outcome>>();
  auto result = done->get_future();
  runtime::ask<int>(
      relays, target, timeout,
      [done](int& v) {
        done->set_value({v, ""});
      },
      [done](caf::error& e) {
        done->set_value({0, std::string(api_code(code_of(e)))});
      },
      x);
  if (result.wait_for(10s) != std::future_status::ready)
    return {0, "no callback"};
  return result.get();
}

class RelayPoolTest : public ::testing::Test {
protected:
  caf::actor_system_config cfg_;
  caf::actor_system sys_{quiet(cfg_)};
  caf::actor target_ = sys_.spawn(counter, 0);

  void TearDown() override { caf::anon_send_exit(target_, caf::exit_reason::user_shutdown); }
};

TEST_F(RelayPoolTest, AnswersReachTheirCallbacksThroughEveryRelay) {
  runtime::relay_pool relays{sys_, 3};
  for (int i = 1; i <= 9; ++i) // three rounds over the relays
    EXPECT_EQ(ask_once(relays, target_, i).value, i + 1);
}

TEST_F(RelayPoolTest, ManyRequestsInFlightAllAnswered) {
  runtime::relay_pool relays{sys_, 2};
  constexpr int n = 2000;
  auto left = std::make_shared<std::atomic<int>>(n);
  auto sum = std::make_shared<std::atomic<long>>(0);
  auto done = std::make_shared<std::promise<void>>();
  for (int i = 1; i <= n; ++i)
    runtime::ask<int>(
        relays, target_, std::chrono::seconds(5),
        [left, sum, done](int& v) {
          *sum += v;
          if (--*left == 0)
            done->set_value();
        },
        [](caf::error&) {}, i);
  ASSERT_EQ(done->get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(sum->load(), static_cast<long>(n) * (n + 1) / 2 + n);
}

TEST_F(RelayPoolTest, ErrorsAndTimeoutsReachTheErrorCallback) {
  runtime::relay_pool relays{sys_, 1};
  EXPECT_EQ(ask_once(relays, target_, -1).error, api_code(errc::invalid_argument));
  EXPECT_EQ(ask_once(relays, target_, 0, std::chrono::milliseconds(50)).error,
            api_code(errc::timeout));
}

TEST_F(RelayPoolTest, NoTargetFailsAtOnceAsRetryable) {
  runtime::relay_pool relays{sys_, 1};
  EXPECT_EQ(ask_once(relays, caf::actor{}, 1).error, api_code(errc::timeout));
}

TEST_F(RelayPoolTest, AThrowingCallbackDoesNotTakeItsRelayDown) {
  runtime::relay_pool relays{sys_, 1};
  runtime::ask<int>(
      relays, target_, std::chrono::seconds(5),
      [](int&) { throw std::runtime_error("handler bug"); }, [](caf::error&) {}, 1);
  // The only relay still serves (a dead one would drop the request: "no callback").
  EXPECT_EQ(ask_once(relays, target_, 41).value, 42);
}

TEST_F(RelayPoolTest, AStoppedPoolDropsJobsAndLetsTheSystemShutDown) {
  runtime::relay_pool relays{sys_, 2};
  relays.stop();
  relays.stop(); // idempotent
  bool ran = false;
  relays.run([&ran](caf::event_based_actor*) { ran = true; });
  caf::anon_send_exit(target_, caf::exit_reason::user_shutdown);
  sys_.await_all_actors_done(); // would hang if a relay still ran
  EXPECT_FALSE(ran);
}

} // namespace
