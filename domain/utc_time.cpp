#include "domain/utc_time.hpp"

#include <cstdio>
#include <ctime>

namespace parley::domain {

std::optional<std::string> utc_timestamp(int64_t unix_seconds) {
  if (unix_seconds <= 0 || unix_seconds >= 32503680000)
    return std::nullopt;
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (!gmtime_r(&t, &tm))
    return std::nullopt;
  char buf[96]; // room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return std::string(buf);
}

} // namespace parley::domain
