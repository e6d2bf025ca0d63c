#include "domain/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace parley::domain {

bool may_retry(const retry_policy& p, int attempts_done) {
  return attempts_done < p.max_attempts;
}

// Equal jitter rather than full jitter: full jitter (uniform in [0, d)) spreads load best but
// sometimes retries almost at once, which hammers a Graph API that just said it is overloaded
// (5xx, 130429) and burns the small attempt budget in a burst. Equal jitter keeps at least half of
// the exponential delay while still de-synchronising the channels that failed together.
std::chrono::milliseconds retry_delay(const retry_policy& p, int failures, double unit_random,
                                      std::optional<std::chrono::milliseconds> retry_after) {
  using std::chrono::milliseconds;
  const int64_t base = std::max<int64_t>(0, p.base.count());
  const int64_t cap = std::max<int64_t>(0, p.cap.count());
  // Doubling stops as soon as the cap is reached, so huge failure counts never overflow.
  int64_t d = std::min(base, cap);
  for (int i = 1; i < failures && d < cap; ++i)
    d = d > cap / 2 ? cap : d * 2;
  double u = std::isnan(unit_random) ? 0.0 : std::clamp(unit_random, 0.0, 1.0);
  if (u >= 1.0)
    u = std::nextafter(1.0, 0.0);
  const int64_t half = d / 2;
  const auto jittered =
      milliseconds{half + static_cast<int64_t>(u * static_cast<double>(d - half))};
  if (retry_after && *retry_after > jittered)
    return *retry_after;
  return jittered;
}

} // namespace parley::domain
