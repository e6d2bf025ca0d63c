#include "domain/channel_health.hpp"

#include <gtest/gtest.h>

using namespace parley::domain;
using namespace std::chrono_literals;
using cs = channel_state;

namespace {

const steady_time t0 = steady_time{} + 1000h;

channel_health::options opts() {
  channel_health::options o;
  o.degrade_after = 3;
  o.open_after = 5;
  o.open_for = 2s;
  o.max_open_for = 7s;
  return o;
}

void fail_times(channel_health& h, int n, steady_time now) {
  for (int i = 0; i < n; ++i)
    h.on_failure(now);
}

} // namespace

TEST(channel_state, names_round_trip) {
  for (cs s : {cs::connected, cs::degraded, cs::disconnected, cs::token_invalid})
    EXPECT_EQ(parse_channel_state(to_string(s)), s);
  EXPECT_EQ(to_string(cs::token_invalid), "token_invalid");
  EXPECT_FALSE(parse_channel_state("Connected"));
  EXPECT_FALSE(parse_channel_state(""));
}

TEST(channel_health, starts_connected_and_sending) {
  channel_health h(opts());
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.allow_send(t0));
  EXPECT_FALSE(h.should_probe(t0));
  EXPECT_EQ(h.next_probe_at(), steady_time::max());
  EXPECT_FALSE(h.changed());
}

TEST(channel_health, failures_degrade_then_open_the_breaker) {
  channel_health h(opts());
  fail_times(h, 2, t0);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_FALSE(h.changed());
  h.on_failure(t0);
  EXPECT_EQ(h.state(), cs::degraded);
  EXPECT_TRUE(h.changed());
  EXPECT_FALSE(h.changed()); // once per change
  EXPECT_TRUE(h.allow_send(t0));
  h.on_failure(t0);
  EXPECT_FALSE(h.changed()); // still degraded
  h.on_failure(t0 + 1s);
  EXPECT_EQ(h.state(), cs::disconnected);
  EXPECT_TRUE(h.changed());
  EXPECT_FALSE(h.allow_send(t0 + 1s));
  EXPECT_FALSE(h.should_probe(t0 + 1s));
  EXPECT_EQ(h.next_probe_at(), t0 + 3s);
}

TEST(channel_health, success_resets_the_count) {
  channel_health h(opts());
  fail_times(h, 2, t0);
  h.on_success(t0);
  fail_times(h, 2, t0);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_EQ(h.consecutive_failures(), 2);
  h.on_failure(t0);
  EXPECT_EQ(h.state(), cs::degraded);
  h.on_success(t0);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.changed());
}

TEST(channel_health, half_open_allows_exactly_one_trial) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  ASSERT_EQ(h.state(), cs::disconnected);
  EXPECT_FALSE(h.allow_send(t0 + 1999ms));
  EXPECT_TRUE(h.should_probe(t0 + 2s));
  EXPECT_TRUE(h.allow_send(t0 + 2s));
  h.on_trial_started(t0 + 2s);
  EXPECT_FALSE(h.allow_send(t0 + 2s));
  EXPECT_FALSE(h.should_probe(t0 + 10s));
  EXPECT_EQ(h.state(), cs::disconnected);
}

TEST(channel_health, trial_before_the_timer_is_ignored) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  h.on_trial_started(t0 + 1s); // too early: claims nothing
  EXPECT_TRUE(h.should_probe(t0 + 2s));
}

TEST(channel_health, trial_success_closes_the_breaker) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  (void)h.changed();
  h.on_trial_started(t0 + 2s);
  h.on_success(t0 + 2500ms);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.changed());
  EXPECT_TRUE(h.allow_send(t0 + 2500ms));
  EXPECT_EQ(h.next_probe_at(), steady_time::max());
  EXPECT_EQ(h.consecutive_failures(), 0);
  // The count starts over: it takes open_after failures again.
  fail_times(h, 4, t0 + 3s);
  EXPECT_EQ(h.state(), cs::degraded);
  h.on_failure(t0 + 3s);
  EXPECT_EQ(h.state(), cs::disconnected);
  EXPECT_EQ(h.next_probe_at(), t0 + 5s); // open_for back to its first value
}

TEST(channel_health, failed_trials_double_the_open_time_up_to_the_cap) {
  channel_health h(opts()); // 2 s, cap 7 s
  fail_times(h, 5, t0);
  steady_time now = t0;
  EXPECT_EQ(h.next_probe_at(), now + 2s);
  const std::chrono::milliseconds expected[] = {4s, 7s, 7s, 7s};
  for (auto open_for : expected) {
    now = h.next_probe_at();
    ASSERT_TRUE(h.should_probe(now));
    h.on_trial_started(now);
    h.on_failure(now + 100ms);
    EXPECT_EQ(h.state(), cs::disconnected);
    EXPECT_EQ(h.open_for(), open_for);
    EXPECT_EQ(h.next_probe_at(), now + 100ms + open_for);
    EXPECT_FALSE(h.allow_send(now + 100ms));
  }
  // Success after many failed trials resets the backoff.
  now = h.next_probe_at();
  h.on_trial_started(now);
  h.on_success(now);
  EXPECT_EQ(h.open_for(), 2s);
}

TEST(channel_health, failed_trial_reports_no_state_change) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  ASSERT_TRUE(h.changed());
  h.on_trial_started(t0 + 2s);
  h.on_failure(t0 + 2s);
  EXPECT_FALSE(h.changed()); // disconnected -> disconnected
}

