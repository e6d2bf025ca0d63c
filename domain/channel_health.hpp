#pragma once
// The health of one WhatsApp channel as the sender sees it, and the circuit breaker that stops
// it from hammering a Graph API that keeps failing. Pure state machine with injected time; the
// channel actor feeds it outcomes and persists/publishes channel_state when it changes.
#include <chrono>
#include <optional>
#include <string_view>

#include "domain/token_bucket.hpp" // steady_time

namespace parley::domain {

/// The public state of a channel (API: channel.state events).
enum class channel_state {
  connected,     ///< calls succeed
  degraded,      ///< repeated failures or throttling, still sending
  disconnected,  ///< breaker open: sending paused, probing
  token_invalid, ///< the access token was refused; nothing is sent until it is replaced
};

/// "connected", "degraded", "disconnected", "token_invalid".
std::string_view to_string(channel_state s);
/// Exact inverse of to_string; anything else is nullopt.
std::optional<channel_state> parse_channel_state(std::string_view s);

/// Transitions (F = consecutive failures, reset by any success or throttled answer):
///   on_failure: F >= degrade_after -> degraded; F >= open_after -> disconnected, breaker open for
///     open_for. Open breaker: allow_send is false until the timer ends; then it is half-open and
///     allows ONE trial (on_trial_started claims it). Trial success -> connected, closed; trial
///     failure -> open again for twice the previous time, capped at max_open_for. Any failure
///     reported after the timer ran out counts as a failed trial (also when the call was sent
///     without on_trial_started); failures before that are late answers and change nothing.
///   on_success: connected, breaker closed, F = 0, open time back to open_for.
///   on_throttled: Meta answered, so the channel is reachable: breaker closed, F = 0, but
///     degraded (a connected channel degrades; it never opens the breaker).
///   on_token_invalid: token_invalid (nothing is allowed) until on_token_updated -> connected.
///   While token_invalid, on_success/on_failure/on_throttled are ignored: an answer to a call
///   made before the token was refused says nothing about the new token's absence.
/// changed() reports state changes (not breaker-internal ones): true once after each change.
class channel_health {
public:
  struct options {
    int degrade_after = 3;                    ///< consecutive failures before degraded
    int open_after = 8;                       ///< consecutive failures before the breaker opens
    std::chrono::milliseconds open_for{2000}; ///< first open period
    std::chrono::milliseconds max_open_for{60000}; ///< cap of the doubled open periods
  };

  /// `initial` is usually the persisted state. disconnected starts with an open breaker whose
  /// timer has already run out (probe at once); token_invalid waits for on_token_updated.
  explicit channel_health(options o, channel_state initial = channel_state::connected);

  channel_state state() const { return state_; }

  /// False while the breaker is open (until its timer ends; then true until the single trial
  /// is claimed with on_trial_started) and always in token_invalid.
  bool allow_send(steady_time now) const;

  /// The breaker is open, its timer has elapsed and no trial is in flight: time for a health
  /// probe / trial request.
  bool should_probe(steady_time now) const;

  /// When the open breaker's timer ends (already past while a trial is in flight: the trial's
  /// answer, not a timer, decides what happens next); steady_time::max() when the breaker is not
  /// open (nothing to schedule: do not add it to a clock).
  steady_time next_probe_at() const;

  /// Half-open: the single trial request is in flight (no-op unless should_probe(now)).
  void on_trial_started(steady_time now);

  /// Any successful Graph call.
  void on_success(steady_time now);
  /// 5xx / network / timeout (not throttling, not permanent 4xx errors of one message).
  void on_failure(steady_time now);
  /// Rate limited (graph_result::throttled).
  void on_throttled(steady_time now);
  /// Graph refused the token (graph_outcome::token_invalid).
  void on_token_invalid(steady_time now);
  /// The operator stored a new token. From token_invalid: connected (the next call tells). In
  /// any other state only an open breaker's timer is cut short, so a probe goes out at once.
  void on_token_updated(steady_time now);

  /// True once after every state change, then false until the next one.
  bool changed();

  /// Consecutive failures counted so far (for logs/metrics).
  int consecutive_failures() const { return failures_; }
  /// The current open period (doubles after failed trials).
  std::chrono::milliseconds open_for() const { return open_for_; }

private:
  enum class breaker { closed, open };

  void set_state(channel_state s);
  void close_breaker();
  void open_breaker(steady_time now);

  options opts_;
  channel_state state_;
  breaker breaker_ = breaker::closed;
  bool trial_in_flight_ = false;
  bool changed_ = false;
  int failures_ = 0;
  std::chrono::milliseconds open_for_;
  steady_time open_until_{};
};

} // namespace parley::domain
