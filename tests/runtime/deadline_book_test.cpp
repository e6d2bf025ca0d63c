// deadline_book on a real (threaded) actor system: answers in time reach the answer callback and
// leave nothing pending, a request without an answer times out once, and an answer arriving after
// its timeout is dropped without disturbing the requester.
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <gtest/gtest.h>

#include "runtime/deadline_book.hpp"

using namespace parley;
using namespace std::chrono_literals;

namespace {

using ask_atom = caf::atom_constant<caf::atom("ask")>;
using pending_atom = caf::atom_constant<caf::atom("pending")>;

struct echo_state {
  std::map<int, caf::typed_response_promise<int>> waiting; ///< by ticket
  int next = 0;
  static inline const char* name = "slow_echo";
};
using echo_actor = caf::stateful_actor<echo_state>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;

/// Answers `x` after `x` milliseconds (never when negative).
caf::behavior slow_echo(echo_actor* self, int) {
  return {[self](int x) -> caf::result<int> {
            auto rp = self->make_response_promise<int>();
            if (x >= 0) {
              auto ticket = self->state.next++;
              self->state.waiting.emplace(ticket, rp);
              self->delayed_send(self, std::chrono::milliseconds(x), answer_atom::value, ticket, x);
            }
            return rp;
          },
          [self](answer_atom, int ticket, int x) {
            auto it = self->state.waiting.find(ticket);
            it->second.deliver(x);
            self->state.waiting.erase(it);
          }};
}

struct requester_state {
  runtime::deadline_book deadlines{20ms};
  static inline const char* name = "requester";
};
using requester = caf::stateful_actor<requester_state>;

/// Asks the echo for `delay` with `timeout` and reports "answer N" or "timeout".
caf::behavior requester_impl(requester* self, caf::actor echo) {
  return {[self, echo](ask_atom, int delay, int timeout_ms) -> caf::result<std::string> {
            auto rp = self->make_response_promise<std::string>();
            self->state.deadlines.then<int>(
                self, self->request(echo, caf::infinite, delay),
                std::chrono::milliseconds(timeout_ms),
                [rp](int& x) mutable { rp.deliver("answer " + std::to_string(x)); },
                [rp](caf::error& e) mutable {
                  rp.deliver(e == caf::sec::request_timeout ? std::string{"timeout"}
                                                            : std::string{"other error"});
                });
            return rp;
          },
          [self](pending_atom) { return static_cast<int>(self->state.deadlines.pending()); },
          [self](runtime::deadline_tick_atom) { self->state.deadlines.on_tick(self); }};
}

caf::actor_system_config& quiet(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  return cfg;
}

class DeadlineBookTest : public ::testing::Test {
protected:
  caf::actor_system_config cfg_;
  caf::actor_system sys_{quiet(cfg_)};
  caf::scoped_actor self_{sys_};
  caf::actor echo_ = sys_.spawn(slow_echo, 0);
  caf::actor requester_ = sys_.spawn(requester_impl, echo_);

  std::string ask(int delay, int timeout_ms) {
    std::string out = "no answer";
    self_->request(requester_, 5s, ask_atom::value, delay, timeout_ms)
        .receive([&](std::string& s) { out = s; }, [&](caf::error&) { out = "request failed"; });
    return out;
  }

  int pending() {
    int n = -1;
    self_->request(requester_, 5s, pending_atom::value)
        .receive([&](int x) { n = x; }, [](caf::error&) {});
    return n;
  }

  void TearDown() override {
    caf::anon_send_exit(requester_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(echo_, caf::exit_reason::user_shutdown);
  }
};

TEST_F(DeadlineBookTest, AnswersInTimeLeaveNothingPending) {
  for (int i = 1; i <= 20; ++i)
    EXPECT_EQ(ask(i % 3, 2000), "answer " + std::to_string(i % 3));
  EXPECT_EQ(pending(), 0);
}

TEST_F(DeadlineBookTest, AnUnansweredRequestTimesOutOnce) {
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(ask(-1, 50), "timeout");
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 2s); // within a few resolutions, not never
  EXPECT_EQ(pending(), 0);
}

TEST_F(DeadlineBookTest, ALateAnswerIsDroppedAndTheRequesterGoesOn) {
  EXPECT_EQ(ask(300, 50), "timeout");
  std::this_thread::sleep_for(400ms); // the real answer arrives now, with no handler left
  EXPECT_EQ(ask(1, 2000), "answer 1");
  EXPECT_EQ(pending(), 0);
}

} // namespace
