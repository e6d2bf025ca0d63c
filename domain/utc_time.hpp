#pragma once
// Meta's Unix-second timestamps in the text form the API uses everywhere (parley_ts in SQL).
#include <cstdint>
#include <optional>
#include <string>

namespace parley::domain {

/// "YYYY-MM-DDTHH:MM:SS.000Z" (UTC) for 0 < unix_seconds < year 3000, the range PostgreSQL
/// stores as Meta's time; nullopt outside it (the database then keeps the arrival time).
std::optional<std::string> utc_timestamp(int64_t unix_seconds);

} // namespace parley::domain
