#include "domain/uuid.hpp"

#include <algorithm>
#include <chrono>

#include "domain/crypto.hpp"
#include "domain/ids.hpp"

namespace parley::domain {

std::optional<uuid> uuid::parse(std::string_view text) {
  if (!is_uuid(text))
    return std::nullopt;
  // Called for every routed message (conversation keys): no allocation. is_uuid admitted only
  // hex digits and the four dashes.
  auto nibble = [](char c) {
    return static_cast<uint8_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
  };
  uuid u;
  size_t k = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '-')
      continue;
    uint8_t hi = nibble(text[i]);
    u.bytes_[k++] = static_cast<uint8_t>(hi << 4 | nibble(text[++i]));
  }
  return u;
}

uuid uuid::time_ordered(int64_t unix_ms, const std::array<uint8_t, 10>& random) {
  uuid u;
  auto ms = static_cast<uint64_t>(unix_ms);
  for (size_t k = 0; k < 6; ++k) // big-endian, so ids sort by time as bytes and as text
    u.bytes_[k] = static_cast<uint8_t>(ms >> (8 * (5 - k)));
  std::copy(random.begin(), random.end(), u.bytes_.begin() + 6);
  u.bytes_[6] = static_cast<uint8_t>(0x70 | (u.bytes_[6] & 0x0f)); // version 7
  u.bytes_[8] = static_cast<uint8_t>(0x80 | (u.bytes_[8] & 0x3f)); // variant 10
  return u;
}

uuid uuid::new_time_ordered() {
  constexpr size_t block = 4096;
  thread_local std::string pool;
  thread_local size_t used = block;
  if (used + 10 > pool.size()) {
    pool = crypto::random_bytes(block);
    used = 0;
  }
  std::array<uint8_t, 10> random{};
  std::copy_n(reinterpret_cast<const uint8_t*>(pool.data()) + used, random.size(), random.begin());
  used += random.size();
  auto now = std::chrono::system_clock::now().time_since_epoch();
  return time_ordered(std::chrono::duration_cast<std::chrono::milliseconds>(now).count(), random);
}

std::string uuid::str() const {
  auto hex = crypto::hex_encode(
      std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size()));
  for (size_t at : std::array<size_t, 4>{8, 13, 18, 23}) // 8-4-4-4-12
    hex.insert(at, 1, '-');
  return hex;
}

size_t uuid::hash() const {
  uint64_t a = 0, b = 0;
  for (size_t k = 0; k < 8; ++k) {
    a = a << 8 | bytes_[k];
    b = b << 8 | bytes_[k + 8];
  }
  return static_cast<size_t>(a ^ (b * 0x9e3779b97f4a7c15ULL));
}

} // namespace parley::domain
