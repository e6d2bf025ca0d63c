#pragma once
// A UUID held in its 16 bytes. Actors that live by the million (one per active conversation)
// keep their ids this way: as std::string a UUID costs 32 bytes plus a 48-byte heap block.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parley::domain {

class uuid {
public:
  /// The canonical text form (8-4-4-4-12 hex digits, either case); nullopt for anything else.
  static std::optional<uuid> parse(std::string_view text);

  /// A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds `unix_ms`, the
  /// version and variant bits, and 74 bits taken from `random` (10 bytes). Pure, for tests.
  static uuid time_ordered(int64_t unix_ms, const std::array<uint8_t, 10>& random);

  /// A time-ordered UUID for a new row, now, with random bits from OpenSSL's generator drawn in
  /// blocks (one RAND_bytes call per ~400 ids per thread). Rows get their ids from Parley rather
  /// than from parley_uuid_v7() in SQL: there, each id cost a gen_random_uuid() (OpenSSL behind a
  /// lock) and a text round trip, ~5 % of an inbound batch's PostgreSQL time.
  static uuid new_time_ordered();

  /// Canonical lowercase text, as PostgreSQL prints it.
  std::string str() const;

  /// The 16 bytes in network order (PostgreSQL's binary form of uuid).
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }

  bool operator==(const uuid&) const = default;

  /// For hash tables (the bytes are random already; this folds them).
  size_t hash() const;

private:
  std::array<uint8_t, 16> bytes_{};
};

} // namespace parley::domain
