#include "domain/channel_health.hpp"

#include <algorithm>
#include <utility>

namespace parley::domain {

std::string_view to_string(channel_state s) {
  switch (s) {
  case channel_state::connected:
    return "connected";
  case channel_state::degraded:
    return "degraded";
  case channel_state::disconnected:
    return "disconnected";
  case channel_state::token_invalid:
    return "token_invalid";
  }
  return "disconnected";
}

std::optional<channel_state> parse_channel_state(std::string_view s) {
  for (auto state : {channel_state::connected, channel_state::degraded, channel_state::disconnected,
                     channel_state::token_invalid})
    if (to_string(state) == s)
      return state;
  return std::nullopt;
}

channel_health::channel_health(options o, channel_state initial)
    : opts_(o)
    , state_(initial)
    , open_for_(o.open_for) {
  opts_.degrade_after = std::max(1, opts_.degrade_after);
  opts_.open_after = std::max(1, opts_.open_after);
  opts_.open_for = std::max(std::chrono::milliseconds{0}, opts_.open_for);
  opts_.max_open_for = std::max(opts_.open_for, opts_.max_open_for);
  open_for_ = opts_.open_for;
  if (initial == channel_state::disconnected) {
    breaker_ = breaker::open;
    open_until_ = steady_time::min();
  }
}

bool channel_health::allow_send(steady_time now) const {
  if (state_ == channel_state::token_invalid)
    return false;
  return breaker_ == breaker::closed || should_probe(now);
}

bool channel_health::should_probe(steady_time now) const {
  return state_ != channel_state::token_invalid && breaker_ == breaker::open && !trial_in_flight_ &&
         now >= open_until_;
}

steady_time channel_health::next_probe_at() const {
  return breaker_ == breaker::open ? open_until_ : steady_time::max();
}

void channel_health::on_trial_started(steady_time now) {
  if (should_probe(now))
    trial_in_flight_ = true;
}

void channel_health::on_success(steady_time) {
  if (state_ == channel_state::token_invalid)
    return;
  close_breaker();
  set_state(channel_state::connected);
}

void channel_health::on_failure(steady_time now) {
  if (state_ == channel_state::token_invalid)
    return;
  if (breaker_ == breaker::open) {
    // A failure once the timer has run out is the trial's answer, even if the caller sent the
    // trial without on_trial_started: back off harder before the next one. Earlier failures are
    // late answers to calls sent before the breaker opened and do not restart its timer.
    if (trial_in_flight_ || now >= open_until_) {
      trial_in_flight_ = false;
      open_for_ = std::min(opts_.max_open_for, open_for_ * 2);
      open_breaker(now);
    }
    return;
  }
  if (failures_ < opts_.open_after)
    ++failures_;
  if (failures_ >= opts_.open_after) {
    open_breaker(now);
  } else if (failures_ >= opts_.degrade_after) {
    set_state(channel_state::degraded);
  }
}

void channel_health::on_throttled(steady_time) {
  if (state_ == channel_state::token_invalid)
    return;
  close_breaker();
  set_state(channel_state::degraded);
}

void channel_health::on_token_invalid(steady_time) {
  close_breaker();
  set_state(channel_state::token_invalid);
}

void channel_health::on_token_updated(steady_time now) {
  if (state_ == channel_state::token_invalid) {
    close_breaker();
    set_state(channel_state::connected);
  } else if (breaker_ == breaker::open && !trial_in_flight_) {
    open_until_ = std::min(open_until_, now);
  }
}

bool channel_health::changed() {
  return std::exchange(changed_, false);
}

void channel_health::set_state(channel_state s) {
  if (s != state_) {
    state_ = s;
    changed_ = true;
  }
}

void channel_health::close_breaker() {
  breaker_ = breaker::closed;
  trial_in_flight_ = false;
  failures_ = 0;
  open_for_ = opts_.open_for;
}

void channel_health::open_breaker(steady_time now) {
  breaker_ = breaker::open;
  open_until_ = now + open_for_;
  set_state(channel_state::disconnected);
}

} // namespace parley::domain
