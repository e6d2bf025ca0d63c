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

  /// Canonical lowercase text, as PostgreSQL prints it.
  std::string str() const;

  bool operator==(const uuid&) const = default;

  /// For hash tables (the bytes are random already; this folds them).
  size_t hash() const;

private:
  std::array<uint8_t, 16> bytes_{};
};

} // namespace parley::domain
