#include "domain/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace parley::domain {

namespace {

void check_parameters(double rate_per_s, double capacity) {
  if (!(rate_per_s > 0) || !std::isfinite(rate_per_s))
    throw std::invalid_argument("token bucket rate must be a finite number > 0");
  if (!(capacity >= 1) || !std::isfinite(capacity))
    throw std::invalid_argument("token bucket capacity must be a finite number >= 1");
}

double seconds_between(steady_time from, steady_time to) {
  if (to <= from)
    return 0.0;
  return std::chrono::duration<double>(to - from).count();
}

} // namespace

token_bucket::token_bucket(double rate_per_s, double capacity, steady_time now)
    : rate_(rate_per_s)
    , capacity_(capacity)
    , tokens_(capacity)
    , last_(now) {
  check_parameters(rate_per_s, capacity);
}

double token_bucket::tokens(steady_time now) const {
  return std::min(capacity_, tokens_ + seconds_between(last_, now) * rate_);
}

void token_bucket::refill(steady_time now) {
  if (now <= last_)
    return;
  tokens_ = tokens(now);
  last_ = now;
}

bool token_bucket::try_take(steady_time now) {
  refill(now);
  if (tokens_ < 1.0)
    return false;
  tokens_ -= 1.0;
  return true;
}

std::chrono::nanoseconds token_bucket::wait_time(steady_time now) const {
  // Refill only counts from last_ on, so an earlier `now` waits for last_ first.
  const steady_time from = std::max(now, last_);
  const double available = tokens(from);
  if (available >= 1.0)
    return from - now;
  // About 31 years: keeps absurdly slow rates from overflowing the nanosecond count.
  constexpr double max_wait_ns = 1e18;
  const double estimate = std::ceil((1.0 - available) / rate_ * 1e9);
  auto wait =
      std::chrono::nanoseconds{static_cast<int64_t>(std::clamp(estimate, 1.0, max_wait_ns))};
  // Floating-point rounding may leave the estimate a hair short; the promise is that a token is
  // there once the wait is over, so nudge it forward (growing steps keep this to a few rounds).
  for (std::chrono::nanoseconds step{1}; tokens(from + wait) < 1.0 && step.count() < (1 << 20);
       step *= 2)
    wait += step;
  return (from - now) + wait;
}

void token_bucket::reconfigure(double rate_per_s, double capacity, steady_time now) {
  check_parameters(rate_per_s, capacity);
  refill(now);
  rate_ = rate_per_s;
  capacity_ = capacity;
  tokens_ = std::min(tokens_, capacity_);
}

keyed_token_buckets::keyed_token_buckets(double rate_per_s, double capacity, size_t max_keys)
    : rate_(rate_per_s)
    , capacity_(capacity)
    , max_keys_(std::max<size_t>(1, max_keys)) {
  check_parameters(rate_per_s, capacity);
}

bool keyed_token_buckets::try_take(std::string_view key, steady_time now) {
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_)
      make_room(now);
    it = buckets_.emplace(std::string(key), token_bucket(rate_, capacity_, now)).first;
  }
  return it->second.try_take(now);
}

std::chrono::nanoseconds keyed_token_buckets::wait_time(std::string_view key,
                                                        steady_time now) const {
  const auto it = buckets_.find(key);
  return it == buckets_.end() ? std::chrono::nanoseconds{0} : it->second.wait_time(now);
}

void keyed_token_buckets::sweep(steady_time now) {
  std::erase_if(buckets_, [now](const auto& entry) { return entry.second.full(now); });
}

void keyed_token_buckets::make_room(steady_time now) {
  sweep(now);
  if (buckets_.size() < max_keys_)
    return;
  const auto fullest =
      std::max_element(buckets_.begin(), buckets_.end(), [now](const auto& a, const auto& b) {
        return a.second.tokens(now) < b.second.tokens(now);
      });
  buckets_.erase(fullest);
}

} // namespace parley::domain