TEST(channel_health, late_failures_while_open_do_not_extend_the_timer) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  fail_times(h, 3, t0 + 1s); // replies to calls sent before the breaker opened
  EXPECT_EQ(h.next_probe_at(), t0 + 2s);
  EXPECT_EQ(h.open_for(), 2s);
}

TEST(channel_health, late_success_while_open_closes_the_breaker) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  h.on_success(t0 + 1s);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.allow_send(t0 + 1s));
}

TEST(channel_health, throttling_degrades_but_never_opens) {
  channel_health h(opts());
  for (int i = 0; i < 50; ++i)
    h.on_throttled(t0);
  EXPECT_EQ(h.state(), cs::degraded);
  EXPECT_TRUE(h.changed());
  EXPECT_FALSE(h.changed());
  EXPECT_TRUE(h.allow_send(t0));
  h.on_success(t0);
  EXPECT_EQ(h.state(), cs::connected);
}

TEST(channel_health, throttled_answer_to_a_trial_closes_the_breaker_degraded) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  h.on_trial_started(t0 + 2s);
  h.on_throttled(t0 + 2s);
  EXPECT_EQ(h.state(), cs::degraded);
  EXPECT_TRUE(h.allow_send(t0 + 2s));
  EXPECT_EQ(h.consecutive_failures(), 0);
}

TEST(channel_health, throttling_resets_the_failure_count) {
  channel_health h(opts());
  fail_times(h, 4, t0);
  h.on_throttled(t0);
  fail_times(h, 4, t0);
  EXPECT_EQ(h.state(), cs::degraded); // not disconnected: the count started over
}

TEST(channel_health, token_invalid_blocks_until_a_new_token) {
  channel_health h(opts());
  h.on_token_invalid(t0);
  EXPECT_EQ(h.state(), cs::token_invalid);
  EXPECT_TRUE(h.changed());
  EXPECT_FALSE(h.allow_send(t0));
  EXPECT_FALSE(h.should_probe(t0 + 1h));
  // Answers to calls made before do not leave token_invalid.
  h.on_success(t0);
  h.on_failure(t0);
  h.on_throttled(t0);
  EXPECT_EQ(h.state(), cs::token_invalid);
  EXPECT_FALSE(h.changed());
  h.on_token_updated(t0 + 1s);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.changed());
  EXPECT_TRUE(h.allow_send(t0 + 1s));
}

TEST(channel_health, token_invalid_from_an_open_breaker) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  h.on_token_invalid(t0 + 1s);
  EXPECT_EQ(h.state(), cs::token_invalid);
  h.on_token_updated(t0 + 1s);
  EXPECT_EQ(h.state(), cs::connected);
  EXPECT_TRUE(h.allow_send(t0 + 1s));
  EXPECT_EQ(h.consecutive_failures(), 0);
}

TEST(channel_health, token_update_while_open_probes_at_once) {
  channel_health h(opts());
  fail_times(h, 5, t0);
  (void)h.changed();
  h.on_token_updated(t0 + 500ms);
  EXPECT_EQ(h.state(), cs::disconnected);
  EXPECT_FALSE(h.changed());
  EXPECT_TRUE(h.should_probe(t0 + 500ms));
  // In any other state a token update changes nothing.
  channel_health degraded(opts());
  fail_times(degraded, 3, t0);
  degraded.on_token_updated(t0);
  EXPECT_EQ(degraded.state(), cs::degraded);
}

TEST(channel_health, initial_states_from_persistence) {
  channel_health disconnected(opts(), cs::disconnected);
  EXPECT_EQ(disconnected.state(), cs::disconnected);
  EXPECT_TRUE(disconnected.should_probe(t0)); // probe at once after a restart
  EXPECT_FALSE(disconnected.changed());
  disconnected.on_trial_started(t0);
  disconnected.on_success(t0);
  EXPECT_EQ(disconnected.state(), cs::connected);

  channel_health invalid(opts(), cs::token_invalid);
  EXPECT_FALSE(invalid.allow_send(t0));
  EXPECT_FALSE(invalid.should_probe(t0));

  channel_health degraded(opts(), cs::degraded);
  EXPECT_TRUE(degraded.allow_send(t0));
  degraded.on_success(t0);
  EXPECT_EQ(degraded.state(), cs::connected);
  EXPECT_TRUE(degraded.changed());
}

TEST(channel_health, nonsensical_options_are_clamped) {
  channel_health::options o;
  o.degrade_after = 0;
  o.open_after = -1;
  o.open_for = -5s;
  o.max_open_for = 0s;
  channel_health h(o);
  h.on_failure(t0);
  EXPECT_EQ(h.state(), cs::disconnected);
  EXPECT_TRUE(h.should_probe(t0));
}

TEST(channel_health, failure_after_the_timer_counts_as_a_failed_trial) {
  // A caller that sends in the half-open window without on_trial_started still backs off.
  channel_health h(opts());
  fail_times(h, 5, t0);
  ASSERT_TRUE(h.allow_send(t0 + 2s));
  h.on_failure(t0 + 2500ms);
  EXPECT_EQ(h.state(), cs::disconnected);
  EXPECT_EQ(h.open_for(), 4s);
  EXPECT_EQ(h.next_probe_at(), t0 + 6500ms);
  EXPECT_FALSE(h.allow_send(t0 + 2500ms));
}
