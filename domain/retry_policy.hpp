#pragma once
// When to try an outbound Graph call again: capped exponential backoff with jitter. The caller
// supplies the randomness, so the policy is a pure function and tests are exact.
#include <chrono>
#include <optional>

namespace parley::domain {

/// Retry budget and backoff shape of one outbound message.
struct retry_policy {
  int max_attempts = 8;                 ///< attempts in total, the first one included
  std::chrono::milliseconds base{500};  ///< delay scale after the first failure
  std::chrono::milliseconds cap{60000}; ///< longest backoff (a server's Retry-After may exceed it)
};

/// Whether another attempt is allowed after `attempts_done` attempts: attempts_done < max_attempts.
bool may_retry(const retry_policy& p, int attempts_done);

/// Delay before the next attempt after `failures` consecutive failures (values < 1 count as 1):
/// d = min(cap, base * 2^(failures-1)), then equal jitter d/2 + u*d/2 with u = `unit_random`
/// (clamped into [0,1); NaN counts as 0). Never less than `retry_after` when the server sent one,
/// even beyond cap: the server knows when it will take requests again. Overflow-safe for any
/// `failures`; negative durations in the policy count as 0.
std::chrono::milliseconds
retry_delay(const retry_policy& p, int failures, double unit_random,
            std::optional<std::chrono::milliseconds> retry_after = std::nullopt);

} // namespace parley::domain
