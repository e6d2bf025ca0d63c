#pragma once
// How long a persistence actor (a group-commit writer, the journal) waits before it tries its
// database again after losing it: from 50 ms, doubling after each failed attempt up to a cap,
// each wait with up to 25 % jitter so that the actors of several nodes do not knock on a
// recovering server in step.
#include <algorithm>
#include <chrono>
#include <random>

namespace parley::persistence {

class reconnect_backoff {
public:
  static constexpr std::chrono::milliseconds first{50};

  explicit reconnect_backoff(std::chrono::milliseconds cap = std::chrono::milliseconds{5000})
      : cap_(std::max(cap, std::chrono::milliseconds{1})) {
    reset();
  }

  /// The wait before the next attempt: the current delay plus its jitter.
  std::chrono::milliseconds next() {
    auto spread = std::uniform_int_distribution<long>{0, current_.count() / 4}(rng_);
    return current_ + std::chrono::milliseconds{spread};
  }

  /// An attempt failed: the next delay doubles, up to the cap.
  void failed() { current_ = std::min(current_ * 2, cap_); }

  /// Connected again, or just lost: start over from the first delay.
  void reset() { current_ = std::min(first, cap_); }

  std::chrono::milliseconds current() const { return current_; }

private:
  std::chrono::milliseconds cap_;
  std::chrono::milliseconds current_{first};
  std::minstd_rand rng_{std::random_device{}()};
};

} // namespace parley::persistence
